"""The inverse of transformers' ``VitsConvFlow`` (the duration predictor's spline flows), without host syncs.

``VitsConvFlow.forward(reverse=True)`` computes the same thing, but its spline formats the whole
discriminant tensor into an error message on every call (a per-element read, and a device sync on GPUs)
and picks the in-range inputs with boolean indexing (another sync). Here every element goes through the
spline and ``torch.where`` keeps the identity outside the tail bound. The formulas and their order are
transformers' (``_rational_quadratic_spline``, reverse branch), so results agree to float rounding.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F
from transformers.models.vits.modeling_vits import VitsConvFlow

_MIN_BIN_WIDTH = 1e-3
_MIN_BIN_HEIGHT = 1e-3
_MIN_DERIVATIVE = 1e-3


def inverse_conv_flow(
    flow: VitsConvFlow, inputs: torch.Tensor, mask: torch.Tensor, conditioning: torch.Tensor
) -> torch.Tensor:
    first_half, second_half = torch.split(inputs, [flow.half_channels] * 2, dim=1)
    hidden = flow.conv_pre(first_half)
    hidden = flow.conv_dds(hidden, mask, conditioning)
    hidden = flow.conv_proj(hidden) * mask
    batch, channels, length = first_half.shape
    hidden = hidden.reshape(batch, channels, -1, length).permute(0, 1, 3, 2)
    bins = flow.num_bins
    scale = math.sqrt(flow.filter_channels)
    second_half = inverse_spline(
        second_half,
        hidden[..., :bins] / scale,
        hidden[..., bins : 2 * bins] / scale,
        hidden[..., 2 * bins :],
        flow.tail_bound,
    )
    return torch.cat([first_half, second_half], dim=1) * mask


def inverse_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    tail_bound: float,
) -> torch.Tensor:
    """Inverse of the monotonic rational-quadratic spline on [-tail_bound, tail_bound], identity outside."""
    bins = unnormalized_widths.shape[-1]
    constant = math.log(math.exp(1 - _MIN_DERIVATIVE) - 1)
    derivatives = _MIN_DERIVATIVE + F.softplus(F.pad(unnormalized_derivatives, (1, 1), value=constant))
    cumwidths, widths = _knots(unnormalized_widths, _MIN_BIN_WIDTH, tail_bound)
    cumheights, heights = _knots(unnormalized_heights, _MIN_BIN_HEIGHT, tail_bound)

    locations = cumheights.clone()
    locations[..., -1] += 1e-6
    bin_idx = (torch.sum(inputs[..., None] >= locations, dim=-1) - 1).clamp(0, bins - 1)[..., None]

    def at_bin(values: torch.Tensor) -> torch.Tensor:
        return values.gather(-1, bin_idx)[..., 0]

    input_cumwidths = at_bin(cumwidths)
    input_bin_widths = at_bin(widths)
    input_cumheights = at_bin(cumheights)
    input_delta = at_bin(heights / widths)
    input_derivatives = at_bin(derivatives)
    input_derivatives_plus_one = at_bin(derivatives[..., 1:])
    input_heights = at_bin(heights)

    intermediate1 = input_derivatives + input_derivatives_plus_one - 2 * input_delta
    intermediate2 = inputs - input_cumheights
    intermediate3 = intermediate2 * intermediate1
    a = input_heights * (input_delta - input_derivatives) + intermediate3
    b = input_heights * input_derivatives - intermediate3
    c = -input_delta * intermediate2
    discriminant = b.pow(2) - 4 * a * c
    root = (2 * c) / (-b - torch.sqrt(discriminant))
    outputs = root * input_bin_widths + input_cumwidths
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    return torch.where(inside, outputs, inputs)


def _knots(
    unnormalized: torch.Tensor, minimum: float, tail_bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cumulative knot positions on [-tail_bound, tail_bound] and the bin sizes between them."""
    bins = unnormalized.shape[-1]
    sizes = minimum + (1 - minimum * bins) * F.softmax(unnormalized, dim=-1)
    cumulative = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    cumulative = 2 * tail_bound * cumulative - tail_bound
    cumulative[..., 0] = -tail_bound
    cumulative[..., -1] = tail_bound
    return cumulative, cumulative[..., 1:] - cumulative[..., :-1]
