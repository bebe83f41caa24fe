"""1-d convolutions by Winograd's minimal filtering, for the wide convs of a voice on a CPU.

A conv of kernel ``r`` makes ``m`` outputs from ``m + r - 1`` inputs with ``m * r`` multiplications per
channel pair when computed directly. Winograd's F(m, r) makes them with ``m + r - 1``: the inputs of a tile
and the kernel are each taken to ``m + r - 1`` values of a polynomial at fixed points (one small matrix
each, ``B^T`` and ``G``), multiplied pointwise, and taken back (``A^T``). Over channels, the pointwise
products are ``m + r - 1`` matrix products of ``[tiles, in] @ [in, out]``, against the ``m * r`` tiles'
worth of a direct conv: F(4, 5) does 2.5 times fewer multiply-adds than a kernel of 5, F(4, 3) twice fewer
than one of 3. On a CPU the direct convs already run near the cores' peak (docs/benchmarks.md), so fewer
multiply-adds is what makes them faster: the flow's WaveNet convs, the text encoder's feed-forward convs
and the decoder's widest residual convs.

The transforms cost memory passes (each tile's inputs are read ``(m + r - 1) / m`` times over), so narrow
convs, whose matrix products are cheap, do not gain; :func:`use_winograd` converts the wide ones only.
The matrices are exact rationals (points 0, ±1, ±2, ±1/2, ±3, ±1/3), rounded to float32 once; the result
equals the direct conv's to about 1e-6 of its magnitude (tests/test_engine_winograd.py bounds it).

A dilated conv is ``dilation`` interleaved undilated ones: the tiles are laid over every ``dilation``-th
input, all from one strided view of the padded input, with no copy per phase.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import torch
from torch import nn
from torch.nn import functional as F

from voxwire.engine.channels_last import Conv1d

TILE = 4
"""Outputs per tile (``m``): larger tiles save more multiply-adds but lose precision and cost larger
transforms; 4 measured fastest for kernels of 3, 5 and 7 at the voices' widths."""
MIN_CHANNELS = 128
"""Convs with fewer input or output channels than this stay direct: their transforms cost more than their
matrix products save (the decoder's 32- and 64-channel blocks, docs/benchmarks.md#engine-benchenginepy)."""
KERNELS = (3, 5, 7)
_POINTS = (
    Fraction(0),
    Fraction(1),
    Fraction(-1),
    Fraction(2),
    Fraction(-2),
    Fraction(1, 2),
    Fraction(-1, 2),
    Fraction(3),
    Fraction(-3),
    Fraction(1, 3),
    Fraction(-1, 3),
)


@cache
def winograd_matrices(outputs: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A^T, G, B^T)`` of F(outputs, kernel) in float64, for correlation (what a conv layer computes):
    ``y = A^T ((G g) * (B^T d))`` gives ``y[i] = sum_j g[j] d[i + j]`` for a tile ``d`` of
    ``outputs + kernel - 1`` inputs and a kernel ``g``.

    Built by the Cook-Toom construction at the first ``outputs + kernel - 2`` of the points above and
    infinity: ``A^T`` evaluates the output polynomial, ``G`` the kernel's (each point scaled by the product
    of its distances to the others), and ``B^T`` is the unique matrix that makes the identity hold, solved
    exactly in rationals.
    """
    alpha = outputs + kernel - 1
    if alpha - 1 > len(_POINTS):
        raise ValueError(f"F({outputs}, {kernel}) needs more interpolation points than are defined")
    points = _POINTS[: alpha - 1]
    scale = [math.prod((p - q for q in points if q != p), start=Fraction(1)) for p in points]
    a_t = [[p**i for p in points] + [Fraction(int(i == outputs - 1))] for i in range(outputs)]
    g = [[p**j / s for j in range(kernel)] for p, s in zip(points, scale, strict=True)]
    g.append([Fraction(int(j == kernel - 1)) for j in range(kernel)])
    b_t = _solve_input_transform(a_t, g, outputs, kernel)
    return _float64(a_t), _float64(g), _float64(b_t)


def _float64(matrix: list[list[Fraction]]) -> torch.Tensor:
    return torch.tensor([[float(value) for value in row] for row in matrix], dtype=torch.float64)


def _solve_input_transform(
    a_t: list[list[Fraction]], g: list[list[Fraction]], outputs: int, kernel: int
) -> list[list[Fraction]]:
    """``B^T`` from ``sum_k A^T[i][k] G[k][j] B^T[k][l] = [l == i + j]`` for all i, j, l.

    For each input position ``l`` the unknowns are column ``l`` of ``B^T`` (one per point ``k``), and the
    equations over (i, j) are ``M b = e_l`` with ``M[(i, j)][k] = A^T[i][k] G[k][j]``: an overdetermined
    system that has an exact solution, found by Gaussian elimination on rationals."""
    alpha = outputs + kernel - 1
    rows = [[a_t[i][k] * g[k][j] for k in range(alpha)] for i in range(outputs) for j in range(kernel)]
    columns = []
    for position in range(alpha):
        target = [Fraction(int(position == i + j)) for i in range(outputs) for j in range(kernel)]
        columns.append(_solve_exact(rows, target))
    return [[columns[position][k] for position in range(alpha)] for k in range(alpha)]


def _solve_exact(rows: list[list[Fraction]], target: list[Fraction]) -> list[Fraction]:
    """The solution of a consistent linear system with a unique solution (raises otherwise)."""
    width = len(rows[0])
    augmented = [[*row, value] for row, value in zip(rows, target, strict=True)]
    pivot_row = 0
    for column in range(width):
        found = next((r for r in range(pivot_row, len(augmented)) if augmented[r][column] != 0), None)
        if found is None:
            raise ArithmeticError("the Winograd transform is not uniquely determined")
        augmented[pivot_row], augmented[found] = augmented[found], augmented[pivot_row]
        pivot = augmented[pivot_row][column]
        augmented[pivot_row] = [v / pivot for v in augmented[pivot_row]]
        for r in range(len(augmented)):
            factor = augmented[r][column]
            if r != pivot_row and factor != 0:
                pivot_values = augmented[pivot_row]
                augmented[r] = [v - factor * p for v, p in zip(augmented[r], pivot_values, strict=True)]
        pivot_row += 1
    if any(row[-1] != 0 for row in augmented[pivot_row:]):
        raise ArithmeticError("the Winograd identity has no exact solution at these points")
    return [augmented[r][-1] for r in range(width)]


class WinogradConv1d(Conv1d):
    """A stride-1, single-group :class:`~engine.channels_last.Conv1d` computed by F(``tile``, kernel).

    A conv like the one it is made from (same parameters, names and attributes, so state dicts and code
    that reads a conv's kernel or dilation are unchanged), plus the kernel's transform of its weights, made
    once here: the weights must not change afterwards. Takes and returns ``[batch, channels, time]``
    activations as the conv does (any layout in, time-major out).
    """

    kernel_transform: torch.Tensor
    """``G`` applied to the weights: [points, in, out]."""
    input_transform: torch.Tensor
    output_transform: torch.Tensor

    def __init__(self, conv: Conv1d, tile: int = TILE) -> None:
        if conv.groups != 1 or conv.stride[0] != 1 or isinstance(conv.padding, str):
            raise ValueError("Winograd convs here are single-group, stride 1, with numeric padding")
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            padding=conv.padding,
            dilation=conv.dilation,
            bias=conv.bias is not None,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        self.load_state_dict(conv.state_dict())
        self.train(conv.training)
        self.tile = tile
        a_t, g, b_t = winograd_matrices(tile, self.kernel_size[0])
        weight = self.weight.detach().to(torch.float64)
        kernel_transform = torch.einsum("kj,ocj->kco", g, weight).to(self.weight.dtype).contiguous()
        self.register_buffer("kernel_transform", kernel_transform, persistent=False)
        self.register_buffer("output_transform", a_t.to(self.weight.dtype), persistent=False)
        self.register_buffer("input_transform", b_t.to(self.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Sizes come from x.size(), never from a branch, so that a TorchScript trace stays shape-generic.
        batch, channels, length = x.size(0), x.size(1), x.size(2)
        kernel, dilation, padding = self.kernel_size[0], self.dilation[0], int(self.padding[0])
        tile, alpha = self.tile, self.tile + kernel - 1
        block = tile * dilation  # outputs of one phase's tile at each of the `dilation` phases
        produced = length + 2 * padding - (kernel - 1) * dilation
        blocks = (produced + block - 1) // block
        padded_length = blocks * block + (kernel - 1) * dilation
        # [batch, time, channels], padded by the conv's own padding and up to whole blocks: a fresh copy.
        padded = F.pad(x.transpose(1, 2), (0, 0, padding, padded_length - length - padding))
        out_channels = self.out_channels
        tiles = padded.as_strided(
            (batch, blocks, dilation, alpha, channels),
            (padded_length * channels, block * channels, channels, dilation * channels, 1),
        )
        count = batch * blocks * dilation
        inputs = torch.matmul(self.input_transform, tiles.reshape(count, alpha, channels))
        products = torch.bmm(inputs.transpose(0, 1), self.kernel_transform)  # [alpha, tiles, out]
        outputs = torch.mm(self.output_transform, products.view(alpha, count * out_channels))
        # [tile, batch*blocks, dilation, out] -> [batch*blocks, tile, dilation, out]: time order.
        ordered = outputs.view(tile, batch * blocks, dilation, out_channels).permute(1, 0, 2, 3)
        result = torch.empty(batch, blocks * block, out_channels, dtype=x.dtype, device=x.device)
        target = result.view(batch * blocks, tile, dilation, out_channels)
        if self.bias is None:
            target.copy_(ordered)
        else:
            torch.add(ordered, self.bias, out=target)
        return result[:, :produced].transpose(1, 2)


def use_winograd(module: nn.Module, min_channels: int = MIN_CHANNELS) -> int:
    """Replace (in place) every channels-last conv inside ``module`` that gains from Winograd: stride 1,
    one group, a kernel of 3, 5 or 7, at least ``min_channels`` channels in and out, float32. Returns how
    many were replaced. For a CPU (on a GPU the direct convs run as they are)."""
    replaced = 0
    for name, child in module.named_children():
        if type(child) is Conv1d and _gains(child, min_channels):  # not one converted already
            setattr(module, name, WinogradConv1d(child))
            replaced += 1
        else:
            replaced += use_winograd(child, min_channels)
    return replaced


def _gains(conv: Conv1d, min_channels: int) -> bool:
    return (
        conv.kernel_size[0] in KERNELS
        and conv.stride[0] == 1
        and conv.groups == 1
        and not isinstance(conv.padding, str)
        and min(conv.in_channels, conv.out_channels) >= min_channels
        and conv.weight.dtype == torch.float32
    )
