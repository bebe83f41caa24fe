"""1-d convs that run in the channels-last layout, which oneDNN's CPU convs handle several times faster.

A ``[batch, channels, time]`` activation is kept *time-major* in memory (strides ``(C*T, 1, C)``, channels
innermost). Unsqueezed to ``[batch, channels, 1, time]`` that is exactly a channels-last 2-d tensor, so each
conv runs as a 2-d conv with no copy, and its output comes back time-major. Elementwise ops keep the layout
of their inputs, so it persists from conv to conv. Measured on the decoder's 32-channel convs at the audio
rate: 4-7x faster than ``nn.Conv1d`` on the usual layout.

The weights are stored in the matching layout too (same shape, input channels innermost), so that no call
reorders them. Shapes, names and state dicts are those of ``nn.Conv1d`` / ``nn.ConvTranspose1d``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def time_major(x: torch.Tensor) -> torch.Tensor:
    """The same [batch, channels, time] values with channels innermost in memory."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)


class Conv1d(nn.Conv1d):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("only explicit zero padding is supported")
        self.weight = nn.Parameter(time_major(self.weight.detach()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pointwise:
            # A 1x1 conv is a matmul over channels; torch sends a single-threaded one to its slow conv path.
            return F.linear(x.transpose(1, 2), self.weight.squeeze(2), self.bias).transpose(1, 2)
        if self._depthwise:
            return self._depthwise_forward(x)
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        weight = self.weight.unsqueeze(2)
        padding, dilation = (0, int(self.padding[0])), (1, self.dilation[0])  # int: checked at init
        return F.conv2d(x, weight, self.bias, (1, self.stride[0]), padding, dilation, self.groups).squeeze(2)

    @property
    def _pointwise(self) -> bool:
        return self.kernel_size[0] == 1 and self.stride[0] == 1 and self.padding[0] == 0 and self.groups == 1

    @property
    def _depthwise(self) -> bool:
        """Each channel its own kernel, the output as long as the input (as in VITS's duration predictor)."""
        kernel, dilation, padding = self.kernel_size[0], self.dilation[0], self.padding[0]
        same = kernel % 2 == 1 and padding == (kernel - 1) // 2 * dilation
        return self.groups == self.in_channels == self.out_channels > 1 and self.stride[0] == 1 and same

    def _depthwise_forward(self, x: torch.Tensor) -> torch.Tensor:
        """A depthwise conv (each channel its own kernel) as one multiply-add per tap over whole time-major
        rows, where oneDNN's depthwise conv took 20 to 40 times as long at the stage's lengths."""
        padding, dilation = int(self.padding[0]), self.dilation[0]
        length = x.size(2)
        rows = F.pad(x.transpose(1, 2), (0, 0, padding, padding))  # [batch, time, channels]
        taps = self.weight[:, 0, :].t().contiguous()  # [kernel, channels]
        out = rows[:, :length] * taps[0]
        for tap in range(1, self.kernel_size[0]):
            out.addcmul_(rows[:, tap * dilation : tap * dilation + length], taps[tap])
        if self.bias is not None:
            out.add_(self.bias)
        return out.transpose(1, 2)


class ConvTranspose1d(nn.ConvTranspose1d):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight = nn.Parameter(time_major(self.weight.detach()))

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or self.output_padding[0] or self.dilation[0] != 1:
            raise ValueError("only plain strided transposed convs are supported")
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        weight = self.weight.unsqueeze(2)
        stride, padding = (1, self.stride[0]), (0, int(self.padding[0]))
        return F.conv_transpose2d(x, weight, self.bias, stride, padding, groups=self.groups).squeeze(2)


def convert_convs(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Conv1d`` inside ``module`` (in place) by a channels-last :class:`Conv1d`."""
    for name, child in module.named_children():
        if type(child) is nn.Conv1d:
            conv = Conv1d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                child.dilation,
                child.groups,
                child.bias is not None,
                device=child.weight.device,
                dtype=child.weight.dtype,
            )
            conv.load_state_dict(child.state_dict())
            setattr(module, name, conv.train(child.training))
        else:
            convert_convs(child)
    return module
