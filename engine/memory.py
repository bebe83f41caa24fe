"""Give memory that torch has freed back to the operating system.

glibc keeps freed blocks in its arenas for reuse, and the tensors of a speech server come in many sizes
(every sentence has its own length), so the heap fragments and the process's resident memory creeps up
under steady load without anything leaking: in a 10-minute soak on CPU it went from 957 to 1249 MiB, and
one ``malloc_trim`` brought it down to 586 MiB. The engine worker calls :func:`release_free_memory` in idle
moments. Elsewhere than glibc there is no ``malloc_trim`` and it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> bool:
    """Return the allocator's free pages to the OS; True when some were returned (glibc only)."""
    if _MALLOC_TRIM is None:
        return False
    return bool(_MALLOC_TRIM(0))
