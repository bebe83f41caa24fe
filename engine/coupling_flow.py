"""The inverse of transformers' ``VitsResidualCouplingBlock`` (the flow from the prior to the decoder's
input), computing no more than what is read.

``VitsResidualCouplingBlock.forward(reverse=True)`` computes the same thing, but adds a tensor of zeros for
the (absent) speaker conditioning before every WaveNet activation, and scales by ``exp(-0)`` for the
(absent) log-deviation of its mean-only couplings; each is a full pass over the activations and a few more
ops per layer. Here those are left out; the remaining ops and their order are transformers', so results
agree to float rounding.

A chunk of flow (:meth:`engine.sentence_stage.SentenceStage.run_flow`) reads the prior beyond the frames
it makes, because each coupling layer's WaveNet reads its neighbours (its *reach*), and the reaches of the
layers add up. Every layer but the first need not compute the outermost frames, which only its
predecessors read: :func:`reverse_flow` crops each layer's output to the frames that the layers after it
still read, so the first audio's chunk, and every chunk between windows, costs less.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from transformers.models.vits.modeling_vits import (
    VitsResidualCouplingBlock,
    VitsResidualCouplingLayer,
    VitsWaveNet,
)


def flow_reach(block: VitsResidualCouplingBlock) -> int:
    """Frames either side that one output frame of the flow reads: each coupling layer updates one half
    of the channels from the other half's neighbours, and the halves swap between layers, so the reaches
    of all layers add up."""
    return sum(coupling_reach(layer) for layer in _layers(block))


def coupling_reach(layer: VitsResidualCouplingLayer) -> int:
    """Frames either side that one output frame of a coupling layer reads (its WaveNet's convs; the 1x1
    convs read no neighbour)."""
    return sum(
        (conv.kernel_size[0] - 1) // 2 * conv.dilation[0]
        for conv in layer.wavenet.in_layers
        if isinstance(conv, nn.Conv1d)
    )


def reverse_flow(
    block: VitsResidualCouplingBlock,
    inputs: torch.Tensor,
    mask: torch.Tensor,
    spare_left: int = 0,
    spare_right: int = 0,
) -> torch.Tensor:
    """The flow's inverse over ``inputs`` [batch, channels, frames] with ``mask`` [batch, 1, frames].

    ``spare_left`` and ``spare_right``: frames at each end of ``inputs`` whose output no caller reads (in
    every row). Each layer's output is cropped to what the layers after it still read, so the result is
    ``spare_left`` frames shorter at the start and ``spare_right`` at the end, and its frames equal those
    of the uncropped flow: a crop falls only where no later layer reads.
    """
    layers = _layers(block)[::-1]
    reaches = [coupling_reach(layer) for layer in layers]
    cropped_left = cropped_right = 0
    for index, layer in enumerate(layers):
        inputs = _reverse_coupling(layer, torch.flip(inputs, [1]), mask)
        still_read = sum(reaches[index + 1 :])
        left = max(spare_left - still_read, 0) - cropped_left
        right = max(spare_right - still_read, 0) - cropped_right
        if left or right:
            end = inputs.shape[-1] - right
            inputs, mask = inputs[..., left:end], mask[..., left:end]
            cropped_left += left
            cropped_right += right
    return inputs


def _layers(block: VitsResidualCouplingBlock) -> list[VitsResidualCouplingLayer]:
    return [cast(VitsResidualCouplingLayer, layer) for layer in block.flows]


def _reverse_coupling(
    layer: VitsResidualCouplingLayer, inputs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``VitsResidualCouplingLayer.forward(reverse=True)`` without a speaker: the first half is kept, the
    second has the WaveNet's mean taken off (the log-deviation is zero: the couplings are mean-only)."""
    first_half, second_half = torch.split(inputs, [layer.half_channels] * 2, dim=1)
    hidden = layer.conv_pre(first_half) * mask
    hidden = _wavenet(layer.wavenet, hidden, mask)
    mean = layer.conv_post(hidden) * mask
    return torch.cat([first_half, (second_half - mean) * mask], dim=1)


def _wavenet(wavenet: VitsWaveNet, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The WaveNet's skip outputs, summed: every layer but the last also feeds a residual to the next."""
    channels = wavenet.hidden_size
    outputs: torch.Tensor | None = None
    for index in range(wavenet.num_layers):
        hidden = wavenet.in_layers[index](inputs)
        acts = torch.tanh(hidden[:, :channels]) * torch.sigmoid(hidden[:, channels:])
        skip = wavenet.res_skip_layers[index](acts)
        if index < wavenet.num_layers - 1:
            inputs = (inputs + skip[:, :channels]) * mask
            skip = skip[:, channels:]
        outputs = skip if outputs is None else outputs + skip
    assert outputs is not None  # a WaveNet has at least one layer
    return outputs * mask
