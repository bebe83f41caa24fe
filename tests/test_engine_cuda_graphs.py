"""GraphedCall's bookkeeping off the GPU: padded sizes, and what happens when a capture fails.

Captures themselves need CUDA: tests/test_engine_voice.py (marked ``gpu``) holds graphs against eager runs.
"""

from __future__ import annotations

import logging

import pytest
import torch

from voxwire.engine.cuda_graphs import GraphedCall, bucket
from voxwire.engine.sentence_stage import flow_span


@pytest.mark.parametrize(
    ("n", "padded"), [(1, 16), (16, 16), (17, 24), (24, 24), (25, 32), (33, 48), (200, 256)]
)
def test_lengths_are_padded_to_few_buckets(n: int, padded: int) -> None:
    assert bucket(n) == padded


@pytest.mark.parametrize(("frames", "span"), [(1, 64), (64, 64), (65, 128), (550, 1024), (2049, 4096)])
def test_the_flows_frames_are_padded_to_powers_of_two_from_64(frames: int, span: int) -> None:
    assert flow_span(frames) == span


def doubled(x: torch.Tensor) -> tuple[torch.Tensor]:
    return (x * 2,)


def test_a_failed_capture_is_logged_and_the_part_runs_eagerly_from_then_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    graphed = GraphedCall(doubled, "a test part")
    attempts = []

    def failing_capture(inputs: tuple[torch.Tensor, ...]) -> None:
        attempts.append(inputs)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphed, "_capture", failing_capture)
    with caplog.at_level(logging.ERROR, logger="voxwire.engine.cuda_graphs"):
        (first,) = graphed(torch.ones(3))
        (second,) = graphed(torch.ones(5))
    assert torch.equal(first, torch.full((3,), 2.0)) and torch.equal(second, torch.full((5,), 2.0))
    assert len(attempts) == 1  # no second capture once one failed
    assert graphed.shapes == 0
    assert caplog.text.count("could not capture a test part as a CUDA graph at [(3,)]") == 1


def test_out_of_memory_in_a_capture_is_raised_and_the_next_call_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graphed = GraphedCall(doubled, "a test part")
    attempts = []

    def out_of_memory(inputs: tuple[torch.Tensor, ...]) -> None:
        attempts.append(inputs)
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(graphed, "_capture", out_of_memory)
    for _ in range(2):
        with pytest.raises(torch.OutOfMemoryError):
            graphed(torch.ones(3))
    assert len(attempts) == 2  # a batch that did not fit is not a broken graph: the engine splits it
