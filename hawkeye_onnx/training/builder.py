"""A small ONNX graph writer used by the expander: unique names, constants, static shapes.

Backward nodes are named `<forward node name>_Grad/<Op>_<k>` (onnxruntime-training's convention),
so hawkeye_onnx/scope.py puts them in their forward node's module; every other node gets the
scope the caller gives (`/loss/...`, `/optimizer/<parameter>/...`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hawkeye_onnx.ir import _attr_value, _small_value
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


def _key(value: object) -> object:
    """A hashable key that tells apart values `helper.make_attribute` encodes differently (1, 1.0, True and
    [1, 2] vs [1.0, 2.0] compare equal in Python); None for a value not worth caching."""
    if type(value) in (int, float, str):
        return (type(value), value)
    if type(value) in (list, tuple) and all(type(x) in (int, float, str) for x in value):  # type: ignore[union-attr]
        return tuple((type(x), x) for x in value)  # type: ignore[union-attr]
    return None


def _const_key(value: object) -> object:
    """The Python value of a constant as a key that two values share only when they give the same array
    (floats by their hex text: -0.0 is not 0.0); None for other values (keyed by their array's bytes)."""
    if type(value) is float:
        return ("f", value.hex())
    if type(value) is int:
        return ("i", value)
    if type(value) in (list, tuple):
        if all(type(x) is int for x in value):  # type: ignore[union-attr]
            return ("li", tuple(value))  # type: ignore[arg-type]
        if all(type(x) is float for x in value):  # type: ignore[union-attr]
            return ("lf", tuple(x.hex() for x in value))  # type: ignore[union-attr]
    return None


#: the decoded attributes of every emitted node without any, and of every constant: one dict for all (a record
#: is never changed)
_NO_ATTRS: dict[str, Any] = {}
_TENSOR_VALUE: dict[str, Any] = {"value": "<tensor>"}


#: the start of every parameter's update scope, `/optimizer/<parameter>`
OPTIMIZER_SCOPE = "/optimizer/"


def block_scope(scope: str) -> bool:
    """A scope whose nodes may be a block's (`replay.defer`): a backward scope `<fwd>_Grad`, or a parameter's update
    `/optimizer/<parameter>`."""
    return scope.endswith("_Grad") or scope.startswith(OPTIMIZER_SCOPE)


def output_name(node: str, i: int) -> str:
    """The name of output `i` of the emitted node `node` (before `Builder._unique`)."""
    return f"{node}_output_{i}"


class ModelProducers(Mapping[str, list[onnx.NodeProto]]):
    """Tensor -> the model's nodes that make it, found when first read: only the gradient rule of a node with a
    constant input reads it (ReduceSum's axes, Pad's pads, Pow's exponent ...), and at 200k nodes making the map
    took 0.35 s before the styles start, and kept a Python object per node in each style's memory."""

    def __init__(self, nodes: Sequence[onnx.NodeProto], outputs: Sequence[tuple[str, ...]]) -> None:
        self._nodes, self._outputs = nodes, outputs

    @cached_property
    def _map(self) -> dict[str, list[onnx.NodeProto]]:
        out: dict[str, list[onnx.NodeProto]] = {}
        for n, outs in zip(self._nodes, self._outputs, strict=True):
            for o in outs:
                out.setdefault(o, []).append(n)
        return out

    def __getitem__(self, name: str) -> list[onnx.NodeProto]:
        return self._map[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)


class Producers:
    """Tensor -> the nodes that make it, as gradient rules read it (`get`): the model's, and those the builder
    emitted (`add`; an emitted node's outputs are new names, never a model tensor's)."""

    def __init__(self, model: Mapping[str, list[onnx.NodeProto]]) -> None:
        self.model = model
        self.emitted: dict[str, list[onnx.NodeProto]] = {}

    def get(self, name: str, default: Any = None) -> Any:
        found = self.emitted.get(name)
        return found if found is not None else self.model.get(name, default)

    def add(self, name: str, node: onnx.NodeProto) -> None:
        self.emitted.setdefault(name, []).append(node)


class ModelBase(NamedTuple):
    """What every builder of one model starts from (read once per model, shared by its expansions)."""

    used: frozenset[str]  # the model's node, tensor, input and initializer names
    producers: Mapping[str, list[onnx.NodeProto]]  # tensor -> the nodes that make it (`ModelProducers`)
    initial_values: dict[str, np.ndarray]  # small initializers' values (what a gradient rule may read)
    #: the scopes (what comes before the last `/`) of the names of `used` that a block could take (`block_scope`);
    #: usually none (`replay.settle`)
    taken_scopes: frozenset[str] = frozenset()


def model_base(model: onnx.ModelProto, outputs: Sequence[tuple[str, ...]] | None = None,
               names: Sequence[str] | None = None) -> ModelBase:
    """`outputs`, `names`: each node's outputs and name, when the caller has read them already (a protobuf field
    makes new objects on every read)."""
    g = model.graph
    if outputs is None:
        outputs = [tuple(n.output) for n in g.node]
    used = set(names if names is not None else [n.name for n in g.node]) | {o for outs in outputs for o in outs}
    used |= {i.name for i in g.input} | {i.name for i in g.initializer}
    initial_values = {i.name: numpy_helper.to_array(i) for i in g.initializer
                      if i.data_location != onnx.TensorProto.EXTERNAL and math.prod(i.dims) <= 64}
    taken: frozenset[str] = frozenset()
    every = "\n" + "\n".join(used)  # one search in the names' text first: a model has such names rarely
    if "_Grad/" in every or f"\n{OPTIMIZER_SCOPE}" in every:
        taken = frozenset(s for s in (u[:u.rfind("/")] for u in used if "/" in u) if block_scope(s))
    return ModelBase(frozenset(used), ModelProducers(g.node, outputs), initial_values, taken)


class Builder:
    """Appends nodes to a graph; tracks the static shapes it knows (forward tensors, emitted ones).

    Nodes are added in place to `graph.node` (the training model's own node list: no copy when the model is
    assembled), and attributes and constant tensors are made once per distinct value (a training graph of
    100k nodes has a few hundred distinct ones)."""

    def __init__(self, model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]],
                 graph: onnx.GraphProto | None = None, base: ModelBase | None = None) -> None:
        base = model_base(model) if base is None else base
        self.graph = onnx.GraphProto() if graph is None else graph
        self.nodes: list[onnx.NodeProto] = []
        #: False: record the nodes only, no protos (nor `producers`, which gradient rules read for the inputs of
        #: forward and loss nodes only): for a caller that builds the IR from the records
        self.protos = True
        self.outputs: list[str] = []  # the emitted nodes' outputs, in order
        self.shapes = dict(shapes)
        self.used: set[str] = set(base.used)
        self.taken_scopes = base.taken_scopes
        self.counters: dict[str, int] = defaultdict(int)
        self.custom: set[str] = set()
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.producers = Producers(base.producers)  # the model's are shared: read only
        self.initial_values: dict[str, np.ndarray] = base.initial_values  # read only
        self.dtypes: dict[str, int] = {}  # element type of an emitted tensor that is not float (a constant's)
        #: each emitted node as the IR reads it: (name, op, domain, inputs, outputs, decoded attributes, the value
        #: of a small constant), so the profiler builds its IR without reading the protos back
        self.records: list[tuple[str, str, str, tuple[str, ...], tuple[str, ...], dict[str, Any], Any]] = []
        #: templates replayed as blocks of nodes (`replay.defer`), in order among the records; grouped by template
        #: at the end (`replay.settle`), their names made when asked (`replay.Group`)
        self.instances: list[Any] = []
        self.settled: Any = None  # the instances by template (`replay.settle`: a list of `replay.Group`)
        self.replayed = 0  # nodes in `instances`
        self._attrs: dict[tuple[str, object], tuple[onnx.AttributeProto, Any]] = {}
        #: constant -> (its attribute, its value as the IR keeps it, its shape), by the bytes of its array and by
        #: the Python value it was given (skips building the array again)
        self._consts: dict[tuple, tuple[onnx.AttributeProto, Any, tuple[int, ...]]] = {}

    def _unique(self, name: str) -> str:
        if name not in self.used:
            self.used.add(name)
            return name
        out, k = name, 1
        while out in self.used:
            out = f"{name}_{k}"
            k += 1
        self.used.add(out)
        return out

    def _name(self, scope: str, op: str) -> str:
        """`<scope>/<Op>`, or `<scope>/<Op>_<k>` in a backward scope `<fwd>_Grad`; unique in the graph."""
        if scope.endswith("_Grad"):
            k = self.counters[scope]
            self.counters[scope] += 1
            return self._unique(f"{scope}/{op}_{k}")
        return self._unique(f"{scope}/{op}")

    def _attribute(self, key: str, value: object) -> tuple[onnx.AttributeProto, Any]:
        """The attribute and its value as the IR decodes it."""
        cache_key = _key(value)
        found = self._attrs.get((key, cache_key)) if cache_key is not None else None
        if found is None:
            attr = _attribute(key, value)
            found = (attr, _attr_value(attr))
            if cache_key is not None:
                self._attrs[(key, cache_key)] = found
        return found

    def _add(self, name: str, op: str, inputs: list[str], outs: list[str], domain: str,
             attributes: list[tuple[onnx.AttributeProto, Any]], value: Any = None) -> onnx.NodeProto | None:
        # the attributes as `ir.build_graph` decodes them
        decoded = {a.name: "<tensor>" if a.name == "value" else v for a, v in attributes} if attributes else _NO_ATTRS
        self.records.append((name, op, domain, tuple(inputs), tuple(outs), decoded, value))
        self.outputs += outs
        if not self.protos:
            return None
        protos = [a for a, _ in attributes]
        # one `add(...)` call fills the node in C (what `helper.make_node` builds, without its per-call cost)
        if domain:
            node = self.graph.node.add(op_type=op, input=inputs, output=outs, name=name, domain=domain,
                                       attribute=protos)
        else:
            node = self.graph.node.add(op_type=op, input=inputs, output=outs, name=name, attribute=protos)
        self.nodes.append(node)
        for o in outs:
            self.producers.add(o, node)
        return node

    def emit(self, scope: str, op: str, inputs: list[str], n_out: int = 1, domain: str = "",
             shape: tuple[int, ...] | None = None, **attrs: object) -> list[str]:
        """Add `op` under `scope` (a backward scope `<fwd>_Grad` numbers its ops `<Op>_<k>`)."""
        name = self._name(scope, op)
        outs = [self._unique(output_name(name, i)) for i in range(n_out)]
        attributes = [self._attribute(k, v) for k, v in sorted(attrs.items()) if v is not None] if attrs else []
        tensor = attrs.get("value") if op == "Constant" else None
        self._add(name, op, inputs, outs, domain, attributes,
                  _small_value(tensor) if isinstance(tensor, onnx.TensorProto) else None)
        if domain == DOMAIN:
            self.custom.add(op)
        if shape is not None:
            self.shapes[outs[0]] = tuple(shape)
        return outs

    def op(self, scope: str, op: str, inputs: list[str], shape: tuple[int, ...] | None = None, **attrs: object) -> str:
        if attrs or self.protos:
            return self.emit(scope, op, inputs, 1, "", shape, **attrs)[0]
        # `emit` for its most common case, records only: a standard op without attributes (the gradient sums and
        # most of the optimizer's nodes, a third of a big model's training graph)
        name = self._name(scope, op)
        out = self._unique(output_name(name, 0))
        self.records.append((name, op, "", tuple(inputs), (out,), _NO_ATTRS, None))
        self.outputs.append(out)
        if shape is not None:
            self.shapes[out] = tuple(shape)
        return out

    def const(self, scope: str, value: float | list[int] | list[float], dtype: type = np.float32) -> str:
        """A public constant (a Constant node: the IR treats its output as public)."""
        key = (dtype, _const_key(value))
        found = self._consts.get(key) if key[1] is not None else None
        if found is None:
            arr = np.asarray(value, dtype=dtype)
            exact = (arr.dtype.str, arr.shape, arr.tobytes())
            found = self._consts.get(exact)
            if found is None:
                attr = _attribute("value", numpy_helper.from_array(arr))
                found = self._consts[exact] = (attr, _small_value(attr.t), tuple(arr.shape))
            if key[1] is not None:
                self._consts[key] = found
        attr, small, shape = found
        name = self._name(scope, "Constant")
        out = self._unique(output_name(name, 0))
        if self.protos:
            self._add(name, "Constant", [], [out], "", [(attr, attr.t)], small)
        else:  # `_add` for records only, inlined: a quarter of a training graph's nodes are constants
            self.records.append((name, "Constant", "", (), (out,), _TENSOR_VALUE, small))
            self.outputs.append(out)
        self.shapes[out] = shape
        if attr.t.data_type != onnx.TensorProto.FLOAT:
            self.dtypes[out] = attr.t.data_type
        return out

    def count(self) -> int:
        """Nodes emitted so far: the records and the deferred instances' nodes."""
        return len(self.records) + self.replayed

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def finish(self) -> None:
        """Drop what only emitting needs (every name in the graph, per-scope counters, the forward nodes'
        producers): the IR is built from the records, shapes and types next, and at 200k nodes these are
        hundreds of MB beside it."""
        self.used = set()
        self.counters = defaultdict(int)
        self.producers = Producers({})
        self.initial_values = {}
