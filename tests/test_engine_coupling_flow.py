"""Our inverse of the prior's coupling flow equals transformers' reverse pass, cropped or not."""

from __future__ import annotations

import pytest
import torch
from transformers import VitsConfig
from transformers.models.vits.modeling_vits import VitsResidualCouplingBlock

from voxwire.engine.coupling_flow import coupling_reach, flow_reach, reverse_flow

CONFIG = VitsConfig(
    hidden_size=16,
    flow_size=8,
    prior_encoder_num_flows=3,
    prior_encoder_num_wavenet_layers=2,
    wavenet_kernel_size=5,
)


@pytest.fixture(scope="module")
def block() -> VitsResidualCouplingBlock:
    torch.manual_seed(0)
    block = VitsResidualCouplingBlock(CONFIG).eval()
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0, 0.3)
    return block


def test_each_coupling_reads_its_wavenets_reach(block: VitsResidualCouplingBlock) -> None:
    # Two layers of kernel 5, dilation 1: two frames each side per layer.
    assert [coupling_reach(layer) for layer in block.flows] == [4, 4, 4]
    assert flow_reach(block) == 12  # the halves swap between layers: the reaches add up


# Rows of different widths (masked past each), cropped at neither, one or both ends, up to the whole reach.
@pytest.mark.parametrize(("left", "right"), [(0, 0), (12, 0), (0, 12), (5, 9), (12, 12), (20, 3)])
def test_reverse_flow_equals_transformers_on_the_frames_it_keeps(
    block: VitsResidualCouplingBlock, left: int, right: int
) -> None:
    width = 60
    inputs = torch.randn(2, CONFIG.flow_size, width)
    mask = (torch.arange(width) < torch.tensor([width, 47])[:, None]).float()[:, None, :]
    with torch.inference_mode():
        reference = block(inputs, mask, reverse=True)
        ours = reverse_flow(block, inputs, mask, left, right)
    assert ours.shape[-1] == width - left - right
    torch.testing.assert_close(ours, reference[..., left : width - right], rtol=1e-5, atol=1e-6)
