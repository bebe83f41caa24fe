"""When the engine's freed memory goes back to the operating system: in idle moments, not after every step.

Two costs pull opposite ways, and glibc's defaults pay both:

* While the engine works, every step allocates the same large activations again (a window decoder's
  audio-rate activations are megabytes each). By default glibc serves blocks that large with fresh ``mmap``
  calls, and hands the top of a heap back as soon as a few hundred KiB of it are free, so each step faults
  in its memory page by page again: thousands of page faults per window on a CPU, a fifth of the decoder's
  time in the kernel (docs/benchmarks.md). :func:`hold_freed_memory` has glibc keep such blocks in the
  heap for the next step instead.
* Between bursts, what the heap holds is kept for nothing, and it fragments: the tensors of a speech server
  come in many sizes (every sentence has its own length), so resident memory creeps up under steady load
  without anything leaking (in a 10-minute soak on CPU, from 957 to 1249 MiB; one ``malloc_trim`` brought it
  down to 586 MiB). The engine worker calls :func:`release_free_memory` in idle moments.

Elsewhere than glibc neither exists and both do nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
HELD_SETTINGS = {
    _M_MMAP_THRESHOLD: 32 << 20,  # glibc's largest: blocks up to 32 MiB come from the heap, not mmap
    _M_TOP_PAD: 64 << 20,  # a heap grows by this much more than it needs
    _M_TRIM_THRESHOLD: 1 << 30,  # and gives its top back only past 1 GiB free (release_free_memory does)
}
"""``mallopt`` settings of :func:`hold_freed_memory` (setting the mmap threshold also stops glibc from
moving it and the trim threshold on its own)."""


def _find_libc_function(name: str, argtypes: list[type]) -> Callable[..., int] | None:
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_MALLOC_TRIM = _find_libc_function("malloc_trim", [ctypes.c_size_t])
_MALLOPT = _find_libc_function("mallopt", [ctypes.c_int, ctypes.c_int])


def hold_freed_memory() -> bool:
    """Have glibc keep freed blocks, large ones included, for reuse (process-wide); True when it took the
    settings. Freed memory then goes back to the OS only through :func:`release_free_memory`."""
    if _MALLOPT is None:
        return False
    taken = all(_MALLOPT(option, value) == 1 for option, value in HELD_SETTINGS.items())
    if not taken:
        log.warning(
            "glibc refused the malloc settings %s; the engine's steps fault in fresh memory", HELD_SETTINGS
        )
    return taken


def release_free_memory() -> bool:
    """Return the allocator's free pages to the OS; True when some were returned (glibc only)."""
    if _MALLOC_TRIM is None:
        return False
    return bool(_MALLOC_TRIM(0))
