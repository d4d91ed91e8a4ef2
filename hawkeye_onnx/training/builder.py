"""A small ONNX graph writer used by the expander: unique names, constants, static shapes.

Backward nodes are named `<forward node name>_Grad/<Op>_<k>` (onnxruntime-training's convention),
so hawkeye_onnx/scope.py puts them in their forward node's module; every other node gets the
scope the caller gives (`/loss/...`, `/optimizer/<parameter>/...`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hawkeye_onnx.training.functions import DOMAIN


def _attribute(key: str, value: object) -> onnx.AttributeProto:
    """`helper.make_attribute`, with its two most common cases (an int, a tensor) done directly."""
    if type(value) is int:
        return onnx.AttributeProto(name=key, type=onnx.AttributeProto.INT, i=value)
    if type(value) is onnx.TensorProto:
        attr = onnx.AttributeProto(name=key, type=onnx.AttributeProto.TENSOR)
        attr.t.CopyFrom(value)
        return attr
    return helper.make_attribute(key, value)


class Builder:
    """Appends nodes to a list; tracks the static shapes it knows (forward tensors, emitted ones)."""

    def __init__(self, model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
        g = model.graph
        self.nodes: list[onnx.NodeProto] = []
        self.shapes = dict(shapes)
        self.used: set[str] = {n.name for n in g.node} | {o for n in g.node for o in n.output}
        self.used |= {i.name for i in g.input} | {i.name for i in g.initializer}
        self.counters: dict[str, int] = defaultdict(int)
        self.custom: set[str] = set()
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.producers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in g.node:
            for o in n.output:
                self.producers[o].append(n)
        self.initial_values: dict[str, np.ndarray] = {
            i.name: numpy_helper.to_array(i) for i in g.initializer
            if i.data_location != onnx.TensorProto.EXTERNAL and np.prod(i.dims) <= 64}

    def _unique(self, name: str) -> str:
        out, k = name, 1
        while out in self.used:
            out = f"{name}_{k}"
            k += 1
        self.used.add(out)
        return out

    def emit(self, scope: str, op: str, inputs: list[str], n_out: int = 1, domain: str = "",
             shape: tuple[int, ...] | None = None, **attrs: object) -> list[str]:
        """Add `op` under `scope` (a backward scope `<fwd>_Grad` numbers its ops `<Op>_<k>`)."""
        if scope.endswith("_Grad"):
            k = self.counters[scope]
            self.counters[scope] += 1
            name = self._unique(f"{scope}/{op}_{k}")
        else:
            name = self._unique(f"{scope}/{op}")
        outs = [self._unique(f"{name}_output_{i}") for i in range(n_out)]
        node = onnx.NodeProto()  # what `helper.make_node` builds, without its per-call overhead
        node.op_type = op
        node.input.extend(inputs)
        node.output.extend(outs)
        node.name = name
        if domain:
            node.domain = domain
        if attrs:
            node.attribute.extend(_attribute(k, v) for k, v in sorted(attrs.items()) if v is not None)
        self.nodes.append(node)
        for o in outs:
            self.producers[o].append(node)
        if domain == DOMAIN:
            self.custom.add(op)
        if shape is not None:
            self.shapes[outs[0]] = tuple(shape)
        return outs

    def op(self, scope: str, op: str, inputs: list[str], shape: tuple[int, ...] | None = None, **attrs: object) -> str:
        return self.emit(scope, op, inputs, 1, "", shape, **attrs)[0]

    def const(self, scope: str, value: float | list[int] | list[float], dtype: type = np.float32) -> str:
        """A public constant (a Constant node: the IR treats its output as public)."""
        arr = np.asarray(value, dtype=dtype)
        return self.emit(scope, "Constant", [], 1, "", tuple(arr.shape), value=numpy_helper.from_array(arr))[0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]
