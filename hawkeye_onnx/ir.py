"""The profiler's graph IR: small frozen records built once from a shape-inferred ModelProto.

Only what costs depend on is kept: names, op types, decoded attributes, static shapes, whether a
tensor is secret-shared or public, and the value of small public constants (a Pow exponent, a
ReduceSum axes input). Weights are never read: initializer dims come from the proto header.

Secrecy: graph inputs and float initializers are secret (the model owner and the data owner are
different parties); `--public-weights` makes initializers public. Rank-0 initializers are exporter
literals, public like Constant nodes. A node's outputs are secret if
any input is, except for ops whose outputs only describe shapes (Shape, Size) or make constants.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from hawkeye_onnx.errors import ModelError
from hawkeye_onnx.scope import _from_slash_name, merge_repeated_calls, scope_of

#: Ops whose outputs are public whatever their inputs: they reveal only shapes, or make constants.
PUBLIC_OUTPUT_OPS = frozenset({"Shape", "Size", "Constant", "ConstantOfShape", "EyeLike", "Range"})

_FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16})
_SMALL_CONST = 64  # elements; larger public constants are not decoded (nothing needs them)


@dataclass(frozen=True, slots=True)
class Tensor:
    """A value in the graph. `shape` is None when inference left any dim unknown."""

    name: str
    shape: tuple[int, ...] | None
    dtype: int
    secret: bool
    value: np.ndarray | None = None

    @property
    def size(self) -> int | None:
        if self.shape is None:
            return None
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class Node:
    """One ONNX node with its module path (`scope`) for aggregation."""

    index: int
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    scope: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    """The whole model as the cost stage sees it."""

    nodes: tuple[Node, ...]
    tensors: Mapping[str, Tensor]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    initializers: frozenset[str]
    opset: int
    parameters: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def tensor(self, name: str) -> Tensor | None:
        return self.tensors.get(name) if name else None

    @cached_property
    def opvars_cache(self) -> dict[str, Any]:
        """Shape variables per op group (cost.py), per graph instance: a graph made with
        `dataclasses.replace` (other domains for some nodes) shares `extra` but not this."""
        return {}

    @cached_property
    def columns(self) -> Columns:
        """Column view of the graph for the cost stage, built once and shared by every backend."""
        return _columns(self)


#: Element counts are clamped here in `Columns.size`: anything above `opvars.MAX_ELEMENTS` is refused anyway.
_SIZE_CLAMP = 1 << 62


@dataclass(frozen=True)
class Columns:
    """The graph as arrays: what the cost stage reads for every node, so that it reads it per op group
    with numpy instead of per node in Python."""

    size: np.ndarray  # int64 per tensor (in `Graph.tensors` order): elements, -1 if the shape is unknown
    rank: np.ndarray  # int64 per tensor, -1 if unknown
    secret: np.ndarray  # bool per tensor
    node_in: np.ndarray  # (nodes, 3) int64: tensor ids of the first three inputs, -1 where absent
    node_out: np.ndarray  # (nodes,) int64: tensor id of the first output; -1: no outputs, -2: an empty name
    secret_in: np.ndarray  # bool per node: some input is secret (else the node is local and free)
    groups: Mapping[str, np.ndarray]  # op key -> indices of the nodes with a secret input, in graph order


def op_key(node: Node) -> str:
    """The key rule files use: `OpType` in the default domain, `domain::OpType` elsewhere."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _columns(graph: Graph) -> Columns:
    index = {name: i for i, name in enumerate(graph.tensors)}
    tensors = graph.tensors.values()
    size = np.fromiter((-1 if t.shape is None else min(t.size, _SIZE_CLAMP) for t in tensors), np.int64,
                       len(index))
    rank = np.fromiter((-1 if t.shape is None else len(t.shape) for t in tensors), np.int64, len(index))
    secret_t = [t.secret for t in tensors]
    n = len(graph.nodes)
    in_rows: list[list[int]] = []
    out_ids: list[int] = []
    secret_in: list[bool] = []
    groups: dict[str, list[int]] = {}
    pad = [-1, -1, -1]
    for i, node in enumerate(graph.nodes):
        ids = [index[x] if x else -1 for x in node.inputs]
        in_rows.append((ids + pad)[:3])
        outs = node.outputs
        out_ids.append(index[outs[0]] if outs and outs[0] else (-2 if outs else -1))
        secret = any(secret_t[t] for t in ids if t >= 0)
        secret_in.append(secret)
        if secret:
            groups.setdefault(op_key(node), []).append(i)
    node_in = np.asarray(in_rows, dtype=np.int64).reshape(n, 3)
    node_out = np.asarray(out_ids, dtype=np.int64)
    return Columns(size, rank, np.asarray(secret_t, dtype=bool), node_in, node_out, np.asarray(secret_in, bool),
                   {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()})


def _attr_value(attr: AttributeProto) -> Any:
    t = attr.type
    if t == AttributeProto.INT:
        return attr.i
    if t == AttributeProto.FLOAT:
        return attr.f
    if t == AttributeProto.STRING:
        return attr.s.decode("utf-8", "replace")
    if t == AttributeProto.INTS:
        return tuple(attr.ints)
    if t == AttributeProto.FLOATS:
        return tuple(attr.floats)
    if t == AttributeProto.STRINGS:
        return tuple(s.decode("utf-8", "replace") for s in attr.strings)
    if t == AttributeProto.TENSOR:
        return attr.t
    if t in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        return "<subgraph>"
    return None


def _shape_of(type_proto: onnx.TypeProto) -> tuple[tuple[int, ...] | None, int]:
    if not type_proto.HasField("tensor_type"):
        return None, 0
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None, tt.elem_type
    values = tuple(d.dim_value for d in tt.shape.dim)  # 0 for a symbolic or missing dim
    if min(values, default=1) > 0:
        return values, tt.elem_type
    dims: list[int] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(d.dim_value)
        else:
            return None, tt.elem_type
    return tuple(dims), tt.elem_type


def _small_value(t: TensorProto) -> np.ndarray | None:
    if t.data_location == TensorProto.EXTERNAL:
        return None
    n = 1
    for d in t.dims:
        n *= d
    if n > _SMALL_CONST:
        return None
    try:
        return numpy_helper.to_array(t)
    except Exception:
        return None


def _scope(nd: onnx.NodeProto, name: str, cache: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """`scope_of(nd)`, memoised by name prefix for slash-scoped names without metadata (the segments of
    `/a/b/Conv` depend on `/a/b/` only, which scope_of reads with `_from_slash_name`)."""
    if "/" not in name or len(nd.metadata_props):
        return scope_of(nd)
    prefix = name[: name.rindex("/") + 1]
    found = cache.get(prefix)
    if found is None:
        found = cache[prefix] = _from_slash_name(prefix + "x")
    return found


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic records: its full
    collections rescan the growing heap again and again (about 40% of the IR's build time at 200k nodes)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def build_graph(model: onnx.ModelProto, public_weights: bool = False) -> Graph:
    """Build the IR from a model whose shapes have been inferred (value_info filled), with its column
    view (`Graph.columns`) filled in the same pass: one Python loop over the protobuf nodes."""
    with paused_gc():
        return _build_graph(model, public_weights)


def _build_graph(model: onnx.ModelProto, public_weights: bool) -> Graph:
    g = model.graph
    shapes: dict[str, tuple[tuple[int, ...] | None, int]] = {}
    for vi in (*g.input, *g.value_info, *g.output):
        tp = vi.type
        if tp.HasField("tensor_type") and (tt := tp.tensor_type).HasField("shape"):
            values = tuple(d.dim_value for d in tt.shape.dim)  # the common case of `_shape_of`, inlined
            if min(values, default=1) > 0:
                shapes[vi.name] = (values, tt.elem_type)
                continue
        shapes[vi.name] = _shape_of(tp)

    tensors: dict[str, Tensor] = {}
    ids: dict[str, int] = {}  # tensor name -> column id
    t_size: list[int] = []
    t_rank: list[int] = []
    t_secret: list[bool] = []

    def add(t: Tensor) -> None:
        tid = ids.get(t.name)
        size, rank = (-1, -1) if t.shape is None else (min(math.prod(t.shape), _SIZE_CLAMP), len(t.shape))
        if tid is None:
            ids[t.name] = len(t_size)
            t_size.append(size)
            t_rank.append(rank)
            t_secret.append(t.secret)
        else:  # a name written twice (not SSA): the last writer wins, as in `tensors`
            t_size[tid], t_rank[tid], t_secret[tid] = size, rank, t.secret
        tensors[t.name] = t

    init_names = []
    parameters = 0
    for init in g.initializer:
        if type(init.name) is not str:
            raise ModelError(f"an initializer name is not valid UTF-8 text ({init.name[:40]!r}); the file is corrupt")
        dims = tuple(init.dims)
        # A rank-0 initializer is a literal the exporter lifted (dynamo writes `/ math.sqrt(d)` or GELU's 0.5
        # as `val_N` scalars where TorchScript writes Constant nodes): public, and not a parameter.
        weight = init.data_type in _FLOAT_TYPES and len(dims) > 0
        secret = weight and not public_weights
        add(Tensor(init.name, dims, init.data_type, secret, _small_value(init)))
        init_names.append(init.name)
        if weight:
            parameters += math.prod(dims)
    inits = frozenset(init_names)
    data_inputs = tuple(vi.name for vi in g.input if vi.name not in inits)
    for name in data_inputs:
        shape, dtype = shapes.get(name, (None, 0))
        add(Tensor(name, shape, dtype, True))

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    raw: list[tuple] = []
    raw_scopes: list[tuple[str, ...]] = []
    scope_cache: dict[str, tuple[str, ...]] = {}
    in_rows: list[list[int]] = []
    out_ids: list[int] = []
    secret_in: list[bool] = []
    groups: dict[str, list[int]] = {}
    pad = [-1, -1, -1]
    unknown = (None, 0)
    join = "".join
    for i, nd in enumerate(g.node):
        name, op_type, domain = nd.name, nd.op_type, nd.domain
        inputs, outputs = tuple(nd.input), tuple(nd.output)
        try:  # protobuf hands back bytes for a string that is not valid UTF-8
            join((name, op_type, domain, *inputs, *outputs))
        except TypeError:
            raise ModelError(f"node #{i}: a name or op type is not valid UTF-8 text; the file is corrupt "
                             "(re-export the model)") from None
        attrs = {a.name: _attr_value(a) for a in nd.attribute} if len(nd.attribute) else {}
        try:
            in_ids = [ids[x] if x else -1 for x in inputs]
        except KeyError:
            missing = next(x for x in inputs if x and x not in ids)
            raise ModelError(
                f"node {name or op_type!r} reads {missing!r}, which no earlier node, input or "
                "initializer defines (the graph is not topologically sorted, has a cycle, or a dangling "
                "input); fix the export or run onnx.utils / onnxsim on it") from None
        reads_secret = any(t_secret[t] for t in in_ids if t >= 0)
        secret = reads_secret and op_type not in PUBLIC_OUTPUT_OPS
        value = None
        if op_type == "Constant" and isinstance(attrs.get("value"), TensorProto):
            value = _small_value(attrs["value"])
        for out in outputs:
            if not out:
                continue
            shape, dtype = shapes.get(out, unknown)
            if value is not None and shape is None:
                shape = tuple(value.shape)
            if out in ids or shape is None:
                add(Tensor(out, shape, dtype, secret, value))
                continue
            ids[out] = len(t_size)  # the common case, inlined: a new tensor with a known shape
            t_size.append(min(math.prod(shape), _SIZE_CLAMP))
            t_rank.append(len(shape))
            t_secret.append(secret)
            tensors[out] = Tensor(out, shape, dtype, secret, value)
        if "value" in attrs:
            attrs["value"] = "<tensor>"
        raw.append((i, name, op_type, domain, inputs, outputs, attrs))
        if "/" in name and not len(nd.metadata_props):  # `_scope`'s memoised case, inlined
            prefix = name[: name.rindex("/") + 1]
            found = scope_cache.get(prefix)
            if found is None:
                found = scope_cache[prefix] = _from_slash_name(prefix + "x")
            raw_scopes.append(found)
        else:
            raw_scopes.append(scope_of(nd))
        in_rows.append((in_ids + pad)[:3])
        out_ids.append(ids[outputs[0]] if outputs and outputs[0] else (-2 if outputs else -1))
        secret_in.append(reads_secret)
        if reads_secret:
            groups.setdefault(op_type if domain in ("", "ai.onnx") else f"{domain}::{op_type}", []).append(i)
    distinct = list(dict.fromkeys(raw_scopes))  # merging depends on the set of scopes only
    merged = dict(zip(distinct, merge_repeated_calls(distinct), strict=True))
    nodes = tuple(Node(*r, merged[sc]) for r, sc in zip(raw, raw_scopes, strict=True))
    graph = Graph(nodes, tensors, data_inputs, tuple(o.name for o in g.output), inits, opset, parameters)
    n = len(nodes)
    graph.__dict__["columns"] = Columns(
        np.asarray(t_size, dtype=np.int64), np.asarray(t_rank, dtype=np.int64), np.asarray(t_secret, dtype=bool),
        np.asarray(in_rows, dtype=np.int64).reshape(n, 3), np.asarray(out_ids, dtype=np.int64),
        np.asarray(secret_in, dtype=bool), {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()})
    return graph
