"""Our inverse of the duration predictor's spline flow equals transformers' own reverse pass."""

from __future__ import annotations

import pytest
import torch
from transformers import VitsConfig
from transformers.models.vits.modeling_vits import VitsConvFlow

from voxwire.engine.conv_flow import inverse_conv_flow


@pytest.mark.parametrize("spread", [0.5, 4.0])  # at 4.0 many inputs lie beyond the tail bound (5)
def test_inverse_conv_flow_equals_transformers(spread: float) -> None:
    torch.manual_seed(0)
    flow = VitsConvFlow(VitsConfig(hidden_size=32, depth_separable_num_layers=2)).eval()
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.normal_(0, 0.3)
    inputs = torch.randn(3, 2, 40) * spread
    mask = (torch.arange(40) < torch.tensor([40, 31, 7])[:, None]).float()[:, None, :]
    conditioning = torch.randn(3, 32, 40)
    with torch.inference_mode():
        reference, _ = flow(inputs, mask, global_conditioning=conditioning, reverse=True)
        ours = inverse_conv_flow(flow, inputs, mask, conditioning)
    assert (inputs.abs() > flow.tail_bound).any() == (spread > 1)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
