"""Paper-scale model zoo: well-known architectures as ONNX graphs, built with `onnx.helper` alone.

Why: the MPC papers we are compared with report ResNet-50, DenseNet-121, BERT-base, GPT-2 and the CIFAR
networks of MiniONN / Delphi / CrypTFlow2 at their real sizes. Exporting them needs torch, torchvision,
transformers and hundreds of MB of weights; the profiler needs none of that, because costs depend only on
the graph and its dims. So each model is written here layer by layer with the shapes of its source
definition and the node names PyTorch's TorchScript exporter gives it (`torch.onnx.export(model, x,
dynamo=False, opset_version=17, input_names=["input"], do_constant_folding=True)` of the eval-mode
module, see shared/reference/onnx-facts.md §2.1): `/layer1/layer1.0/conv1/Conv`, `/layer1/layer1.0/relu_1/Relu`
for a module called twice, `/Flatten` for a functional op at the root, `<node>_output_0` tensors,
`onnx::Conv_<n>` for BatchNorm-folded weights and `onnx::MatMul_<n>` for transposed Linear weights.

Weights are never materialised: every initializer is an external-data reference into one `<file>.data`
that `save` creates with `os.truncate`, a sparse file that takes no disk blocks. A model is a few hundred
KB of protobuf whatever its parameter count, passes `onnx.checker.check_model(path, full_check=True)`, and
onnx's shape inference gives every tensor a static shape (every Reshape target is a constant, as it is in
a static-shape trace).

Where the real export has shape plumbing that only onnx's data propagation could see through (e.g. the
Shape/Gather/Div arithmetic torch emits for the bounds of `x.chunk(2, dim=1)`, or for `F.pad`'s pads) we
emit the constant it computes instead; those nodes are public and cost nothing under any backend. The deviations,
per model, are listed in `NOTES`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["NAMES", "NOTES", "PARAMS_KEY", "build", "default_seq", "pytorch_parameters", "save", "source"]

OPSET = 17
#: metadata_props key holding the parameter count of the source PyTorch module (before BatchNorm folding).
PARAMS_KEY = "hawkeye.zoo.pytorch_parameters"
_INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------------------
# Builder: scopes, exporter-style names, external-data weights
# --------------------------------------------------------------------------------------------------


class Builder:
    """Accumulates nodes and weight references under TorchScript-exporter naming.

    Module scopes are entered with `module(name)`; a module entered twice under the same parent gets the
    exporter's `name_1`, `name_2` suffix (a reused `nn.ReLU`), and node names are deduplicated the same
    way (`/layer1/layer1.0/Add`, `/layer1/layer1.0/Add_1`). Each scope also knows the module's qualified
    PyTorch path (`layer1.0.conv1`), which names the weights that keep their PyTorch names.

    `parameters` counts the elements of the source module's `nn.Parameter`s, so that the published counts
    can be checked even where folding BatchNorm into the preceding Conv changes the initializers.
    """

    def __init__(self, name: str, *, fold_bn: bool = True) -> None:
        self.name = name
        self.fold_bn = fold_bn
        self.location = f"{name}.onnx.data"
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.data_bytes = 0
        self.parameters = 0
        self._scopes: list[tuple[str, str, str]] = []  # (module name, shown segment, qualified path)
        self._scope_calls: Counter[tuple[str, ...]] = Counter()
        self._node_names: Counter[str] = Counter()
        self._ids = itertools.count(1)

    # -- scopes and names ------------------------------------------------------------------------

    @contextmanager
    def module(self, *names: str) -> Iterator[None]:
        """Enter nested module scopes, e.g. `module("layer1", "layer1.0")`."""
        for name in names:
            shown_parent = tuple(s[1] for s in self._scopes)
            calls = self._scope_calls[(*shown_parent, name)]
            self._scope_calls[(*shown_parent, name)] += 1
            shown = name if calls == 0 else f"{name}_{calls}"
            parent_name, parent_q = (self._scopes[-1][0], self._scopes[-1][2]) if self._scopes else ("", "")
            if parent_name and name.startswith(parent_name + "."):  # `layer1` -> `layer1.0`: already qualified
                qualified = parent_q + name[len(parent_name):]
            else:
                qualified = f"{parent_q}.{name}" if parent_q else name
            self._scopes.append((name, shown, qualified))
        try:
            yield
        finally:
            del self._scopes[len(self._scopes) - len(names):]

    @property
    def qualified(self) -> str:
        """The current module's PyTorch path, e.g. `layer1.0.conv1`."""
        return self._scopes[-1][2] if self._scopes else ""

    def op_n(self, op: str, inputs: Sequence[str], n: int, **attrs: object) -> list[str]:
        """Add a node with `n` outputs in the current scope; returns the output tensor names."""
        base = "/" + "".join(s[1] + "/" for s in self._scopes) + op
        k = self._node_names[base]
        self._node_names[base] += 1
        name = base if k == 0 else f"{base}_{k}"
        outputs = [f"{name}_output_{i}" for i in range(n)]
        self.nodes.append(helper.make_node(op, list(inputs), outputs, name=name, **attrs))
        return outputs

    def op(self, op: str, inputs: Sequence[str], **attrs: object) -> str:
        """Add a single-output node in the current scope."""
        return self.op_n(op, inputs, 1, **attrs)[0]

    def call(self, name: str | None, op: str, inputs: Sequence[str], **attrs: object) -> str:
        """A node inside module `name` (an `nn.Module` call), or at the current scope (a functional op)."""
        if name is None:
            return self.op(op, inputs, **attrs)
        with self.module(name):
            return self.op(op, inputs, **attrs)

    def const(self, value: object, dtype: type | None = None) -> str:
        """A Constant node, as the exporter writes Python numbers, shapes and folded buffers."""
        arr = np.asarray(value, dtype=dtype)
        return self.op("Constant", [], value=numpy_helper.from_array(arr))

    # -- inputs and weights ------------------------------------------------------------------------

    def input(self, name: str, shape: Sequence[int], elem_type: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def weight(self, shape: Sequence[int], name: str | None = None, *, kind: str = "Conv",
               param: bool = True) -> str:
        """A float initializer stored as an external-data reference (no bytes in the proto).

        `name` None gives the exporter's name for a tensor it computed (`onnx::Conv_7`); `param` says
        whether the tensor is an `nn.Parameter` of the source module (running stats and folded biases
        are not)."""
        if name is None:
            name = f"onnx::{kind}_{next(self._ids)}"
        size = math.prod(shape)
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(shape))
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(self.data_bytes)),
                           ("length", str(4 * size))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.data_bytes += 4 * size
        self.initializers.append(tensor)
        if param:
            self.parameters += size
        return name

    def param(self, suffix: str, shape: Sequence[int]) -> str:
        """A weight that keeps its PyTorch name, `<qualified module>.<suffix>`."""
        return self.weight(shape, f"{self.qualified}.{suffix}")

    # -- layers ------------------------------------------------------------------------------------

    def conv(self, x: str, name: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0,
             groups: int = 1, *, bias: bool = True, bn: str | None = None, bn_eps: float = 1e-5,
             bn_momentum: float = 0.1) -> str:
        """`nn.Conv2d` module `name`, optionally followed by the `nn.BatchNorm2d` sibling `bn`.

        With `fold_bn` the exporter folds an eval-mode BatchNorm into the Conv: one Conv named after the
        conv module, with a computed weight and bias (`onnx::Conv_<n>`), and no BatchNormalization node."""
        shape = (cout, cin // groups, k, k)
        attrs = {"dilations": [1, 1], "group": groups, "kernel_shape": [k, k], "pads": [pad] * 4,
                 "strides": [stride, stride]}
        with self.module(name):
            if bn is not None and self.fold_bn:
                w = self.weight(shape)
                b = self.weight((cout,), param=False)
                self.parameters += (cout if bias else 0) + 2 * cout  # conv bias, BN weight and bias
                return self.op("Conv", [x, w, b], **attrs)
            inputs = [x, self.param("weight", shape)] + ([self.param("bias", (cout,))] if bias else [])
            y = self.op("Conv", inputs, **attrs)
        return y if bn is None else self.batchnorm(y, bn, cout, bn_eps, bn_momentum)

    def batchnorm(self, x: str, name: str, c: int, eps: float = 1e-5, momentum: float = 0.1) -> str:
        """An eval-mode `nn.BatchNorm2d` the exporter cannot fold (it follows a Concat, or fold_bn=False)."""
        with self.module(name):
            inputs = [x, self.param("weight", (c,)), self.param("bias", (c,)),
                      self.weight((c,), f"{self.qualified}.running_mean", param=False),
                      self.weight((c,), f"{self.qualified}.running_var", param=False)]
            return self.op("BatchNormalization", inputs, epsilon=eps, momentum=1.0 - momentum, training_mode=0)

    def maxpool(self, x: str, name: str, k: int, stride: int, pad: int = 0, *, ceil: bool = False) -> str:
        return self.call(name, "MaxPool", [x], ceil_mode=int(ceil), dilations=[1, 1], kernel_shape=[k, k],
                         pads=[pad] * 4, strides=[stride, stride])

    def avgpool(self, x: str, name: str | None, k: int, stride: int) -> str:
        return self.call(name, "AveragePool", [x], ceil_mode=0, count_include_pad=1, kernel_shape=[k, k],
                         pads=[0, 0, 0, 0], strides=[stride, stride])

    def linear(self, x: str, name: str, fin: int, fout: int) -> str:
        """`nn.Linear` on a 2-D input: Gemm with the PyTorch weight, transB=1."""
        with self.module(name):
            return self.op("Gemm", [x, self.param("weight", (fout, fin)), self.param("bias", (fout,))],
                           alpha=1.0, beta=1.0, transB=1)

    def dense(self, x: str, name: str, fin: int, fout: int) -> str:
        """`nn.Linear` on a 3-D input: MatMul with the transposed weight, then Add(bias, product)."""
        with self.module(name):
            y = self.op("MatMul", [x, self.weight((fin, fout), kind="MatMul")])
            return self.op("Add", [self.param("bias", (fout,)), y])

    def conv1d(self, x: str, name: str, fin: int, fout: int, lead: Sequence[int]) -> str:
        """HF GPT-2's `Conv1D`: `addmm(bias, x.view(-1, fin), weight).view(*lead, fout)`."""
        with self.module(name):
            flat = self.op("Reshape", [x, self.const([-1, fin], np.int64)], allowzero=0)
            y = self.op("Gemm", [flat, self.param("weight", (fin, fout)), self.param("bias", (fout,))],
                        alpha=1.0, beta=1.0)
            return self.op("Reshape", [y, self.const([*lead, fout], np.int64)], allowzero=0)

    def layernorm(self, x: str, name: str, dim: int, eps: float) -> str:
        with self.module(name):
            return self.op("LayerNormalization", [x, self.param("weight", (dim,)), self.param("bias", (dim,))],
                           axis=-1, epsilon=eps)

    def embedding(self, ids: str, name: str, num: int, dim: int) -> str:
        with self.module(name):
            return self.op("Gather", [self.param("weight", (num, dim)), ids])

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.const(list(shape), np.int64)], allowzero=0)

    # -- the model -----------------------------------------------------------------------------------

    def finish(self, outputs: dict[str, str], doc: str) -> onnx.ModelProto:
        """Rename the output tensors, attach shapes from onnx's inference, record the parameter count."""
        rename = {tensor: name for name, tensor in outputs.items()}
        for node in self.nodes:
            for i, out in enumerate(node.output):
                if out in rename:
                    node.output[i] = rename[out]
            for i, inp in enumerate(node.input):
                if inp in rename:
                    node.input[i] = rename[inp]
        graph = helper.make_graph(self.nodes, "main_graph", self.inputs,
                                  [helper.make_empty_tensor_value_info(n) for n in outputs],
                                  initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="hawkeye-onnx.zoo", doc_string=doc)
        model.ir_version = 8  # what torch.onnx writes at opset 17
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        del model.graph.output[:]
        model.graph.output.extend(inferred.graph.output)
        helper.set_model_props(model, {PARAMS_KEY: str(self.parameters), "hawkeye.zoo.model": self.name})
        return model


# --------------------------------------------------------------------------------------------------
# Torchvision CNNs
# --------------------------------------------------------------------------------------------------


def _resnet50(b: Builder, batch: int) -> dict[str, str]:
    """torchvision.models.resnet50 (v1.5: stride on the 3x3 conv)."""
    x = b.input("input", (batch, 3, 224, 224))
    x = b.conv(x, "conv1", 3, 64, 7, 2, 3, bias=False, bn="bn1")
    x = b.call("relu", "Relu", [x])
    x = b.maxpool(x, "maxpool", 3, 2, 1)
    cin = 64
    for li, (planes, blocks, stride) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2),
                                                      strict=True), 1):
        with b.module(f"layer{li}"):
            for i in range(blocks):
                s = stride if i == 0 else 1
                with b.module(f"layer{li}.{i}"):
                    out = b.conv(x, "conv1", cin, planes, 1, bias=False, bn="bn1")
                    out = b.call("relu", "Relu", [out])
                    out = b.conv(out, "conv2", planes, planes, 3, s, 1, bias=False, bn="bn2")
                    out = b.call("relu", "Relu", [out])
                    out = b.conv(out, "conv3", planes, planes * 4, 1, bias=False, bn="bn3")
                    if i == 0:
                        with b.module("downsample"):
                            x = b.conv(x, "downsample.0", cin, planes * 4, 1, s, bias=False, bn="downsample.1")
                    x = b.call("relu", "Relu", [b.op("Add", [out, x])])
                    cin = planes * 4
    x = b.call("avgpool", "GlobalAveragePool", [x])
    x = b.op("Flatten", [x], axis=1)
    return {"output": b.linear(x, "fc", 2048, 1000)}


def _densenet121(b: Builder, batch: int) -> dict[str, str]:
    """torchvision.models.densenet121 (growth 32, blocks 6/12/24/16, bn_size 4, memory_efficient=False).

    The pre-activation BatchNorms (norm1, transition norm, norm5) follow a Concat, so the exporter cannot
    fold them: they stay BatchNormalization nodes even with fold_bn."""
    growth, bottleneck = 32, 4 * 32
    x = b.input("input", (batch, 3, 224, 224))
    with b.module("features"):
        x = b.conv(x, "conv0", 3, 64, 7, 2, 3, bias=False, bn="norm0")
        x = b.call("relu0", "Relu", [x])
        x = b.maxpool(x, "pool0", 3, 2, 1)
        c = 64
        for bi, layers in enumerate((6, 12, 24, 16), 1):
            with b.module(f"denseblock{bi}"):
                features = [x]
                for li in range(1, layers + 1):
                    with b.module(f"denselayer{li}"):
                        cin = c + (li - 1) * growth
                        h = b.op("Concat", features, axis=1)
                        h = b.call("relu1", "Relu", [b.batchnorm(h, "norm1", cin)])
                        h = b.conv(h, "conv1", cin, bottleneck, 1, bias=False, bn="norm2")
                        h = b.call("relu2", "Relu", [h])
                        features.append(b.conv(h, "conv2", bottleneck, growth, 3, 1, 1, bias=False))
                x = b.op("Concat", features, axis=1)
            c += layers * growth
            if bi < 4:
                with b.module(f"transition{bi}"):
                    x = b.call("relu", "Relu", [b.batchnorm(x, "norm", c)])
                    x = b.conv(x, "conv", c, c // 2, 1, bias=False)
                    x = b.avgpool(x, "pool", 2, 2)
                c //= 2
        x = b.batchnorm(x, "norm5", c)
    x = b.op("GlobalAveragePool", [b.op("Relu", [x])])
    x = b.op("Flatten", [x], axis=1)
    return {"output": b.linear(x, "classifier", c, 1000)}


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision.models._utils._make_divisible (channel rounding of MobileNet)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


#: torchvision mobilenet_v3_large: (in, kernel, expanded, out, use_se, activation, stride)
_MBV3_LARGE = (
    (16, 3, 16, 16, False, "Relu", 1), (16, 3, 64, 24, False, "Relu", 2), (24, 3, 72, 24, False, "Relu", 1),
    (24, 5, 72, 40, True, "Relu", 2), (40, 5, 120, 40, True, "Relu", 1), (40, 5, 120, 40, True, "Relu", 1),
    (40, 3, 240, 80, False, "HardSwish", 2), (80, 3, 200, 80, False, "HardSwish", 1),
    (80, 3, 184, 80, False, "HardSwish", 1), (80, 3, 184, 80, False, "HardSwish", 1),
    (80, 3, 480, 112, True, "HardSwish", 1), (112, 3, 672, 112, True, "HardSwish", 1),
    (112, 5, 672, 160, True, "HardSwish", 2), (160, 5, 960, 160, True, "HardSwish", 1),
    (160, 5, 960, 160, True, "HardSwish", 1),
)


def _mobilenet_v3_large(b: Builder, batch: int) -> dict[str, str]:
    """torchvision.models.mobilenet_v3_large (BN eps 0.001, momentum 0.01; SE squeeze = make_divisible(c/4))."""

    def conv_norm_act(x: str, name: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                      act: str | None = None) -> str:
        # Conv2dNormActivation is a Sequential: <name>.0 conv, <name>.1 BN, <name>.2 activation
        with b.module(name):
            x = b.conv(x, f"{name}.0", cin, cout, k, stride, (k - 1) // 2, groups, bias=False, bn=f"{name}.1",
                       bn_eps=0.001, bn_momentum=0.01)
            return x if act is None else b.call(f"{name}.2", act, [x])

    x = b.input("input", (batch, 3, 224, 224))
    with b.module("features"):
        x = conv_norm_act(x, "features.0", 3, 16, 3, 2, act="HardSwish")
        for i, (cin, k, exp, cout, se, act, stride) in enumerate(_MBV3_LARGE, 1):
            with b.module(f"features.{i}"):
                with b.module("block"):
                    h, j = x, 0
                    if exp != cin:
                        h, j = conv_norm_act(h, "block.0", cin, exp, 1, act=act), 1
                    h = conv_norm_act(h, f"block.{j}", exp, exp, k, stride, exp, act=act)
                    j += 1
                    if se:
                        with b.module(f"block.{j}"):
                            squeeze = _make_divisible(exp // 4)
                            s = b.call("avgpool", "GlobalAveragePool", [h])
                            s = b.call("activation", "Relu", [b.conv(s, "fc1", exp, squeeze, 1)])
                            s = b.conv(s, "fc2", squeeze, exp, 1)
                            s = b.call("scale_activation", "HardSigmoid", [s], alpha=1.0 / 6)
                            h = b.op("Mul", [s, h])
                        j += 1
                    h = conv_norm_act(h, f"block.{j}", exp, cout, 1)
                x = b.op("Add", [h, x]) if stride == 1 and cin == cout else h
        x = conv_norm_act(x, "features.16", 160, 960, 1, act="HardSwish")
    x = b.op("Flatten", [b.call("avgpool", "GlobalAveragePool", [x])], axis=1)
    with b.module("classifier"):
        x = b.call("classifier.1", "HardSwish", [b.linear(x, "classifier.0", 960, 1280)])
        x = b.linear(x, "classifier.3", 1280, 1000)  # classifier.2 is Dropout: gone in eval mode
    return {"output": x}


def _shufflenet_v2_x1_0(b: Builder, batch: int) -> dict[str, str]:
    """torchvision.models.shufflenet_v2_x1_0 (stages 4/8/4, channels 24/116/232/464/1024).

    `x.chunk(2, dim=1)` is two Slices on the channel axis, as torch 2.x exports it, but with constant
    bounds where torch computes them with Shape/Gather/Add/Div/Mul; channel_shuffle is Reshape/Transpose/
    Reshape with constant shapes, as exported."""
    x = b.input("input", (batch, 3, 224, 224))
    with b.module("conv1"):
        x = b.call("conv1.2", "Relu", [b.conv(x, "conv1.0", 3, 24, 3, 2, 1, bias=False, bn="conv1.1")])
    x = b.maxpool(x, "maxpool", 3, 2, 1)
    cin, size = 24, 56
    for si, (repeats, cout) in enumerate(zip((4, 8, 4), (116, 232, 464), strict=True), 2):
        half = cout // 2
        with b.module(f"stage{si}"):
            for i in range(repeats):
                stride = 2 if i == 0 else 1
                size = size // stride
                with b.module(f"stage{si}.{i}"):
                    if stride == 1:  # x1, x2 = x.chunk(2, dim=1)
                        axes = b.const([1], np.int64)
                        keep = b.op("Slice", [x, b.const([0], np.int64), b.const([half], np.int64), axes])
                        x2 = b.op("Slice", [x, b.const([half], np.int64), b.const([cout], np.int64), axes])
                        branch_in = half
                    else:
                        with b.module("branch1"):
                            keep = b.conv(x, "branch1.0", cin, cin, 3, 2, 1, cin, bias=False, bn="branch1.1")
                            keep = b.conv(keep, "branch1.2", cin, half, 1, bias=False, bn="branch1.3")
                            keep = b.call("branch1.4", "Relu", [keep])
                        x2, branch_in = x, cin
                    with b.module("branch2"):
                        h = b.conv(x2, "branch2.0", branch_in, half, 1, bias=False, bn="branch2.1")
                        h = b.call("branch2.2", "Relu", [h])
                        h = b.conv(h, "branch2.3", half, half, 3, stride, 1, half, bias=False, bn="branch2.4")
                        h = b.conv(h, "branch2.5", half, half, 1, bias=False, bn="branch2.6")
                        h = b.call("branch2.7", "Relu", [h])
                    x = b.op("Concat", [keep, h], axis=1)
                    x = b.reshape(x, (batch, 2, half, size, size))
                    x = b.op("Transpose", [x], perm=[0, 2, 1, 3, 4])
                    x = b.reshape(x, (batch, cout, size, size))
                cin = cout
    with b.module("conv5"):
        x = b.call("conv5.2", "Relu", [b.conv(x, "conv5.0", 464, 1024, 1, bias=False, bn="conv5.1")])
    x = b.op("ReduceMean", [x], axes=[2, 3], keepdims=0)
    return {"output": b.linear(x, "fc", 1024, 1000)}


def _vgg16(b: Builder, batch: int) -> dict[str, str]:
    """torchvision.models.vgg16 (configuration D, no BatchNorm)."""
    x = b.input("input", (batch, 3, 224, 224))
    cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    with b.module("features"):
        cin, idx = 3, 0
        for v in cfg:
            if v == "M":
                x = b.maxpool(x, f"features.{idx}", 2, 2)
                idx += 1
            else:
                assert isinstance(v, int)
                x = b.conv(x, f"features.{idx}", cin, v, 3, 1, 1)
                x = b.call(f"features.{idx + 1}", "Relu", [x])
                cin, idx = v, idx + 2
    # AdaptiveAvgPool2d((7, 7)) on a 7x7 map: the exporter writes a 1x1 AveragePool
    x = b.call("avgpool", "AveragePool", [x], kernel_shape=[1, 1], strides=[1, 1])
    x = b.op("Flatten", [x], axis=1)
    with b.module("classifier"):
        x = b.call("classifier.1", "Relu", [b.linear(x, "classifier.0", 512 * 7 * 7, 4096)])
        x = b.call("classifier.4", "Relu", [b.linear(x, "classifier.3", 4096, 4096)])
        x = b.linear(x, "classifier.6", 4096, 1000)
    return {"output": x}


def _squeezenet1_1(b: Builder, batch: int) -> dict[str, str]:
    """torchvision.models.squeezenet1_1 (Fire modules; MaxPool with ceil_mode=True)."""
    fires = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
             9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
    x = b.input("input", (batch, 3, 224, 224))
    with b.module("features"):
        x = b.call("features.1", "Relu", [b.conv(x, "features.0", 3, 64, 3, 2)])
        for idx in range(2, 13):
            if idx not in fires:
                x = b.maxpool(x, f"features.{idx}", 3, 2, ceil=True)
                continue
            cin, squeeze, expand = fires[idx]
            with b.module(f"features.{idx}"):
                s = b.call("squeeze_activation", "Relu", [b.conv(x, "squeeze", cin, squeeze, 1)])
                e1 = b.call("expand1x1_activation", "Relu", [b.conv(s, "expand1x1", squeeze, expand, 1)])
                e3 = b.call("expand3x3_activation", "Relu", [b.conv(s, "expand3x3", squeeze, expand, 3, 1, 1)])
                x = b.op("Concat", [e1, e3], axis=1)
    with b.module("classifier"):  # classifier.0 is Dropout: gone in eval mode
        x = b.call("classifier.2", "Relu", [b.conv(x, "classifier.1", 512, 1000, 1)])
        x = b.call("classifier.3", "GlobalAveragePool", [x])
    return {"output": b.op("Flatten", [x], axis=1)}


# --------------------------------------------------------------------------------------------------
# CIFAR-10 networks of the MPC literature
# --------------------------------------------------------------------------------------------------


def _resnet32_cifar(b: Builder, batch: int) -> dict[str, str]:
    """He et al.'s CIFAR ResNet-32 (3 stages x 5 BasicBlocks, 16/32/64 channels, option-A shortcuts).

    Module names follow the common PyTorch definition (akamaster/pytorch_resnet_cifar10 `resnet32`:
    conv1/bn1, layer1-3, shortcut, linear, functional relu). The option-A shortcut
    `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, c/4, c/4))` is exported as two strided Slices and a Pad; its
    pads are a constant here (torch computes them with ConstantOfShape/Concat/Reshape/Slice/Transpose/Cast)."""
    x = b.input("input", (batch, 3, 32, 32))
    x = b.op("Relu", [b.conv(x, "conv1", 3, 16, 3, 1, 1, bias=False, bn="bn1")])
    cin = 16
    for li, planes in enumerate((16, 32, 64), 1):
        with b.module(f"layer{li}"):
            for i in range(5):
                stride = 2 if li > 1 and i == 0 else 1
                with b.module(f"layer{li}.{i}"):
                    out = b.op("Relu", [b.conv(x, "conv1", cin, planes, 3, stride, 1, bias=False, bn="bn1")])
                    out = b.conv(out, "conv2", planes, planes, 3, 1, 1, bias=False, bn="bn2")
                    if stride != 1 or cin != planes:
                        with b.module("shortcut"):
                            for axis in (2, 3):
                                consts = [b.const([v], np.int64) for v in (axis, 0, _INT64_MAX, 2)]
                                x = b.op("Slice", [x, consts[1], consts[2], consts[0], consts[3]])
                            pads = b.const([0, planes // 4, 0, 0, 0, planes // 4, 0, 0], np.int64)
                            x = b.op("Pad", [x, pads, b.const(0.0, np.float32)], mode="constant")
                    x = b.op("Relu", [b.op("Add", [out, x])])
                    cin = planes
    x = b.avgpool(x, None, 8, 8)
    x = b.reshape(x, (batch, -1))
    return {"output": b.linear(x, "linear", 64, 10)}


def _minionn_cifar(b: Builder, batch: int) -> dict[str, str]:
    """The CIFAR-10 network of MiniONN (Liu et al., CCS'17, Fig. 13; also CrypTFlow2's "MiniONN"):
    7 convolutions (3x3 x5 with padding 1, then 1x1 to 64 and 1x1 to 16) with ReLU, two 2x2 mean pools,
    and one fully connected layer 1024 -> 10. Module names are those of a plain PyTorch module
    (conv1..conv7, relu1..relu7, pool1, pool2, fc)."""
    x = b.input("input", (batch, 3, 32, 32))
    layers = ((3, 64, 3), (64, 64, 3), "pool1", (64, 64, 3), (64, 64, 3), "pool2", (64, 64, 3), (64, 64, 1),
              (64, 16, 1))
    i = 0
    for layer in layers:
        if isinstance(layer, str):
            x = b.avgpool(x, layer, 2, 2)
            continue
        i += 1
        cin, cout, k = layer
        x = b.call(f"relu{i}", "Relu", [b.conv(x, f"conv{i}", cin, cout, k, 1, k // 2)])
    x = b.op("Flatten", [x], axis=1)
    return {"output": b.linear(x, "fc", 16 * 8 * 8, 10)}


# --------------------------------------------------------------------------------------------------
# Transformers (Hugging Face, eager attention)
# --------------------------------------------------------------------------------------------------


def _attend(b: Builder, q: str, k: str, v: str, out_shape: Sequence[int], scale: Callable[[str], str],
            mask: Callable[[str], str], *, cast: bool = False) -> str:
    """The eager attention core both HF models share, on heads already split and transposed (K as K^T):
    Q.K^T, the model's scaling and masking nodes, Softmax (GPT-2 casts it back to its dtype), .V, heads
    merged back to (batch, seq, hidden)."""
    probs = b.op("Softmax", [mask(scale(b.op("MatMul", [q, k])))], axis=-1)
    if cast:
        probs = b.op("Cast", [probs], to=TensorProto.FLOAT)
    context = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    return b.reshape(context, out_shape)


def _bert_base(b: Builder, batch: int, seq: int) -> dict[str, str]:
    """transformers BertModel (bert-base-uncased config: 12 layers, 768 hidden, 12 heads, FFN 3072, vocab
    30522, with the pooler), eager attention, no attention_mask / token_type_ids given (both folded to
    constants). Exact erf GELU: Div/Erf/Add/Mul/Mul; LayerNormalization (eps 1e-12) as one op."""
    hidden, heads, ffn = 768, 12, 3072
    if not 1 <= seq <= 512:
        raise ValueError(f"bert_base: seq {seq} outside 1..512 (its position embeddings)")
    ids = b.input("input_ids", (batch, seq), TensorProto.INT64)
    first = b.const(0, np.int64)
    token_types = b.op("Expand", [b.const(np.zeros((1, seq), np.int64)), b.const([batch, seq], np.int64)])
    with b.module("embeddings"):
        positions = b.const(np.arange(seq, dtype=np.int64)[None, :])
        x = b.embedding(ids, "word_embeddings", 30522, hidden)
        x = b.op("Add", [x, b.embedding(token_types, "token_type_embeddings", 2, hidden)])
        x = b.op("Add", [x, b.embedding(positions, "position_embeddings", 512, hidden)])
        x = b.layernorm(x, "LayerNorm", hidden, 1e-12)
    split = (batch, seq, heads, hidden // heads)

    def scale(scores: str) -> str:
        return b.op("Div", [scores, b.const(math.sqrt(hidden // heads), np.float32)])

    def mask(scores: str) -> str:  # (1 - attention_mask) * min, folded: all zeros without a mask
        return b.op("Add", [scores, b.const(np.full((batch, 1, 1, seq), -0.0, np.float32))])

    with b.module("encoder"):
        for i in range(12):
            with b.module(f"layer.{i}"):
                with b.module("attention"):
                    with b.module("self"):
                        q = b.dense(x, "query", hidden, hidden)
                        k = b.reshape(b.dense(x, "key", hidden, hidden), split)
                        v = b.reshape(b.dense(x, "value", hidden, hidden), split)
                        v = b.op("Transpose", [v], perm=[0, 2, 1, 3])
                        q = b.op("Transpose", [b.reshape(q, split)], perm=[0, 2, 1, 3])
                        k = b.op("Transpose", [k], perm=[0, 2, 3, 1])
                        ctx = _attend(b, q, k, v, (batch, seq, hidden), scale, mask)
                    with b.module("output"):
                        h = b.dense(ctx, "dense", hidden, hidden)
                        attn = b.layernorm(b.op("Add", [h, x]), "LayerNorm", hidden, 1e-12)
                with b.module("intermediate"):
                    h = b.dense(attn, "dense", hidden, ffn)
                    with b.module("intermediate_act_fn"):
                        g = b.op("Erf", [b.op("Div", [h, b.const(math.sqrt(2.0), np.float32)])])
                        g = b.op("Mul", [h, b.op("Add", [g, b.const(1.0, np.float32)])])
                        h = b.op("Mul", [g, b.const(0.5, np.float32)])
                with b.module("output"):
                    h = b.dense(h, "dense", ffn, hidden)
                    x = b.layernorm(b.op("Add", [h, attn]), "LayerNorm", hidden, 1e-12)
    with b.module("pooler"):
        pooled = b.op("Gather", [x, first], axis=1)
        pooled = b.call("activation", "Tanh", [b.linear(pooled, "dense", hidden, hidden)])
    return {"last_hidden_state": x, "pooler_output": pooled}


def _gpt2_small(b: Builder, batch: int, seq: int) -> dict[str, str]:
    """transformers GPT2Model (gpt2 config: 12 layers, 768 hidden, 12 heads, vocab 50257, 1024 positions),
    eager attention with the causal mask folded to a constant, tanh GELU (Mul/Pow/Mul/Add/Mul/Tanh/Add/Mul),
    LayerNormalization (eps 1e-5), Conv1D as Reshape/Gemm/Reshape (HF's addmm). No LM head: the published
    124,439,808 counts the head's weight once because it is tied to wte."""
    hidden, heads, ffn = 768, 12, 3072
    if not 1 <= seq <= 1024:
        raise ValueError(f"gpt2_small: seq {seq} outside 1..1024 (its position embeddings)")
    ids = b.input("input_ids", (batch, seq), TensorProto.INT64)
    ids = b.reshape(ids, (-1, seq))
    positions = b.const(np.arange(seq, dtype=np.int64)[None, :])
    x = b.op("Add", [b.embedding(ids, "wte", 50257, hidden), b.embedding(positions, "wpe", 1024, hidden)])
    split = (batch, seq, heads, hidden // heads)
    causal = np.tril(np.ones((seq, seq), dtype=bool))[None, None]

    def scale(scores: str) -> str:  # attn / torch.full([], v.size(-1) ** 0.5): the exporter leaves it unfolded
        root = b.op("Pow", [b.const(float(hidden // heads), np.float32), b.const(0.5, np.float32)])
        zeros = b.op("ConstantOfShape", [b.const(np.zeros(0, np.int64))],
                     value=numpy_helper.from_array(np.zeros(1, np.float32)))
        return b.op("Div", [scores, b.op("Add", [zeros, root])])

    def mask(scores: str) -> str:  # torch.where(causal_mask, attn, finfo.min), the mask a folded buffer slice
        keep = b.const(causal)
        scores = b.op("Cast", [scores], to=TensorProto.FLOAT)
        return b.op("Where", [keep, scores, b.const(np.finfo(np.float32).min, np.float32)])

    for i in range(12):
        with b.module(f"h.{i}"):
            h = b.layernorm(x, "ln_1", hidden, 1e-5)
            with b.module("attn"):
                qkv = b.conv1d(h, "c_attn", hidden, 3 * hidden, (batch, seq))
                q, k, v = b.op_n("Split", [qkv, b.const([hidden] * 3, np.int64)], 3, axis=2)
                q = b.op("Transpose", [b.reshape(q, split)], perm=[0, 2, 1, 3])
                k = b.reshape(k, split)
                v = b.op("Transpose", [b.reshape(v, split)], perm=[0, 2, 1, 3])
                k = b.op("Transpose", [k], perm=[0, 2, 3, 1])
                ctx = _attend(b, q, k, v, (batch, seq, hidden), scale, mask, cast=True)
                h = b.conv1d(ctx, "c_proj", hidden, hidden, (batch, seq))
            x = b.op("Add", [h, x])
            h = b.layernorm(x, "ln_2", hidden, 1e-5)
            with b.module("mlp"):
                h = b.conv1d(h, "c_fc", hidden, ffn, (batch, seq))
                with b.module("act"):
                    half = b.op("Mul", [h, b.const(0.5, np.float32)])
                    cube = b.op("Mul", [b.op("Pow", [h, b.const(3.0, np.float32)]), b.const(0.044715, np.float32)])
                    inner = b.op("Mul", [b.op("Add", [h, cube]), b.const(math.sqrt(2.0 / math.pi), np.float32)])
                    t = b.op("Add", [b.op("Tanh", [inner]), b.const(1.0, np.float32)])
                    h = b.op("Mul", [half, t])
                h = b.conv1d(h, "c_proj", ffn, hidden, (batch, seq))
            x = b.op("Add", [x, h])
    x = b.layernorm(x, "ln_f", hidden, 1e-5)
    return {"last_hidden_state": b.reshape(x, (-1, seq, hidden))}


# --------------------------------------------------------------------------------------------------
# Registry and public API
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    builder: Callable[..., dict[str, str]]
    source: str
    default_seq: int | None = None


_SPECS: dict[str, _Spec] = {
    "resnet50": _Spec(_resnet50, "torchvision.models.resnet50"),
    "densenet121": _Spec(_densenet121, "torchvision.models.densenet121"),
    "mobilenet_v3_large": _Spec(_mobilenet_v3_large, "torchvision.models.mobilenet_v3_large"),
    "shufflenet_v2_x1_0": _Spec(_shufflenet_v2_x1_0, "torchvision.models.shufflenet_v2_x1_0"),
    "vgg16": _Spec(_vgg16, "torchvision.models.vgg16"),
    "squeezenet1_1": _Spec(_squeezenet1_1, "torchvision.models.squeezenet1_1"),
    "resnet32_cifar": _Spec(_resnet32_cifar, "He et al. 2016 CIFAR ResNet-32, option-A shortcuts"),
    "minionn_cifar": _Spec(_minionn_cifar, "MiniONN CIFAR-10 network (Liu et al. 2017, Fig. 13)"),
    "bert_base": _Spec(_bert_base, "transformers.BertModel(BertConfig()), eager attention", 128),
    "gpt2_small": _Spec(_gpt2_small, "transformers.GPT2Model(GPT2Config()), eager attention", 128),
}

#: The model names `build` and `save` accept.
NAMES: tuple[str, ...] = tuple(_SPECS)

#: Where each graph departs from what torch.onnx.export of its source module writes (plumbing only).
NOTES: dict[str, str] = {
    "shufflenet_v2_x1_0": "chunk(2, dim=1) is two Slices with constant bounds, without the Shape/Gather/Add/"
                          "Div/Mul arithmetic torch 2.x computes the bounds with",
    "resnet32_cifar": "the option-A shortcut's Pad takes constant pads, not the ConstantOfShape/Concat/Reshape/"
                      "Slice/Transpose/Cast chain torch builds them with; the final view is a Reshape to a "
                      "constant shape, not Shape/Gather/Unsqueeze/Concat",
    "bert_base": "token_type_ids are Expand(zeros, constant shape), without torch's ConstantOfShape/Mul/Equal/"
                 "Where computation of the expand shape",
}


def build(name: str, batch: int = 1, seq: int | None = None, *, fold_bn: bool = True) -> onnx.ModelProto:
    """Build zoo model `name` with weights as external-data references into `<name>.onnx.data`.

    `seq` is the token count of the transformers (default 128). `fold_bn=False` keeps every BatchNorm as
    a BatchNormalization node, as `torch.onnx.export(..., training=TrainingMode.PRESERVE)` of the eval-mode
    module writes it, instead of folding it into the Conv before it (the default export); the parameter
    count in the metadata is the same either way. The proto stays small (under 400 KB at the defaults;
    GPT-2 inlines one seq x seq causal mask per layer, as exported: 3.3 MB at seq 512); `save` writes it
    with its sparse data file."""
    spec = _SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown zoo model {name!r}; choose one of {', '.join(NAMES)}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch}")
    b = Builder(name, fold_bn=fold_bn)
    if spec.default_seq is None:
        if seq is not None:
            raise ValueError(f"{name} takes no seq (it is not a sequence model)")
        outputs = spec.builder(b, batch)
        shape = "x".join(str(d.dim_value) for d in b.inputs[0].type.tensor_type.shape.dim)
    else:
        seq = spec.default_seq if seq is None else seq
        outputs = spec.builder(b, batch, seq)
        shape = f"{batch}x{seq}"
    doc = f"{name} ({spec.source}) at input {shape}, built by hawkeye_onnx.zoo; weights are not real."
    return b.finish(outputs, doc)


def pytorch_parameters(model: onnx.ModelProto) -> int:
    """Parameter count of the source PyTorch module (BatchNorm weight and bias included, as torchvision
    and Hugging Face publish it), recorded by `build`."""
    for prop in model.metadata_props:
        if prop.key == PARAMS_KEY:
            return int(prop.value)
    raise ValueError("not a hawkeye zoo model: no parameter count in its metadata")


def save(name: str, path: Path, **opts: Any) -> Path:
    """Write zoo model `name` to `path` and its weights to `<path>.data` beside it.

    The data file is created with `os.truncate` at its full size and never written, so it is sparse: it
    takes no disk blocks, yet onnx's checker and loaders see a well-formed external-data file. `opts` go
    to `build` (batch, seq, fold_bn)."""
    path = Path(path)
    model = build(name, **opts)
    data = path.with_name(path.name + ".data")
    size = 0
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = data.name
        fields = {e.key: int(e.value) for e in tensor.external_data if e.key in ("offset", "length")}
        size = max(size, fields["offset"] + fields["length"])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    with open(data, "wb"):
        pass
    os.truncate(data, size)
    return path


def source(name: str) -> str:
    """The source definition zoo model `name` follows (for listings), e.g. `torchvision.models.resnet50`."""
    spec = _SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown zoo model {name!r}; choose one of {', '.join(NAMES)}")
    return spec.source


def default_seq(name: str) -> int | None:
    """The token count a transformer is built at by default; None for the vision models."""
    source(name)
    return _SPECS[name].default_seq
