"""A function of tensors replayed as CUDA graphs, one graph per input shape.

On a GPU the sentence stage is launch-bound: about a thousand small kernels a call, and the GPU computes for
a small part of the call's time (docs/benchmarks.md). A graph replays all of them in one launch. A graph is
fixed to its input shapes, so callers pad their inputs to a few shapes (:func:`bucket`) and each shape is
captured once, the first time it is seen.

All graphs of one :class:`GraphedCall` share one memory pool: their intermediates reuse the same memory,
which is safe because they replay one at a time on one stream. So the outputs a call returns are the
graph's own buffers, valid until the next call: copy what must outlive it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE

log = logging.getLogger(__name__)

WARMUP_RUNS = 2
"""Eager runs on a side stream before a capture: the first runs of a shape pick cuDNN and cuBLAS algorithms
and load kernels, none of which may happen while capturing."""


def power_of_two(n: int) -> int:
    """The smallest power of two that holds ``n`` (at least 1): the padded size of a batch of ``n``."""
    return 1 << (n - 1).bit_length()


def bucket(n: int, smallest: int = 16) -> int:
    """The padded size for ``n``: the smallest of ``smallest * 2**k`` and ``smallest * 1.5 * 2**k`` that
    holds it, so at most a third of a padded batch is padding and few shapes are ever captured."""
    size = smallest
    while True:
        if size >= n:
            return size
        if size * 3 // 2 >= n:
            return size * 3 // 2
        size *= 2


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    outputs: tuple[torch.Tensor, ...]


class GraphedCall:
    """``fn(*inputs) -> tuple of tensors``, captured per input shape and dtype and replayed.

    ``fn`` must be a pure function of its inputs on the GPU: no host synchronisation, no tensors made on
    the CPU, no randomness (pass noise in as an input), and outputs that depend only on the inputs. Should
    a capture fail anyway, the error is logged and the function runs eagerly from then on.
    """

    def __init__(self, fn: Callable[..., tuple[torch.Tensor, ...]], name: str) -> None:
        self._fn = fn
        self._name = name
        self._graphs: dict[tuple[tuple[torch.Size, torch.dtype], ...], _Graph] = {}
        self._pool: _POOL_HANDLE | None = None
        self._eager = False
        """Set when a capture failed: the function then runs eagerly (logged once, as an error)."""

    @property
    def shapes(self) -> int:
        """How many shapes have been captured."""
        return len(self._graphs)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._eager:
            return self._fn(*inputs)
        key = tuple((x.shape, x.dtype) for x in inputs)
        graph = self._graphs.get(key)
        if graph is None:
            try:
                graph = self._graphs[key] = self._capture(inputs)
            except torch.OutOfMemoryError:
                raise  # this batch does not fit (the engine splits it); a smaller shape may
            except RuntimeError:
                log.exception(
                    "could not capture %s as a CUDA graph at %s; it runs eagerly from now on",
                    self._name,
                    [tuple(x.shape) for x in inputs],
                )
                self._eager = True
                return self._fn(*inputs)
        for static, x in zip(graph.inputs, inputs, strict=True):
            static.copy_(x)
        graph.graph.replay()
        return graph.outputs

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> _Graph:
        started = time.perf_counter()
        static = tuple(x.clone() for x in inputs)
        side = torch.cuda.Stream(device=static[0].device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(static[0].device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self._fn(*static)
        torch.cuda.current_stream(static[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        # thread_local: the engine's thread captures; another thread's CUDA calls must not void the capture.
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            outputs = self._fn(*static)
        log.debug(
            "captured %s for %s in %.0f ms",
            self._name,
            [tuple(x.shape) for x in inputs],
            (time.perf_counter() - started) * 1000,
        )
        return _Graph(graph, static, tuple(outputs))
