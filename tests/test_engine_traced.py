"""The sentence stage as a TorchScript trace equals the eager stage; a trace that would not is not used."""

from __future__ import annotations

import copy
import logging
import threading

import pytest
import torch
from transformers import VitsConfig, VitsModel

from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.sentence_stage import SentenceStage
from voxwire.engine.traced import TracedCall, traced

PARAMS = SynthesisParams(noise_scale=0.667, noise_w=0.8, length_scale=1.0)


def _stage(stochastic: bool) -> SentenceStage:
    config = VitsConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=8,
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        duration_predictor_num_flows=2,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=2,
        use_stochastic_duration_prediction=stochastic,
    )
    torch.manual_seed(1)
    model = VitsModel(config).eval()
    with torch.no_grad():  # weights drawn afresh: relative embeddings and biases start at zero
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    return SentenceStage(model.text_encoder, model.duration_predictor, model.flow).eval()


def _latents(stage: SentenceStage, ids: list[list[int]], seed: int) -> list[Latent]:
    generator = torch.Generator().manual_seed(seed)
    return stage(ids, [PARAMS] * len(ids), generator)


SENTENCES = [[[3]], [[5, 1, 7, 2, 9, 4, 11, 6, 2, 8] * 4], [[1, 2, 3, 4, 5, 6, 7, 8, 9], [4], [9, 8, 7] * 10]]


@pytest.mark.parametrize("stochastic", [True, False])
def test_the_traced_stage_equals_the_eager_stage(stochastic: bool) -> None:
    eager = _stage(stochastic)
    stage = copy.deepcopy(eager)
    assert stage.trace()
    assert stage.traced and not eager.traced
    for seed, ids in enumerate(SENTENCES):
        for ours, reference in zip(_latents(stage, ids, seed), _latents(eager, ids, seed), strict=True):
            assert torch.equal(ours.durations, reference.durations)
            torch.testing.assert_close(ours.prior, reference.prior, rtol=1e-6, atol=1e-6)


def test_two_threads_may_run_one_trace_at_once() -> None:
    stage = _stage(stochastic=True)
    assert stage.trace()
    ids = [[(i * 7) % 29 + 1 for i in range(n)] for n in (33, 21)]
    expected = [_latents(stage, [sentence], seed=0)[0].prior for sentence in ids]
    results: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        barrier.wait()
        for _ in range(20):
            results[index].append(_latents(stage, [ids[index]], seed=0)[0].prior)

    threads = [threading.Thread(target=run, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in (0, 1):
        assert len(results[index]) == 20
        assert all(torch.equal(prior, expected[index]) for prior in results[index])


class _Doubles(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        # A branch on a shape: the trace keeps the branch it took, whatever the shape it is given later.
        return (x * 2,) if x.shape[-1] > 4 else (x * 3,)


def test_a_trace_that_differs_at_other_shapes_is_not_used(caplog: pytest.LogCaptureFixture) -> None:
    module = _Doubles()
    with caplog.at_level(logging.WARNING, logger="voxwire.engine.traced"):
        run = traced(module, module.forward, (torch.ones(1, 8),), (torch.ones(2, 3),), "doubling")
    assert run == module.forward
    assert "doubling runs eagerly: its trace differs from it at other shapes" in caplog.text


class _Labels(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, str]:
        return x, "label"  # a string among the outputs: no trace can return it


def test_a_function_that_cannot_be_traced_runs_eagerly(caplog: pytest.LogCaptureFixture) -> None:
    module = _Labels()
    with caplog.at_level(logging.WARNING, logger="voxwire.engine.traced"):
        run = traced(module, module.forward, (torch.ones(3, 2),), (torch.ones(5, 1),), "counting")
    assert run == module.forward
    assert "counting runs eagerly: tracing it failed" in caplog.text


def test_a_trace_that_holds_is_used() -> None:
    module = torch.nn.Linear(3, 2)
    example, check = (torch.randn(4, 3),), (torch.randn(2, 7, 3),)
    run = traced(module, lambda x: (module(x),), example, check, "a linear layer")
    assert isinstance(run, TracedCall)
    x = torch.randn(5, 3)
    with torch.inference_mode():
        assert torch.equal(run(x)[0], module(x))
