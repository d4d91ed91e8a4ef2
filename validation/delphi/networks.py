"""Delphi's own experiment networks and planner configurations, rebuilt as ONNX and priced by hawkeye-onnx.

The Delphi paper (Mishra et al., USENIX Security 2020) measured ResNet-32 (CIFAR-100) and MiniONN (CIFAR-10)
with its planner replacing some ReLU layers by quadratic approximations. Its code defines exactly those
networks and configurations (mc2-project/delphi, rust/experiments/src):

* `resnet32.rs construct_resnet_32(vs, batch, num_poly, rng)`: conv 3->16 + activation, then three stages of
  five two-conv blocks (16, 32, 64 channels; stride 2 on the first conv of stages 2 and 3), every conv 3x3
  `Padding::Same` followed by an activation, then AvgPool 2x2 stride 2 and an FC to 10 outputs. No
  shortcut additions (Delphi's network library is a chain of layers: mc2-project/delphi issue #14). The
  activations are layers 2 l + 1 for l = 0..30; `num_poly` selects which l are quadratic (`poly_layers`).
* `minionn.rs construct_minionn(vs, batch, num_poly, rng)`: seven conv + activation layers with two 2x2
  average pools and an FC 1024 -> 10; `num_poly` selects which layer indices stay ReLU (`relu_layers`).

The tables below are data read from those files (not code); the builders only lay the same shapes out as
ONNX nodes so that the rule file prices the networks Delphi ran. Activations are named `/act{index}` with
Delphi's layer index; the quadratic ones go to `--param delphi.approx_relu`.

Run: `PYTHONPATH=. python validation/delphi/networks.py` (prints the table of docs/backends/delphi.md).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import hawkeye_onnx
from hawkeye_onnx.result import BackendReport

#: resnet32.rs construct_resnet_32: num_poly -> activation numbers l (layer 2 l + 1) that are quadratic.
#: Any other num_poly takes the last ones, `(32 - num_poly)..32` (l = 31 does not exist: 31 activations).
RESNET32_POLY = {
    6: (3, 5, 18, 19, 26, 27),
    12: (1, 2, 7, 10, 11, 12, 14, 16, 20, 21, 24, 28),
    14: (1, 2, 4, 5, 8, 9, 14, 16, 19, 20, 21, 24, 26, 29),
    16: (1, 3, 5, 6, 7, 8, 11, 15, 16, 17, 18, 19, 23, 24, 26, 29),
    18: (1, 2, 4, 5, 8, 9, 10, 11, 14, 15, 17, 18, 20, 23, 24, 26, 27, 29),
    20: (1, 2, 3, 5, 6, 8, 9, 10, 11, 13, 14, 16, 17, 18, 19, 21, 23, 25, 27, 28),
    22: (1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 23, 25, 27, 29),
    24: (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 19, 21, 23, 24, 25, 26, 27, 28, 29),
    26: (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29),
}
#: minionn.rs construct_minionn: num_poly -> layer indices whose activation stays a ReLU.
MINIONN_RELU = {0: (1, 3, 6, 8, 11, 13, 15), 1: (1, 3, 6, 8, 11, 13), 2: (1, 3, 6, 8, 11), 3: (3, 11, 13, 15),
                5: (6, 11), 6: (11,), 7: ()}
#: minionn.rs layer list: ("conv", out_channels, kernel) or ("pool",); activations follow every conv.
MINIONN_LAYERS = (("conv", 64, 3), ("conv", 64, 3), ("pool",), ("conv", 64, 3), ("conv", 64, 3), ("pool",),
                  ("conv", 64, 3), ("conv", 64, 1), ("conv", 16, 1))


class _Chain:
    """A chain of Delphi layers as ONNX nodes, numbered like Delphi's `network.layers` vector."""

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shape = shape
        self.x = "input"
        self.index = 0  # Delphi's layer index of the next layer

    def _out(self) -> str:
        return f"t{self.index}"

    def conv(self, c_out: int, k: int, stride: int) -> None:
        n, c, h, w = self.shape
        wname = f"w{self.index}"
        self.inits.append(numpy_helper.from_array(np.zeros((c_out, c, k, k), np.float32), wname))
        p = k // 2  # Padding::Same (odd kernels); 1x1 convs are Padding::Valid, the same
        self.nodes.append(helper.make_node("Conv", [self.x, wname], [self._out()], name=f"/conv{self.index}",
                                           kernel_shape=[k, k], strides=[stride, stride], pads=[p] * 4))
        self.x, self.index = self._out(), self.index + 1
        self.shape = (n, c_out, -(-h // stride), -(-w // stride))

    def act(self) -> str:
        name = f"/act{self.index}"
        self.nodes.append(helper.make_node("Relu", [self.x], [self._out()], name=name))
        self.x, self.index = self._out(), self.index + 1
        return name

    def pool(self) -> None:
        n, c, h, w = self.shape
        self.nodes.append(helper.make_node("AveragePool", [self.x], [self._out()], name=f"/pool{self.index}",
                                           kernel_shape=[2, 2], strides=[2, 2]))
        self.x, self.index = self._out(), self.index + 1
        self.shape = (n, c, h // 2, w // 2)

    def fc(self, out: int) -> onnx.ModelProto:
        n, c, h, w = self.shape
        self.nodes.append(helper.make_node("Flatten", [self.x], ["flat"], name="/flatten"))
        self.inits.append(numpy_helper.from_array(np.zeros((c * h * w, out), np.float32), "wfc"))
        self.nodes.append(helper.make_node("Gemm", ["flat", "wfc"], ["logits"], name=f"/fc{self.index}"))
        graph = helper.make_graph(self.nodes, "delphi", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                       [n, 3, 32, 32])],
                                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, out])],
                                  initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        return onnx.shape_inference.infer_shapes(model)


def resnet32(num_poly: int = 0, batch: int = 1) -> tuple[onnx.ModelProto, list[str]]:
    """construct_resnet_32: the model and the names of its quadratic activations for `num_poly`."""
    poly = set(RESNET32_POLY.get(num_poly, range(32 - num_poly, 32)))
    net, acts = _Chain((batch, 3, 32, 32)), []
    net.conv(16, 3, 1)
    acts.append(net.act())
    for c_out, stride in ((16, 1), (32, 2), (64, 2)):
        for block in range(5):
            net.conv(c_out, 3, stride if block == 0 else 1)
            acts.append(net.act())
            net.conv(c_out, 3, 1)
            acts.append(net.act())
    net.pool()
    model = net.fc(10)
    return model, [name for number, name in enumerate(acts) if number in poly]


def minionn(num_poly: int = 0, batch: int = 1) -> tuple[onnx.ModelProto, list[str]]:
    """construct_minionn: the model and the names of its quadratic activations for `num_poly`."""
    relu = set(MINIONN_RELU[num_poly])
    net, quad = _Chain((batch, 3, 32, 32)), []
    for layer in MINIONN_LAYERS:
        if layer[0] == "pool":
            net.pool()
            continue
        net.conv(layer[1], layer[2], 1)
        index = net.index
        name = net.act()
        if index not in relu:
            quad.append(name)
    return net.fc(10), quad


BUILDERS = {"resnet32": (resnet32, (0, *sorted(RESNET32_POLY))), "minionn": (minionn, tuple(sorted(MINIONN_RELU)))}


def price(name: str, num_poly: int = 0) -> BackendReport:
    """Delphi's network `name` with `num_poly` quadratic activations, priced with the rule file's defaults
    (Delphi's own parameters: 41-bit prime, 8 fraction bits, N = 8192)."""
    model, quad = BUILDERS[name][0](num_poly)
    params = {"approx_relu": ",".join(quad)} if quad else {}
    return hawkeye_onnx.profile(model, backends=["delphi"], params={"delphi": params}).backends["delphi"]


LABELS = {"resnet32": "ResNet-32", "minionn": "MiniONN"}


def table() -> list[str]:
    """The markdown table of docs/backends/delphi.md (tests/test_delphi.py checks the doc carries it)."""
    rows = ["| network | quadratic layers (`num_poly`) | garbled ReLUs | online MB | offline GB |",
            "|---|---:|---:|---:|---:|"]
    for name, (_, configs) in BUILDERS.items():
        for k in configs:
            b = price(name, k)
            left = garbled(name, k)
            label = f"{k} (all ReLU)" if k == 0 else f"{k} (all quadratic)" if left == 0 else str(k)
            on, off = b.total.online.bytes / 1e6, b.total.offline.bytes / 1e9
            rows.append(f"| {LABELS[name]} | {label} | {left:,} | {on:.1f} | {off:.2f} |")
    return rows


def main() -> None:
    print("\n".join(table()))


def garbled(name: str, num_poly: int) -> int:
    """Activations still garbled: the ReLU values outside the quadratic set."""
    model, quad = BUILDERS[name][0](num_poly)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    return sum(int(np.prod(shapes[n.output[0]])) for n in model.graph.node
               if n.op_type == "Relu" and n.name not in quad)


if __name__ == "__main__":
    main()
