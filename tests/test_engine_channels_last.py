"""The channels-last convs compute what torch's own 1-d convs compute, from any input layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from voxwire.engine.channels_last import Conv1d, ConvTranspose1d, convert_convs, time_major


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [(1, 1, 0, 1), (1, 2, 0, 1), (3, 1, 1, 1), (5, 1, 6, 3), (7, 2, 3, 1)],
)
@pytest.mark.parametrize("layout", ["time-major", "contiguous", "a channel slice"])
def test_conv1d_equals_torchs(kernel: int, stride: int, padding: int, dilation: int, layout: str) -> None:
    torch.manual_seed(kernel * 10 + stride)
    reference = nn.Conv1d(12, 8, kernel, stride, padding, dilation)
    ours = convert_convs(nn.Sequential(nn.Conv1d(12, 8, kernel, stride, padding, dilation)))[0]
    ours.load_state_dict(reference.state_dict())
    assert isinstance(ours, Conv1d)
    x = torch.randn(3, 24, 50)
    x = {
        "time-major": time_major(x[:, :12]),
        "contiguous": x[:, :12].contiguous(),
        "a channel slice": time_major(x)[:, 12:],
    }[layout]
    with torch.inference_mode():
        assert torch.allclose(ours(x), reference(x), atol=1e-5)


@pytest.mark.parametrize(("kernel", "dilation", "padding"), [(3, 1, 1), (3, 9, 9), (5, 3, 6), (3, 2, 0)])
@pytest.mark.parametrize("length", [1, 17, 60])
@pytest.mark.parametrize("layout", ["time-major", "contiguous"])
def test_depthwise_conv1d_equals_torchs(
    kernel: int, dilation: int, padding: int, length: int, layout: str
) -> None:
    """A depthwise conv whose output is as long as its input (the duration predictor's) takes its own
    path; one with other padding (the last case) goes through torch's conv."""
    torch.manual_seed(kernel + dilation)
    reference = nn.Conv1d(16, 16, kernel, padding=padding, dilation=dilation, groups=16)
    ours = convert_convs(nn.Sequential(nn.Conv1d(16, 16, kernel, 1, padding, dilation, 16)))[0]
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 16, length + 4)  # long enough for the unpadded conv too
    x = time_major(x) if layout == "time-major" else x
    with torch.inference_mode():
        out = ours(x)
        assert out.shape == reference(x).shape
        assert torch.allclose(out, reference(x), atol=1e-5)


def test_conv_transpose1d_equals_torchs() -> None:
    torch.manual_seed(0)
    reference = nn.ConvTranspose1d(16, 8, 16, 8, 4)
    ours = ConvTranspose1d(16, 8, 16, 8, 4)
    ours.load_state_dict(reference.state_dict())
    x = time_major(torch.randn(2, 16, 30))
    with torch.inference_mode():
        assert torch.allclose(ours(x), reference(x), atol=1e-5)
