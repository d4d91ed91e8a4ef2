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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from hawkeye_onnx.errors import ModelError
from hawkeye_onnx.shapes import SIZE_CLAMP as _SIZE_CLAMP
from hawkeye_onnx.shapes import UNKNOWN, ShapeTable, value_shapes

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


class Node(NamedTuple):
    """One ONNX node. A named tuple: a big model has hundreds of thousands, made in one loop over the protobuf
    nodes (`tuple.__new__`, no per-field setattr). Its module path is an aggregation matter
    (`scope.scope_index`, `aggregate.ModuleIndex`), not the IR's."""

    index: int
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]


class ColumnNodes(Sequence[Node]):
    """A graph's nodes where most are not kept as `Node` records: each is made when read by index (the training
    graph's blocks, `training.graph.TrainNodes`: a million records would take 0.4 GB, and the cost stage reads
    few of them one by one). What is read of many nodes comes as lists (`op_keys`, `names`, `attrs`)."""

    def op_keys(self, lo: int, hi: int) -> list[str]:
        """The op keys (`op_key`) of nodes `lo` to `hi` (excluded)."""
        raise NotImplementedError

    def names(self, idx: Sequence[int]) -> list[str]:
        """The names of the nodes `idx`, in that order (the module tree's text needs those of the nodes that cost
        something: a third to a half of a training graph's)."""
        raise NotImplementedError

    def attrs(self, idx: list[int]) -> list[Mapping[str, Any]]:
        """The attributes of the nodes `idx`."""
        raise NotImplementedError

    def with_domains(self, changes: Mapping[int, str]) -> ColumnNodes:
        """These nodes with the domains `changes` gives by index (`training.profile._context`)."""
        raise NotImplementedError


def op_keys(nodes: Sequence[Node], lo: int = 0, hi: int | None = None) -> list[str]:
    """The op keys of `nodes[lo:hi]`, without making the records of `ColumnNodes`."""
    hi = len(nodes) if hi is None else hi
    return nodes.op_keys(lo, hi) if isinstance(nodes, ColumnNodes) else [op_key(n) for n in nodes[lo:hi]]


def node_names(nodes: Sequence[Node], idx: Sequence[int]) -> list[str]:
    """The names of the nodes `idx`, without making the records of `ColumnNodes`."""
    return nodes.names(idx) if isinstance(nodes, ColumnNodes) else [nodes[i].name for i in idx]


def node_attrs(nodes: Sequence[Node], idx: list[int]) -> list[Mapping[str, Any]]:
    """The attributes of the nodes `idx`, without making the records of `ColumnNodes`."""
    return nodes.attrs(idx) if isinstance(nodes, ColumnNodes) else [nodes[i].attrs for i in idx]


def with_domains(nodes: Sequence[Node], changes: Mapping[int, str]) -> Sequence[Node]:
    """`nodes` with the domains `changes` gives by index, as a new sequence."""
    if isinstance(nodes, ColumnNodes):
        return nodes.with_domains(changes)
    out = list(nodes)
    for i, domain in changes.items():
        out[i] = out[i]._replace(domain=domain)
    return tuple(out)


@dataclass(frozen=True)
class Graph:
    """The whole model as the cost stage sees it."""

    nodes: Sequence[Node]  # a tuple, or `ColumnNodes` (the training graph)
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
    def tensor_ids(self) -> Mapping[str, int]:
        """Tensor name -> its id in `columns` (the order of `tensors`)."""
        tensors = self.tensors
        return tensors.ids if isinstance(tensors, TensorTable) else {name: i for i, name in enumerate(tensors)}

    def tensor_id(self, name: str) -> int:
        """The id of tensor `name` in `columns`, -1 if there is none (or `name` is "", an omitted input); without
        the whole name -> id map where the graph makes it only when asked (`TensorTable`)."""
        tensors = self.tensors
        return tensors.id_of(name) if isinstance(tensors, TensorTable) else self.tensor_ids.get(name, -1)

    @cached_property
    def is_initializer(self) -> np.ndarray:
        """Per tensor id in `columns`: whether it is an initializer."""
        out = np.zeros(len(self.tensors), dtype=bool)
        out[[i for i in map(self.tensor_id, self.initializers) if i >= 0]] = True
        return out

    @cached_property
    def shape_list(self) -> list[tuple[int, ...] | None]:
        """Every tensor's shape by its id in `columns` (the order of `tensors`)."""
        tensors = self.tensors
        if isinstance(tensors, TensorTable):
            return tensors.shape_list
        return [t.shape for t in tensors.values()]

    def shape_of(self, name: str) -> tuple[int, ...] | None:
        """`tensor(name).shape` (None if unknown or no such tensor), without making the Tensor record."""
        tensors = self.tensors
        if isinstance(tensors, TensorTable):
            return tensors.shape_of(name)
        t = tensors.get(name) if name else None
        return None if t is None else t.shape

    @cached_property
    def opvars_cache(self) -> dict[str, Any]:
        """Shape variables per op group (cost.py), per graph instance: a graph made with
        `dataclasses.replace` (other domains for some nodes) shares `extra` but not this."""
        return {}

    @cached_property
    def columns(self) -> Columns:
        """Column view of the graph for the cost stage, built once and shared by every backend."""
        return _columns(self)


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


def op_key(node: Node | onnx.NodeProto) -> str:
    """The key rule files use: `OpType` in the default domain, `domain::OpType` elsewhere (of an IR node or a
    protobuf one)."""
    return key_of(node.op_type, node.domain)


def node_label(node: Node | onnx.NodeProto, i: int) -> str:
    """Node number `i` as reports name it: its name, or `<op type>_<i>` if it has none."""
    return node.name or f"{node.op_type}_{i}"


def key_of(op_type: str, domain: str) -> str:
    """`op_key` of a node of `op_type` in `domain`."""
    return op_type if domain in ("", "ai.onnx") else f"{domain}::{op_type}"


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


_ATTR_VALUE: dict[int, Callable[[AttributeProto], Any]] = {
    AttributeProto.INT: attrgetter("i"),
    AttributeProto.FLOAT: attrgetter("f"),
    AttributeProto.STRING: lambda a: a.s.decode("utf-8", "replace"),
    AttributeProto.INTS: lambda a: tuple(a.ints),
    AttributeProto.FLOATS: lambda a: tuple(a.floats),
    AttributeProto.STRINGS: lambda a: tuple(s.decode("utf-8", "replace") for s in a.strings),
    AttributeProto.TENSOR: attrgetter("t"),
    AttributeProto.GRAPH: lambda a: "<subgraph>",
    AttributeProto.GRAPHS: lambda a: "<subgraph>",
}


def _attr_value(attr: AttributeProto) -> Any:
    """An attribute's value as plain Python (a TensorProto stays one; subgraphs are not read)."""
    get = _ATTR_VALUE.get(attr.type)
    return None if get is None else get(attr)


#: Fixed-width types whose raw bytes numpy reads as they are (little-endian, as ONNX stores them).
_RAW_DTYPES = {TensorProto.FLOAT: "<f4", TensorProto.DOUBLE: "<f8", TensorProto.INT64: "<i8",
               TensorProto.INT32: "<i4", TensorProto.INT8: "i1", TensorProto.UINT8: "u1"}


def _small_value(t: TensorProto) -> np.ndarray | None:
    if t.data_location == TensorProto.EXTERNAL:
        return None
    dims = tuple(t.dims)
    n = math.prod(dims)
    if n > _SMALL_CONST:
        return None
    raw, dtype = t.raw_data, _RAW_DTYPES.get(t.data_type)
    if raw and dtype is not None and len(raw) == n * np.dtype(dtype).itemsize:  # exporters' usual form, fast
        return np.frombuffer(raw, dtype=dtype).reshape(dims)
    try:
        return numpy_helper.to_array(t)
    except Exception:
        return None


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


def build_graph(model: onnx.ModelProto, public_weights: bool = False,
                shapes: Callable[[], ShapeTable] | None = None) -> Graph:
    """Build the IR from a model whose shapes have been inferred (value_info filled), with its column
    view (`Graph.columns`) filled in the same pass: one Python loop over the protobuf nodes.

    `shapes`, if given, is called once the graph's structure is read, for the shapes (by default
    `value_shapes(model.graph)`): the pipeline can then infer them in another process meanwhile."""
    structure = read_structure(model, public_weights)
    with paused_gc():
        return structure.finish((shapes or (lambda: value_shapes(model.graph)))())


@dataclass(frozen=True)
class Structure:
    """A graph's IR without its shapes: nodes, tensors, secrecy. `finish(shapes)` gives the Graph; the shapes
    can be inferred in another process while the structure is read."""

    nodes: tuple[Node, ...]
    finish: Callable[[ShapeTable], Graph]


def read_structure(model: onnx.ModelProto, public_weights: bool = False,
                   attr_bytes: list[tuple[bytes, ...]] | None = None) -> Structure:
    """The first half of `build_graph`: one Python loop over the protobuf nodes, no shape read. `attr_bytes`, if
    given, gets each node's attributes serialised (what the training expander reads of them, in the same loop
    rather than in a second one over the protos)."""
    with paused_gc():
        return _read_structure(model, public_weights, attr_bytes)


class TensorTable(Mapping[str, Tensor]):
    """`Graph.tensors`: the graph's tensors as columns, each `Tensor` record made on first read. A big
    model has hundreds of thousands of tensors and the cost stage reads the records of a few (the
    inputs of Conv, MatMul, ...); the rest it reads as arrays (`Graph.columns`).

    The name -> id map may lack names at first (`names`: a function that gives every tensor's name by id): a
    training graph's blocks have a million tensors that no node reads by name, so the map gets them on the first
    read of a name it lacks, or of the whole map (`ids`, iterating)."""

    __slots__ = ("_dtype", "_ids", "_made", "_names", "_secret", "_shape", "_value")

    def __init__(self, ids: dict[str, int], shape: list[tuple[int, ...] | None], dtype: list[int],
                 secret: list[bool], value: dict[int, np.ndarray],
                 names: Callable[[], list[str]] | None = None) -> None:
        self._ids, self._shape, self._dtype, self._secret, self._value = ids, shape, dtype, secret, value
        self._names = names
        self._made: dict[str, Tensor] = {}

    def _whole(self) -> dict[str, int]:
        """The name -> id map with every name, in id order."""
        if self._names is not None:
            names, self._names = self._names(), None
            self._ids = dict(zip(names, range(len(names)), strict=True))
        return self._ids

    def id_of(self, name: str) -> int:
        """The id of tensor `name`, -1 if there is none (or `name` is "")."""
        i = self._ids.get(name)
        if i is None and self._names is not None and name:
            i = self._whole().get(name)
        return -1 if i is None else i

    def __getitem__(self, name: str) -> Tensor:
        t = self._made.get(name)
        if t is None:
            i = self.id_of(name)
            if i < 0:
                raise KeyError(name)
            t = self._made[name] = Tensor(name, self._shape[i], self._dtype[i], self._secret[i], self._value.get(i))
        return t

    def get(self, name: str, default: Tensor | None = None) -> Tensor | None:  # type: ignore[override]
        i = self.id_of(name)
        return default if i < 0 else self[name]

    @property
    def shape_list(self) -> list[tuple[int, ...] | None]:
        return self._shape

    def columns(self) -> tuple[dict[str, int], list[tuple[int, ...] | None], list[int], list[bool],
                               dict[int, np.ndarray]]:
        """The table's own columns (name -> id, shapes, element types, secrecy, small values by id), for a
        graph built on this one (the training graph); read them, do not change them."""
        return self._whole(), self._shape, self._dtype, self._secret, self._value

    @property
    def ids(self) -> Mapping[str, int]:
        """Tensor name -> its id (its place in `Graph.columns`)."""
        return self._whole()

    def shape_of(self, name: str) -> tuple[int, ...] | None:
        i = self.id_of(name)
        return None if i < 0 else self._shape[i]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.id_of(name) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._whole())

    def __len__(self) -> int:
        return len(self._shape)

    def has_unknown_shape(self) -> bool:
        return None in self._shape


def _read_structure(model: onnx.ModelProto, public_weights: bool,
                    attr_bytes: list[tuple[bytes, ...]] | None) -> Structure:
    g = model.graph
    # Tensors as columns (id = position), see `TensorTable`. "" (an omitted optional input) maps to -1.
    ids: dict[str, int] = {"": -1}
    t_shape: list[tuple[int, ...] | None] = []
    t_dtype: list[int] = []
    t_secret: list[bool] = []
    t_value: dict[int, np.ndarray] = {}
    secret_names: set[str] = set()

    def add(name: str, shape: tuple[int, ...] | None, dtype: int, secret: bool, value: np.ndarray | None) -> None:
        tid = ids.get(name)
        if tid is None:
            tid = ids[name] = len(t_shape)
            t_shape.append(shape)
            t_dtype.append(dtype)
            t_secret.append(secret)
        else:  # a name written twice (not SSA): the last writer wins
            t_shape[tid], t_dtype[tid], t_secret[tid] = shape, dtype, secret
            t_value.pop(tid, None)
        if value is not None:
            t_value[tid] = value
        if secret:
            secret_names.add(name)
        else:
            secret_names.discard(name)

    init_names = []
    parameters = 0
    external = TensorProto.EXTERNAL  # weights kept outside the file: no value to decode
    for init in g.initializer:
        name = init.name
        if type(name) is not str:
            raise ModelError(f"an initializer name is not valid UTF-8 text ({name[:40]!r}); the file is corrupt")
        dims = tuple(init.dims)
        dtype = init.data_type
        # A rank-0 initializer is a literal the exporter lifted (dynamo writes `/ math.sqrt(d)` or GELU's 0.5
        # as `val_N` scalars where TorchScript writes Constant nodes): public, and not a parameter.
        weight = dtype in _FLOAT_TYPES and len(dims) > 0
        secret = weight and not public_weights
        if init.data_location == external and name not in ids:  # the common case of `add`, inlined
            ids[name] = len(t_shape)
            t_shape.append(dims)
            t_dtype.append(dtype)
            t_secret.append(secret)
            if secret:
                secret_names.add(name)
        else:
            add(name, dims, dtype, secret, _small_value(init))
        init_names.append(name)
        if weight:
            parameters += math.prod(dims)
    inits = frozenset(init_names)
    n_inits = len(t_shape)  # the initializers are the first tensors (ids 0 .. n_inits - 1)
    data_inputs = tuple(vi.name for vi in g.input if vi.name not in inits)
    # Graph inputs and node outputs get their shapes once the structure is read (`read_shapes`).
    shaped: list[int] = []  # their tensor ids
    for name in data_inputs:
        add(name, None, 0, True, None)
        shaped.append(ids[name])

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    raw: list[Node] = []
    in_rows: list[list[int]] = []
    out_ids: list[int] = []
    secret_in: list[bool] = []
    groups: dict[str, list[int]] = {}
    pad = [-1, -1, -1]
    join = "".join
    get_id = ids.__getitem__
    no_attrs: Mapping[str, Any] = MappingProxyType({})  # shared by every node without attributes: read-only
    new_node = tuple.__new__  # `Node(...)` without its Python-level __new__
    for i, nd in enumerate(g.node):
        name, op_type, domain = nd.name, nd.op_type, nd.domain
        inputs, outputs = tuple(nd.input), tuple(nd.output)
        try:  # protobuf hands back bytes for a string that is not valid UTF-8
            join((name, op_type, domain, *inputs, *outputs))
        except TypeError:
            raise ModelError(f"node #{i}: a name or op type is not valid UTF-8 text; the file is corrupt "
                             "(re-export the model)") from None
        attrs = {a.name: _attr_value(a) for a in nd.attribute} if len(nd.attribute) else no_attrs
        if attr_bytes is not None:
            attr_bytes.append(tuple([a.SerializeToString() for a in nd.attribute]) if attrs else ())
        try:
            in_ids = list(map(get_id, inputs))
        except KeyError:
            missing = next(x for x in inputs if x not in ids)
            raise ModelError(
                f"node {name or op_type!r} reads {missing!r}, which no earlier node, input or "
                "initializer defines (the graph is not topologically sorted, has a cycle, or a dangling "
                "input); fix the export or run onnx.utils / onnxsim on it") from None
        reads_secret = not secret_names.isdisjoint(inputs)
        secret = reads_secret and op_type not in PUBLIC_OUTPUT_OPS
        value = None
        if op_type == "Constant" and isinstance(attrs.get("value"), TensorProto):
            value = _small_value(attrs["value"])
        for out in outputs:
            if not out:
                continue
            if out in ids or value is not None:
                add(out, None, 0, secret, value)
            else:  # the common case, inlined: a new tensor, not a small constant
                ids[out] = len(t_shape)
                t_shape.append(None)
                t_dtype.append(0)
                t_secret.append(secret)
                if secret:
                    secret_names.add(out)
            shaped.append(ids[out])
        if "value" in attrs:
            attrs["value"] = "<tensor>"
        raw.append(new_node(Node, (i, name, op_type, domain, inputs, outputs, attrs)))
        in_rows.append((in_ids + pad)[:3] if len(in_ids) < 3 else in_ids[:3])
        out_ids.append((ids[outputs[0]] if outputs[0] else -2) if outputs else -1)
        secret_in.append(reads_secret)
        if reads_secret:
            groups.setdefault(op_type if domain in ("", "ai.onnx") else f"{domain}::{op_type}", []).append(i)
    del ids[""]
    nodes = tuple(raw)
    outputs = tuple(o.name for o in g.output)
    n = len(nodes)
    # What needs no shapes is made now (while a child process may still be inferring them).
    shapeless = (np.asarray(t_secret, dtype=bool), np.asarray(in_rows, dtype=np.int64).reshape(n, 3),
                 np.asarray(out_ids, dtype=np.int64), np.asarray(secret_in, dtype=bool),
                 {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()})
    del in_rows, out_ids, secret_in, groups
    tids = np.asarray(shaped, dtype=np.int64)
    is_shaped = np.zeros(len(t_shape), dtype=bool)
    is_shaped[tids] = True

    def finish(shapes: ShapeTable) -> Graph:
        """The second half: each graph input's and node output's shape, then the Graph and its columns
        (element counts and ranks: the initializers' from their dims, the others' as `shapes` has them)."""
        clamp, prod = _SIZE_CLAMP, math.prod
        n = len(t_shape)
        t_size = np.asarray([min(prod(s), clamp) for s in t_shape[:n_inits]] + [-1] * (n - n_inits),  # type: ignore[arg-type]
                            dtype=np.int64)
        t_rank = np.asarray([len(s) for s in t_shape[:n_inits]] + [-1] * (n - n_inits), dtype=np.int64)  # type: ignore[arg-type]
        types = (*shapes.types, UNKNOWN)  # a name without an entry: kind -1, the last
        kinds = shapes.kinds_by_id(ids, n)[tids]
        t_size[tids] = np.asarray([t[2] for t in types], dtype=np.int64)[kinds]
        t_rank[tids] = np.asarray([t[3] for t in types], dtype=np.int64)[kinds]
        type_shape, type_dtype = [t[0] for t in types], [t[1] for t in types]
        for tid, k in zip(shaped, kinds.tolist(), strict=True):
            t_shape[tid], t_dtype[tid] = type_shape[k], type_dtype[k]
        for tid, value in t_value.items():
            if t_shape[tid] is None and is_shaped[tid]:  # a small Constant whose output inference left out
                shape = t_shape[tid] = tuple(value.shape)
                t_size[tid], t_rank[tid] = min(prod(shape), clamp), len(shape)
        tensors = TensorTable(ids, t_shape, t_dtype, t_secret, t_value)
        graph = Graph(nodes, tensors, data_inputs, outputs, inits, opset, parameters)
        graph.__dict__["is_initializer"] = np.arange(n) < n_inits
        graph.__dict__["columns"] = Columns(t_size, t_rank, *shapeless)
        return graph

    return Structure(nodes, finish)
