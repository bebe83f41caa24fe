"""The weights of a Piper ONNX export, by PyTorch module name, with the conv settings of the graph.

Piper exports keep their module names for most initializers (``enc_p.*``, ``dp.*``, ``flow.*``, ``dec.*``;
the phoneme embedding is the initializer named ``sid``). The tracer gave the flow WaveNets' conv weights
anonymous names (``onnx::Conv_8168``): those are named here after the graph node that consumes them
(``/flow/flows.6/enc/in_layers.0/Conv`` -> ``flow.flows.6.enc.in_layers.0.weight``), never by their order.
Everything else is a constant the tracer folded out of the graph (shapes, scalars); of those only
``/dp/flows.0/Exp_output_0`` carries a weight (``exp(-logs)`` of the duration predictor's affine flow).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.\w+)+$")
_CONV_OPS = {"Conv", "ConvTranspose"}


@dataclass(frozen=True)
class ConvAttrs:
    """The settings of one Conv/ConvTranspose node of the graph (1-d)."""

    kernel: int
    dilation: int
    stride: int
    padding: int


class OnnxWeights:
    """Initializers by module name; :meth:`take` marks what the loader used, :meth:`unused` lists the rest."""

    def __init__(self, arrays: dict[str, np.ndarray], convs: dict[str, ConvAttrs]) -> None:
        self.arrays = arrays
        self.convs = convs
        self._taken: set[str] = set()

    @classmethod
    def read(cls, path: str | Path) -> OnnxWeights:
        graph = onnx.load(str(path)).graph
        arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        convs: dict[str, ConvAttrs] = {}
        for node in graph.node:
            if node.op_type not in _CONV_OPS:
                continue
            module = node.name.strip("/").removesuffix(f"/{node.op_type}").replace("/", ".")
            weight = node.input[1]
            if weight != f"{module}.weight":
                if weight not in arrays:
                    raise ValueError(
                        f"conv node {node.name} reads weight {weight!r}, which is no initializer"
                    )
                arrays[f"{module}.weight"] = arrays.pop(weight)
            convs[module] = _conv_attrs(node)
        return cls(arrays, convs)

    def has(self, name: str) -> bool:
        return name in self.arrays

    def take(self, name: str) -> torch.Tensor:
        if name not in self.arrays:
            raise KeyError(f"the ONNX file has no initializer {name!r}")
        self._taken.add(name)
        return torch.tensor(self.arrays[name], dtype=torch.float32)

    def names(self, prefix: str) -> list[str]:
        return sorted(name for name in self.arrays if name.startswith(prefix))

    def unused(self) -> list[str]:
        """Module weights no loader took (graph constants, named after graph values, are not listed)."""
        return sorted(
            name
            for name in self.arrays
            if name not in self._taken and (name == "sid" or _MODULE_NAME.match(name) is not None)
        )

    def graph_constants(self) -> list[str]:
        return sorted(name for name in self.arrays if name != "sid" and _MODULE_NAME.match(name) is None)


def _conv_attrs(node: onnx.NodeProto) -> ConvAttrs:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    pads = attrs.get("pads", [0, 0])
    if len(attrs.get("kernel_shape", [0])) != 1 or pads[0] != pads[-1]:
        raise ValueError(f"{node.name}: only 1-d convs with symmetric padding are supported, got {attrs}")
    return ConvAttrs(
        kernel=int(attrs["kernel_shape"][0]),
        dilation=int(attrs.get("dilations", [1])[0]),
        stride=int(attrs.get("strides", [1])[0]),
        padding=int(pads[0]),
    )
