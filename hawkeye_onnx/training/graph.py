"""The training graph's IR, built from the expander's records instead of its protos.

Every autodiff style's training graph starts with the same forward nodes: their IR (`ir.build_graph` on the
forward graph, BatchNormalization in training mode) is built once per model and shared by the styles; the
loss, backward and update nodes become IR records straight from the builder's plain records (names, decoded
attributes, the static shapes it computed), with no shape inference and no protos read back; a block's nodes
(`replay.defer`) become columns, their `Node` records and internal tensors' names being made only when read
(`TrainNodes`, `ir.TensorTable`). The result equals `ir.build_graph` on the shape-inferred training model
(tests/test_training_fast.py checks it on every model and style). Where a case falls outside what this covers
(a shape the expander does not know, a model that is not float, a new input named like a forward tensor),
`build` returns None and the caller takes the plain path.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto

from hawkeye_onnx.ir import (
    _SIZE_CLAMP,
    PUBLIC_OUTPUT_OPS,
    ColumnNodes,
    Columns,
    Graph,
    Node,
    Structure,
    TensorTable,
    key_of,
    op_key,
    paused_gc,
    read_structure,
)
from hawkeye_onnx.scope import ScopeIndex, merge_repeated_calls, prefix_scope, raw_scopes
from hawkeye_onnx.shapes import ShapeTable, type_info, value_shapes
from hawkeye_onnx.training.builder import Builder, output_name
from hawkeye_onnx.training.expand import _training_mode
from hawkeye_onnx.training.replay import Group, Instance, Step, Template, node_name


@dataclass(frozen=True)
class Forward:
    """The forward phase's IR and what `build` needs besides, shared by every style's training graph."""

    graph: Graph
    #: the forward nodes' distinct scopes (before `merge_repeated_calls`, which sees the whole graph), numbered in
    #: the order nodes first reach them, and each node's number
    scope_number: dict[tuple[str, ...], int]
    node_scope: np.ndarray
    head: int  # tensors that are initializers or data inputs: they come before the new inputs (label, ...)
    #: the scope of each slash-scoped name prefix of the forward nodes (`/a/b/` of `/a/b/Conv`): also the scope
    #: of the backward nodes `/a/b/Conv_Grad/...` (`prefix_scope` stops at `_Grad`)
    prefixes: dict[str, tuple[str, ...]]


def _norm_entry(norm: dict, shape: tuple[int, ...] | None) -> tuple[tuple[int, ...], int, int] | None:
    """`norm[shape]` made on a miss: the shape as plain ints (as read from a proto), its clamped size and its
    rank; None for a shape the IR cannot take from the expander (unknown or negative: `build` gives up)."""
    if shape is None or min(shape, default=1) < 0:
        return None
    plain = tuple(int(d) for d in shape)
    entry = norm[shape] = (plain, min(math.prod(plain), _SIZE_CLAMP), len(plain))
    return entry


class _Flow(NamedTuple):
    """A template's nodes for one secrecy of the names it is given: what `build` writes per node."""

    out_secret: tuple[bool, ...]  # per output
    reads: tuple[bool, ...]  # per step: some input is secret
    keys: tuple[str, ...]  # per step: its op key


class _Secrecy(NamedTuple):
    """The instances of a template whose given names have one secrecy: what flows through their nodes, and per
    instance its first node, its first tensor and its given names' ids."""

    flow: _Flow
    starts: list[int]
    firsts: list[int]
    given_ids: list[list[int]]


class _Located(NamedTuple):
    """One template's instances as `TrainNodes` reads them: the group (their names), and per member its given
    names and first node (counted from the first emitted node)."""

    group: Group
    envs: list[tuple[str | None, ...]]
    starts: np.ndarray
    bounds: tuple[tuple[int, int], ...]  # per step: its outputs' positions among the template's (`_Shaped`)


class TrainNodes(ColumnNodes):
    """The training graph's nodes: the forward nodes and the emitted records as `Node`s, each block's nodes made
    when read from its template and names. Blocks are most of the graph (1.26M of 1.47M nodes at 200k model
    nodes, 0.4 GB of records), and the cost stage reads few of them one by one: it reads op groups as columns,
    and what it reads of many nodes as lists (`op_keys`, `names`, `attrs`)."""

    __slots__ = ("_base", "_domains", "_groups", "_keys", "_nf", "_records", "_where")

    def __init__(self, base: tuple[Node, ...], records: list[Node | None], groups: list[_Located],
                 where: np.ndarray, domains: Mapping[int, str] | None = None) -> None:
        self._base, self._records, self._groups, self._where = base, records, groups, where
        self._nf = len(base)
        self._domains: Mapping[int, str] = domains or {}  # the nodes moved to another domain (`with_domains`)
        self._keys: list[str] | None = None

    def __len__(self) -> int:
        return self._nf + len(self._records)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1 or stop > self._nf:
                return [self[k] for k in range(start, stop, step)]
            out = list(self._base[start:stop])  # forward nodes (`cost.repeated_input_nodes`)
            for k, domain in self._domains.items():
                if start <= k < stop:
                    out[k - start] = out[k - start]._replace(domain=domain)
            return out
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i < self._nf:
            node = self._base[i]
        else:
            node = self._records[i - self._nf]
            if node is None:
                node = self._block_node(i)
        domain = self._domains.get(i) if self._domains else None
        return node if domain is None else node._replace(domain=domain)

    def __iter__(self) -> Iterator[Node]:
        return (self[i] for i in range(len(self)))

    def _block_node(self, i: int) -> Node:
        g, m, s = self._where[i - self._nf].tolist()
        group, envs, _, bounds = self._groups[g]
        t, scope, k = group.template, group.scopes[m], group.ks[m]
        step, env, given = t.steps[s], envs[m], t.given

        def output(o: int) -> str:  # the name of the member's output `o`
            s_o, i_o = t.origin[o]
            return output_name(node_name(t, scope, k, s_o), i_o)

        return tuple.__new__(Node, (i, node_name(t, scope, k, s), step.op, step.domain,
                                    tuple([env[x] if x < given else output(x - given) for x in step.inputs]),
                                    tuple([output(o) for o in range(*bounds[s])]),
                                    step.attrs))

    def _column(self, of_node: Callable[[Node], Any], of_step: Callable[[_Located, int, Step], Any]) -> list:
        """A value per node: `of_node(node)` for the forward nodes and records, `of_step(located, s, step)` for the
        nodes of step `s` of a template's instances (one value for all, or a column of its members)."""
        nf = self._nf
        out = np.empty(len(self), dtype=object)
        out[:nf] = [of_node(n) for n in self._base]
        plain = [k for k, r in enumerate(self._records) if r is not None]
        out[np.asarray(plain, dtype=np.int64) + nf] = [of_node(self._records[k]) for k in plain]
        for located in self._groups:
            for s, step in enumerate(located.group.template.steps):
                out[located.starts + (nf + s)] = of_step(located, s, step)
        return out.tolist()

    def op_keys(self, lo: int, hi: int) -> list[str]:
        if self._keys is None:
            self._keys = _moved(self._column(op_key, lambda located, s, step: key_of(step.op, step.domain)),
                                self._domains)
        return self._keys[lo:hi]

    def names(self, idx: Sequence[int]) -> list[str]:
        nf = self._nf
        at = np.asarray(idx, dtype=np.int64).reshape(-1)
        out = np.empty(len(at), dtype=object)
        base, records = self._base, self._records
        plain = np.flatnonzero(at < nf)
        out[plain] = [base[i].name for i in at[plain].tolist()]
        emitted = np.flatnonzero(at >= nf)
        where = self._where[at[emitted] - nf]
        record = where[:, 0] < 0
        out[emitted[record]] = [records[i - nf].name for i in at[emitted[record]].tolist()]  # type: ignore[union-attr]
        block, where = emitted[~record], where[~record]
        order = np.lexsort((where[:, 2], where[:, 0]))  # by group, then step: a column of names per run
        block, where = block[order], where[order]
        starts = np.flatnonzero(np.r_[True, np.any(where[1:, [0, 2]] != where[:-1, [0, 2]], axis=1)]).tolist() \
            if len(block) else []
        for lo, hi in zip(starts, [*starts[1:], len(block)], strict=False):
            g, _, s = where[lo].tolist()
            out[block[lo:hi]] = self._groups[g].group.nodes(s, where[lo:hi, 1].tolist())
        return out.tolist()

    def attrs(self, idx: list[int]) -> list[Mapping[str, Any]]:
        nf, where, groups, records = self._nf, self._where, self._groups, self._records
        out = []
        for i in idx:
            if i < nf:
                out.append(self._base[i].attrs)
                continue
            node = records[i - nf]
            if node is None:
                g, _, s = where[i - nf].tolist()
                out.append(groups[g].group.template.steps[s].attrs)
            else:
                out.append(node.attrs)
        return out

    def with_domains(self, changes: Mapping[int, str]) -> TrainNodes:
        out = TrainNodes(self._base, self._records, self._groups, self._where, {**self._domains, **changes})
        if self._keys is not None:
            out._keys = _moved(list(self._keys), changes)
        return out


def _moved(keys: list[str], domains: Mapping[int, str]) -> list[str]:
    """`keys` (op keys by node) after the nodes `domains` gives moved to those domains, changed in place."""
    for i, domain in domains.items():
        keys[i] = key_of(keys[i].rsplit("::", 1)[-1], domain)
    return keys


def _every_name(ids: dict[str, int], n: int, outputs: list[tuple[np.ndarray, Group]]) -> list[str]:
    """Every tensor's name by id, for `ir.TensorTable`: those of `ids`, and the blocks' outputs (`_Blocks.outputs`),
    of which `ids` has only the ones later nodes read."""
    out = np.empty(n, dtype=object)
    out[np.fromiter(ids.values(), dtype=np.int64, count=len(ids))] = list(ids)
    for firsts, group in outputs:
        for o, column in enumerate(group.columns()[1]):
            out[firsts + o] = column
    return out.tolist()


class _Shaped(NamedTuple):
    """A template's outputs as the tensor columns take them."""

    size: tuple[int, ...]
    rank: tuple[int, ...]
    shape: tuple[tuple[int, ...], ...]
    dtype: tuple[int, ...]
    values: tuple[tuple[int, Any], ...]  # (output position, a small constant's value)
    bounds: tuple[tuple[int, int], ...]  # per step: its outputs' positions


class _Blocks:
    """The deferred instances of `build`, in two passes. In order among the records (`add`): an instance's
    tensors (a later record reads their ids and secrecy), its scopes, and room for its nodes. At the end, per
    template, a step of all its instances at a time: their `Node` records (`nodes`), and per (template,
    secrecy) their nodes' columns, with numpy (`columns`)."""

    def __init__(self, norm: dict, b: Builder) -> None:
        self.norm = norm
        self.instances: list[Instance] = b.instances
        self.settled: list[Group] = b.settled
        self.at = [0] * len(b.instances)  # per instance: the number of its first node
        self.first = [0] * len(b.instances)  # per instance: the id of its first tensor
        #: per template (by id): it, its outputs (None: a shape `build` cannot take), and its instances per
        #: secrecy of their given names
        self.templates: dict[int, tuple[Template, _Shaped | None, dict[tuple[bool, ...], _Secrecy]]] = {}

    def _template(self, t: Template) -> tuple[Template, _Shaped | None, dict[tuple[bool, ...], _Secrecy]]:
        out = self.templates[id(t)] = (t, self._shaped(t), {})
        return out

    def _shaped(self, t: Template) -> _Shaped | None:
        sizes, ranks, shapes, dtypes, values, bounds = [], [], [], [], [], []
        o = 0
        for step in t.steps:
            for shape, dtype in zip(step.shapes, step.dtypes, strict=True):
                entry = self.norm.get(shape) or _norm_entry(self.norm, shape)
                if entry is None:
                    return None
                if step.value is not None:
                    values.append((len(shapes), step.value))
                sizes.append(entry[1])
                ranks.append(entry[2])
                shapes.append(entry[0])
                dtypes.append(TensorProto.FLOAT if dtype is None else dtype)
            bounds.append((o, o + step.n_out))
            o += step.n_out
        return _Shaped(tuple(sizes), tuple(ranks), tuple(shapes), tuple(dtypes), tuple(values), tuple(bounds))

    def outputs(self) -> list[tuple[np.ndarray, Group]]:
        """Per template: its instances' first tensor ids, and their group (`_every_name`)."""
        first = np.asarray(self.first, dtype=np.int64)
        return [(first[g.members], g) for g in self.settled] if self.instances else []

    @staticmethod
    def _secrecy(t: Template, given: tuple[bool, ...]) -> _Secrecy:
        """The instances of `t` whose given names' secrecy is `given`: what flows (none yet)."""
        secret = list(given)
        out_secret, reads, keys = [], [], []
        for step in t.steps:
            r = any(secret[x] for x in step.inputs)
            s = r and step.op not in PUBLIC_OUTPUT_OPS
            out_secret += [s] * step.n_out
            secret += [s] * step.n_out
            reads.append(r)
            keys.append(key_of(step.op, step.domain))
        return _Secrecy(_Flow(tuple(out_secret), tuple(reads), tuple(keys)), [], [], [])

    def add(self, j: int, i: int, ids: dict[str, int], secret: list[bool], size: list[int], rank: list[int],
            t_shape: list, t_dtype: list, t_value: dict, records: list, units: list,
            scope: tuple[str, ...]) -> int:
        """Append the tensors and scopes of instance `j`, whose first node is number `i`, and room for its nodes
        in `records` (`scope`: its nodes' raw scope); returns the number of the node after it, or -1 where `build`
        cannot take it (a name it does not know, a shape it lacks)."""
        inst = self.instances[j]
        t = inst.template
        _, shaped, by_secrecy = self.templates.get(id(t)) or self._template(t)
        if shaped is None:
            return -1
        try:
            given_ids = [ids[x] if x else -1 for x in inst.env]
        except KeyError:
            return -1
        given = tuple([x >= 0 and secret[x] for x in given_ids])
        group = by_secrecy.get(given)
        if group is None:
            group = by_secrecy[given] = self._secrecy(t, given)
        flow = group.flow
        first = len(secret)
        for o, name in zip(t.read, inst.read, strict=True):  # the outputs later nodes read (its gradients): the
            ids[name] = first + o  # others get ids when asked
        self.first[j] = first
        secret += flow.out_secret
        size += shaped.size
        rank += shaped.rank
        t_shape += shaped.shape
        t_dtype += shaped.dtype
        for o, value in shaped.values:
            t_value[first + o] = value
        n = len(t.steps)
        records += itertools.repeat(None, n)
        units.append((scope, n))
        self.at[j] = i
        group.starts.append(i)
        group.firsts.append(first)
        group.given_ids.append(given_ids)
        return i + n

    def nodes(self, base: tuple[Node, ...], records: list[Node | None]) -> TrainNodes:
        """The graph's nodes: `base` (the forward nodes), then `records` with each instance's nodes (None in
        `records`) made when read (`TrainNodes`), located a template step of all its instances at a time."""
        nf, n = len(base), len(base) + len(records)
        where = np.full((n - nf, 3), -1, dtype=np.int32)  # per emitted node: its group, member and step, or -1
        groups = []
        at = np.asarray(self.at, dtype=np.int64) - nf
        for g, group in enumerate(self.settled if self.instances else ()):
            t, members = group.template, group.members
            starts = at[members]
            groups.append(_Located(group, [self.instances[j].env for j in members], starts,
                                   self.templates[id(t)][1].bounds))  # type: ignore[union-attr]
            for s in range(len(t.steps)):
                rows = starts + s
                where[rows, 0] = g
                where[rows, 1] = np.arange(len(members), dtype=np.int32)
                where[rows, 2] = s
        return TrainNodes(base, records, groups, where)

    def columns(self, nf: int, node_in: np.ndarray, node_out: np.ndarray, secret_in: np.ndarray,
                groups: dict[str, list[np.ndarray]]) -> None:
        """Write the instances' nodes into the new nodes' columns (node `nf` is row 0) and their op groups."""
        for t, shaped, by_secrecy in self.templates.values():
            bounds = shaped.bounds  # type: ignore[union-attr]
            for flow, starts, firsts, given_ids in by_secrecy.values():
                at = np.asarray(starts, dtype=np.int64) - nf
                first = np.asarray(firsts, dtype=np.int64)
                env = np.asarray(given_ids, dtype=np.int64).reshape(len(starts), t.given)
                for k, step in enumerate(t.steps):
                    rows = at + k
                    for j, x in enumerate(step.inputs[:3]):
                        node_in[rows, j] = env[:, x] if x < t.given else first + (x - t.given)
                    if step.n_out:
                        node_out[rows] = first + bounds[k][0]
                    if flow.reads[k]:
                        secret_in[rows] = True
                        groups.setdefault(flow.keys[k], []).append(rows + nf)


class ForwardScopes(NamedTuple):
    """The forward nodes' scopes as `Forward` keeps them (`forward_scopes`)."""

    scope_number: dict[tuple[str, ...], int]
    node_scope: np.ndarray
    prefixes: dict[str, tuple[str, ...]]


def forward_scopes(nodes: Iterable[onnx.NodeProto], metadata: bool = True) -> ForwardScopes:
    """The scopes of a model's nodes as `Forward` keeps them: read from their names (and metadata, unless the
    caller knows that none has any: `scope.raw_scopes`), which the training-mode BatchNormalization keeps, so
    that a child inferring the model's shapes can read them meanwhile (`training.profile._load`)."""
    prefixes: dict[str, tuple[str, ...]] = {}
    scopes, number = raw_scopes(nodes, metadata, prefixes=prefixes)
    scope_number: dict[tuple[str, ...], int] = {}  # `scopes` may repeat a scope: numbered once
    renumber = np.asarray([scope_number.setdefault(sc, len(scope_number)) for sc in scopes], dtype=np.int64)
    return ForwardScopes(scope_number, renumber[np.asarray(number, dtype=np.int64)].reshape(len(number)), prefixes)


@paused_gc()  # its records live to the end (see `ir.paused_gc`); 0.2 s of 3 at 200k nodes
def forward_ir(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], table: ShapeTable | None = None,
               structure: Structure | None = None, scopes: ForwardScopes | None = None) -> Forward | None:
    """The IR of the shape-inferred `model` (static shapes `shapes`) with its nodes as the expander's forward
    phase; None when the model's first output is not float (the gradients' element type then comes from shape
    inference). `table`: the model's inferred shapes where they were read elsewhere (then `model` itself need
    not be the inferred one); `structure`: `model`'s, when read already (it is the forward phase's unless the
    model has a BatchNormalization); `scopes`: its `forward_scopes`, when read already."""
    g = model.graph
    if not g.output or g.output[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        return None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    table = value_shapes(g) if table is None else table
    fwd = model
    if any(n.op_type == "BatchNormalization" for n in (g.node if structure is None else structure.nodes)):
        fwd = onnx.ModelProto()  # else the model's nodes are the forward phase
        fwd.CopyFrom(model)
        del fwd.graph.node[:]
        fwd.graph.node.extend(_training_mode(n, opset) for n in g.node)
        running: dict[str, tuple] = {}  # BatchNormalization's running statistics: shaped like its inputs
        for n, nd in zip(g.node, fwd.graph.node, strict=True):
            if nd.output[1:] != n.output[1:]:
                for o, x in zip(nd.output[1:], nd.input[3:], strict=False):
                    if x not in shapes:
                        return None
                    running[o] = type_info(onnx.helper.make_tensor_type_proto(TensorProto.FLOAT, shapes[x]))
        table = table.with_entries(running)
        structure = None
    graph = (read_structure(fwd) if structure is None else structure).finish(table)
    scope_number, node_scope, prefixes = forward_scopes(fwd.graph.node) if scopes is None else scopes
    head = len(dict.fromkeys([*graph.initializers, *graph.inputs]))
    return Forward(graph, scope_number, node_scope, head, prefixes)


def build(fwd: Forward, train: onnx.ModelProto, b: Builder) -> tuple[Graph, ScopeIndex] | None:
    """`ir.build_graph(infer_shapes(train))` for the training model `train` whose loss, backward and update
    nodes `b` emitted after the forward nodes of `fwd`, and its `scope.scope_index`; None where that is not
    sure (see the module doc)."""
    base = fwd.graph
    g = train.graph
    inits = base.initializers
    data_inputs = tuple(vi.name for vi in g.input if vi.name not in inits)
    n_orig = len(base.inputs)
    new_inputs = data_inputs[n_orig:]
    added = [vi.name for vi in list(g.input)[len(g.input) - len(new_inputs):]] if new_inputs else []
    if data_inputs[:n_orig] != base.inputs or added != list(new_inputs) or len(set(new_inputs)) != len(new_inputs):
        return None
    bt = base.tensors
    if not isinstance(bt, TensorTable):
        return None
    if any(x in bt for x in new_inputs) or any(o in bt for o in b.outputs):
        return None
    head, m = fwd.head, len(new_inputs)
    # The tensors as columns (`ir.TensorTable`): the forward's first `head` (initializers, data inputs), the
    # new inputs (label, ...), the forward's others, then the emitted nodes' outputs.
    f_ids, f_shape, f_dtype, _, f_value = bt.columns()
    in_shape, in_dtype, in_size, in_rank = [], [], [], []
    for vi in list(g.input)[len(g.input) - m:]:
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value for d in tt.shape.dim)
        if any(not d.HasField("dim_value") or d.dim_value <= 0 for d in tt.shape.dim):
            return None
        in_shape.append(shape)
        in_dtype.append(tt.elem_type)
        in_size.append(min(math.prod(shape), _SIZE_CLAMP))
        in_rank.append(len(shape))
    f_names = list(f_ids)
    ids = dict(zip(itertools.chain(f_names[:head], new_inputs, f_names[head:]), itertools.count()))
    t_shape = [*f_shape[:head], *in_shape, *f_shape[head:]]
    t_dtype = [*f_dtype[:head], *in_dtype, *f_dtype[head:]]
    t_value = {k if k < head else k + m: v for k, v in f_value.items()}
    col = base.columns
    secret = [*col.secret[:head].tolist(), *([True] * m), *col.secret[head:].tolist()]
    size: list[int] = []
    rank: list[int] = []
    in_rows: list[list[int]] = []
    out_ids: list[int] = []
    secret_in: list[bool] = []
    plain_at: list[int] = []  # the node index of each record (the instances' nodes come between them)
    groups: dict[str, list[int]] = {}
    units: list[tuple[tuple[str, ...], int]] = []  # per record or instance, in order: its nodes' raw scope, and
    # their number
    scope_cache: dict[str, tuple[str, ...]] = dict(fwd.prefixes)  # (see `scope_of`)

    def scope_of(grad_scope: str) -> tuple[str, ...]:
        """The raw scope of the nodes of a backward scope `<P><fwd>_Grad`: the segments stop at `_Grad`, so it is
        the one of `<P>` (one per module, where the backward scopes are one per forward node)."""
        key = grad_scope[:grad_scope.rfind("/") + 1]
        found = scope_cache.get(key)
        if found is None:
            found = scope_cache[key] = prefix_scope(grad_scope + "/")
        return found

    # per distinct shape: (the shape as plain ints, as read from a proto; its clamped size; its rank)
    norm: dict[tuple[int, ...] | None, tuple[tuple[int, ...], int, int]] = {}
    records: list[Node] = []
    new_node = tuple.__new__  # `Node(...)` without its Python-level __new__
    nf = len(base.nodes)
    pad = [-1, -1, -1]
    shape_of, dtype_of, float_type = b.shapes.get, b.dtypes.get, TensorProto.FLOAT
    blocks = _Blocks(norm, b)

    def raw_scope(prefix: str) -> tuple[str, ...]:
        """The raw scope of the emitted nodes named `<prefix><tail>` (every emitted name is `<scope>/<tail>`)."""
        found = scope_cache.get(prefix)
        if found is None:
            found = scope_cache[prefix] = scope_of(prefix[:-1]) if prefix.endswith("_Grad/") else prefix_scope(prefix)
        return found

    def instance_scope(scope: str) -> tuple[str, ...]:
        """`raw_scope` of an instance's nodes (`<scope>/<tail>`), without an entry per backward scope (one per forward
        node: those of one module share the module's)."""
        return scope_of(scope) if scope.endswith("_Grad") else raw_scope(scope + "/")

    pending = list(enumerate(b.instances))[::-1]  # popped from the end, in order
    next_at = pending[-1][1].at if pending else -1
    i = nf
    for r, (name, op, domain, inputs, outs, attrs, value) in enumerate(b.records):
        while r == next_at:  # deferred instances (`replay.defer`) emitted before this record
            j, inst = pending.pop()
            i = blocks.add(j, i, ids, secret, size, rank, t_shape, t_dtype, t_value, records, units,
                           instance_scope(inst.scope))
            if i < 0:
                return None
            next_at = pending[-1][1].at if pending else -1
        try:
            in_ids = [ids[x] if x else -1 for x in inputs]
        except KeyError:
            return None
        reads_secret = any([secret[t] for t in in_ids if t >= 0])
        out_secret = reads_secret and op not in PUBLIC_OUTPUT_OPS
        first = len(secret)
        for out in outs:
            shape = shape_of(out)
            entry = norm.get(shape) or _norm_entry(norm, shape)
            if entry is None:
                return None
            if value is not None:
                t_value[len(secret)] = value
            ids[out] = len(secret)
            size.append(entry[1])
            rank.append(entry[2])
            secret.append(out_secret)
            t_shape.append(entry[0])
            t_dtype.append(dtype_of(out, float_type))
        records.append(new_node(Node, (i, name, op, domain, inputs, outs, attrs)))
        units.append((raw_scope(name[: name.rindex("/") + 1]), 1))
        in_rows.append((in_ids + pad)[:3])
        out_ids.append(first if outs else -1)
        secret_in.append(reads_secret)
        plain_at.append(i)
        if reads_secret:
            groups.setdefault(key_of(op, domain), []).append(i)
        i += 1
    while pending:  # instances after the last record (the updates)
        j, inst = pending.pop()
        i = blocks.add(j, i, ids, secret, size, rank, t_shape, t_dtype, t_value, records, units,
                       instance_scope(inst.scope))
        if i < 0:
            return None

    number = dict(fwd.scope_number)  # the forward nodes' scopes come first, numbered as the forward IR's
    emitted = np.asarray([number.setdefault(sc, len(number)) for sc, _ in units], dtype=np.int64)
    node_scope = np.concatenate([fwd.node_scope, np.repeat(emitted, [n for _, n in units])])
    scope_index = (merge_repeated_calls(list(number)), node_scope)
    nodes = blocks.nodes(tuple(base.nodes), records)

    def shifted(a: np.ndarray) -> np.ndarray:  # forward tensor ids after the new inputs
        return np.where(a >= head, a + m, a)

    n = len(nodes)
    new_in = np.full((n - nf, 3), -1, dtype=np.int64)
    new_out = np.full(n - nf, -1, dtype=np.int64)
    new_secret_in = np.zeros(n - nf, dtype=bool)
    at = np.asarray(plain_at, dtype=np.int64) - nf
    new_in[at] = np.asarray(in_rows, np.int64).reshape(-1, 3)
    new_out[at] = out_ids
    new_secret_in[at] = secret_in
    found = {k: [np.asarray(v, dtype=np.int64)] for k, v in groups.items()}
    blocks.columns(nf, new_in, new_out, new_secret_in, found)
    merged = {k: v[0] if len(v) == 1 else np.sort(np.concatenate(v)) for k, v in found.items()}
    all_groups = {k: np.concatenate([v, merged.pop(k, np.zeros(0, np.int64))]) for k, v in col.groups.items()}
    all_groups.update(sorted(merged.items(), key=lambda kv: int(kv[1][0])))  # new keys by their first node
    columns = Columns(
        np.concatenate([col.size[:head], np.asarray(in_size, np.int64), col.size[head:], np.asarray(size, np.int64)]),
        np.concatenate([col.rank[:head], np.asarray(in_rank, np.int64), col.rank[head:], np.asarray(rank, np.int64)]),
        np.asarray(secret, dtype=bool),
        np.concatenate([shifted(col.node_in), new_in]).reshape(n, 3),
        np.concatenate([shifted(col.node_out), new_out]),
        np.concatenate([col.secret_in, new_secret_in]),
        all_groups)
    # the blocks' tensors that no later node reads get their name -> id entries when asked (nothing reads them while
    # pricing): `blocks` itself is not kept
    tensors = TensorTable(ids, t_shape, t_dtype, secret, t_value,
                          functools.partial(_every_name, ids, len(t_shape), blocks.outputs()))
    graph = Graph(nodes, tensors, data_inputs, tuple(o.name for o in g.output), inits, base.opset,
                  base.parameters)
    graph.__dict__["columns"] = columns
    return graph, scope_index
