"""HiFi-GAN decoder that turns fixed-size windows of a latent into the audio of the window's kept frames.

A window's input is ``context + kept + context`` latent frames. Two things make the window's audio equal the
audio of a whole-utterance decode:

* Context: every output sample depends on a limited span of latent frames (the receptive field). The
  decoder works out, layer by layer from the end, how many samples of margin (*halo*) each activation needs
  so that the kept samples come out exact; ``context_frames`` is that margin at the input (11 frames for
  the Piper medium voices). The same numbers let each stage crop its activations to kept + halo, so the
  expensive high-rate stages compute little more than the kept audio.
* Edges: where a window reaches past the start or end of the utterance, its input is zero-padded and every
  conv output is zeroed outside the utterance (``valid``). A zero-padded conv at the edge of the whole
  utterance sees exactly those zeros, so the edge comes out the same. A transposed conv maps input frame
  ``f`` to output samples ``[f*s, (f+1)*s)``, so the valid region scales with the rate.

The convs run channels-last (:mod:`engine.channels_last`). Every window of a given kept size has one input
shape, whatever its position and the utterance's length.
Module names follow Piper's generator (``conv_pre``, ``ups``, ``resblocks.N.convs`` for type-2 blocks,
``convs1``/``convs2`` for type-1 blocks, ``conv_post``), so Piper's ``dec.*`` weights load as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F
from transformers import VitsConfig

from voxwire.engine.channels_last import Conv1d, ConvTranspose1d, time_major


@dataclass(frozen=True)
class _StageHalos:
    """Samples of margin one upsampling stage needs around the kept audio, at each point of the stage."""

    upsample_in: int  # at the upsampling's input (the previous stage's rate)
    blocks_in: int  # at the residual blocks' input (this stage's rate)
    blocks_out: int  # at the residual blocks' output


class _ResBlock(nn.Module):
    """Residual steps; each step is a chain of convs, each preceded by a leaky ReLU."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def steps(self) -> list[list[Conv1d]]:
        """The convs of each step, as the subclass registers them under Piper's names (read at each call:
        a conv may be replaced, :func:`engine.winograd.use_winograd`)."""
        raise NotImplementedError

    def halo(self) -> int:
        convs = [conv for step in self.steps() for conv in step]
        return sum((conv.kernel_size[0] - 1) // 2 * conv.dilation[0] for conv in convs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x`` plus each step's residual. In place wherever a tensor is this block's own (a conv's
        output, the running sum): fewer allocations, and the activations stay in cache."""
        out = x  # the stage's input, shared with the other blocks: never written
        for step in self.steps():
            h = conv_in = F.leaky_relu(out, self.slope)
            for index, conv in enumerate(step):
                if index:
                    conv_in = F.leaky_relu_(h, self.slope)
                h = conv(conv_in)
                if mask is not None:
                    h.mul_(mask)
            out = out + h if out is x else out.add_(h)
        return out


class ResBlock1(_ResBlock):
    """HiFi-GAN's type-1 block: per dilation, a dilated conv then a plain one (transformers, Piper high)."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int], slope: float) -> None:
        super().__init__(slope)
        self.convs1 = nn.ModuleList(_conv(channels, channels, kernel, d) for d in dilations)
        self.convs2 = nn.ModuleList(_conv(channels, channels, kernel, 1) for _ in dilations)

    def steps(self) -> list[list[Conv1d]]:
        pairs = zip(self.convs1, self.convs2, strict=True)
        return [[cast(Conv1d, c1), cast(Conv1d, c2)] for c1, c2 in pairs]


class ResBlock2(_ResBlock):
    """HiFi-GAN's type-2 block: one dilated conv per dilation (Piper medium and low voices)."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int], slope: float) -> None:
        super().__init__(slope)
        self.convs = nn.ModuleList(_conv(channels, channels, kernel, d) for d in dilations)

    def steps(self) -> list[list[Conv1d]]:
        return [[cast(Conv1d, conv)] for conv in self.convs]


class WindowDecoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        initial_channels: int,
        upsample_rates: Sequence[int],
        upsample_kernel_sizes: Sequence[int],
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        resblock_type: int,
        leaky_relu_slope: float = 0.1,
    ) -> None:
        super().__init__()
        block = {1: ResBlock1, 2: ResBlock2}[resblock_type]
        self.slope = leaky_relu_slope
        self.rates = tuple(upsample_rates)
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = _conv(in_channels, initial_channels, 7, 1)
        self._stages: list[tuple[ConvTranspose1d, list[_ResBlock]]] = []
        """Per upsampling stage, its transposed conv and residual blocks (registered as ups, resblocks)."""
        channels = initial_channels
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes, strict=True):
            if (kernel - rate) % 2:
                raise ValueError(f"upsampling kernel {kernel} with stride {rate} does not align frames")
            up = ConvTranspose1d(channels, channels // 2, kernel, rate, (kernel - rate) // 2)
            channels //= 2
            blocks: list[_ResBlock] = [
                block(channels, k, dilations, leaky_relu_slope)
                for k, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True)
            ]
            self._stages.append((up, blocks))
        self.ups = nn.ModuleList(up for up, _ in self._stages)
        self.resblocks = nn.ModuleList(block for _, blocks in self._stages for block in blocks)
        self.conv_post = Conv1d(channels, 1, 7, 1, padding=3, bias=False)
        self.hop_length = math.prod(self.rates)
        self.context_frames, self._halos = self._plan_halos()

    @classmethod
    def from_config(cls, config: VitsConfig, resblock_type: int) -> WindowDecoder:
        """The decoder a VitsConfig describes, with blocks of the given type (transformers' are type 1)."""
        return cls(
            in_channels=config.flow_size,
            initial_channels=config.upsample_initial_channel,
            upsample_rates=config.upsample_rates,
            upsample_kernel_sizes=config.upsample_kernel_sizes,
            resblock_kernel_sizes=config.resblock_kernel_sizes,
            resblock_dilation_sizes=config.resblock_dilation_sizes,
            resblock_type=resblock_type,
            leaky_relu_slope=config.leaky_relu_slope,
        )

    def _plan_halos(self) -> tuple[int, list[_StageHalos]]:
        """The latent context and each stage's halos, worked out backwards from the output."""
        halo = (self.conv_post.kernel_size[0] - 1) // 2
        stages: list[_StageHalos] = []
        for up, blocks in reversed(self._stages):
            blocks_in = halo + max(block.halo() for block in blocks)
            kernel, stride, pad = up.kernel_size[0], up.stride[0], int(up.padding[0])
            # Output sample t reads input frames f with 0 <= t + pad - f * stride < kernel.
            up_in = max((blocks_in + kernel - 1 - pad) // stride, (blocks_in + pad - 1) // stride + 1)
            stages.insert(0, _StageHalos(upsample_in=up_in, blocks_in=blocks_in, blocks_out=halo))
            halo = up_in
        return halo + (self.conv_pre.kernel_size[0] - 1) // 2, stages

    def forward(self, z: torch.Tensor, kept: int, valid: torch.Tensor | None) -> torch.Tensor:
        """Audio in [-1, 1] of the kept frames of each window.

        z: [batch, channels, kept + 2 * context_frames], zero outside the utterance.
        valid: [batch, 2] int, the frames of each window inside the utterance (start, end), or None when every
        window lies inside its utterance. Returns [batch, kept * hop_length].
        """
        context = self.context_frames
        if z.shape[-1] != kept + 2 * context:
            raise ValueError(f"window of {z.shape[-1]} frames, expected {kept} + 2 * {context}")
        window = _Window(context, kept, valid)
        x = window.zero_outside(window.crop(self.conv_pre(time_major(z)), self._halos[0].upsample_in))
        for rate, (up, blocks), halos in zip(self.rates, self._stages, self._halos, strict=True):
            window.upsample(rate)
            x = window.crop(up(F.leaky_relu(x, self.slope)), halos.blocks_in)
            mask = window.mask(x)
            if mask is not None:
                x.mul_(mask)  # the upsampling's own output
            total = blocks[0](x, mask)
            for block in blocks[1:]:
                total.add_(block(x, mask))
            x = window.crop(total.div_(self.num_kernels), halos.blocks_out)
        x = window.crop(self.conv_post(F.leaky_relu(x)), 0)
        return torch.tanh(x).squeeze(1)


class _Window:
    """Where the current activation sits in window coordinates, and what lies outside the utterance."""

    def __init__(self, context: int, kept: int, valid: torch.Tensor | None) -> None:
        self.context = context
        self.kept = kept
        self.valid = valid
        self.rate = 1
        self.offset = 0  # window coordinate of tensor index 0, in samples at self.rate

    def upsample(self, stride: int) -> None:
        self.rate *= stride
        self.offset *= stride

    def crop(self, x: torch.Tensor, halo: int) -> torch.Tensor:
        """Keep samples [context*rate - halo, (context+kept)*rate + halo) of the window."""
        start = self.context * self.rate - halo - self.offset
        self.offset += start
        return x[..., start : start + self.kept * self.rate + 2 * halo]

    def mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """1 inside the utterance, 0 outside, for an activation at the current rate and offset."""
        if self.valid is None:
            return None
        positions = torch.arange(x.shape[-1], device=x.device) + self.offset
        bounds = (self.valid * self.rate).view(-1, 2, 1)
        inside = (positions >= bounds[:, 0:1]) & (positions < bounds[:, 1:2])
        return inside.to(x.dtype)

    def zero_outside(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.mask(x)
        return x if mask is None else x * mask


def _conv(c_in: int, c_out: int, kernel: int, dilation: int) -> Conv1d:
    return Conv1d(c_in, c_out, kernel, 1, dilation=dilation, padding=(kernel - 1) * dilation // 2)
