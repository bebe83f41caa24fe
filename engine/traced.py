"""A function of tensors run as one TorchScript trace: on a CPU, the sentence stage without Python.

Run eagerly, every op of the text encoder and the duration predictor (about a thousand a sentence, most of
them small) goes through Python and takes the GIL again when it returns, and the engine's other compute
threads and the event loop want the same GIL. Two sentence stages at once on two threads each took 1.3 to
2 times as long as alone, and a stage beside a thread busy in Python waits up to the interpreter's switch
interval at every op (docs/benchmarks.md). A trace runs the whole graph in TorchScript's interpreter, which
holds no GIL: the stage takes about a fifth less time alone, and no longer waits on other threads.

``torch.jit.trace`` records one run. Tensor shapes stay symbolic (batch and length are free), but Python
control flow is frozen as it went, so the function must take the same branches whatever its inputs. Each
trace is checked against the eager function at a second example of other shapes, and the eager function
runs instead (with a warning) where the two differ or tracing fails. ``torch.jit.trace`` is deprecated in
favour of ``torch.compile`` and ``torch.export``; neither runs a graph without Python or a C++ compiler at
run time, and this falls back to eager wherever TorchScript is gone.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

TensorFunction = Callable[..., tuple[torch.Tensor, ...]]


class _Wrapped(nn.Module):
    """The function as a module's forward, so the trace keeps its module's weights as parameters."""

    def __init__(self, owner: nn.Module, fn: TensorFunction) -> None:
        super().__init__()
        self.owner = owner
        self._fn = fn

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._fn(*inputs)


def traced(
    owner: nn.Module,
    fn: TensorFunction,
    example: tuple[torch.Tensor, ...],
    check: tuple[torch.Tensor, ...],
    what: str,
) -> TensorFunction:
    """``fn`` (a method of ``owner``, whose weights it reads) as a trace made at ``example``; ``fn`` itself
    when tracing fails or the trace and ``fn`` differ at ``check``, which should differ from ``example``
    in every dimension that varies."""
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace's own (module docstring)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes read as ints: checked below
            module = torch.jit.trace(_Wrapped(owner, fn), example, check_trace=False)  # type: ignore[no-untyped-call]
            call = TracedCall(module)
            same = _same(fn(*check), call(*check))
    except Exception as error:  # any failure to trace leaves the eager function, which works
        log.warning("%s runs eagerly: tracing it failed (%s: %s)", what, type(error).__name__, error)
        return fn
    if not same:
        log.warning("%s runs eagerly: its trace differs from it at other shapes", what)
        return fn
    return call


def _same(expected: tuple[object, ...], got: tuple[object, ...]) -> bool:
    """Whether the trace's outputs are the function's, to float rounding."""
    return len(expected) == len(got) and all(
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.shape == b.shape
        and torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        for a, b in zip(expected, got, strict=True)
    )


class TracedCall:
    """A traced module called with TorchScript's graph optimizations off: on a CPU they gain nothing here,
    and the profiling executor would keep a specialized graph per input shape it sees."""

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self._module = module

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.jit.optimized_execution(False):
            outputs: tuple[torch.Tensor, ...] = self._module(*inputs)
        return outputs
