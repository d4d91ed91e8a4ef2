"""The training graph's IR, built from the expander's records instead of its protos.

Every autodiff style's training graph starts with the same forward nodes: their IR (`ir.build_graph` on the
forward graph, BatchNormalization in training mode) is built once per model and shared by the styles; the
loss, backward and update nodes become IR records straight from the builder's plain records (names, decoded
attributes, the static shapes it computed), with no shape inference and no protos read back. The result
equals `ir.build_graph` on the shape-inferred training model (tests/test_training_fast.py checks it on every
model and style). Where a case falls outside what this covers (a shape the expander does not know, a model
that is not float, a new input named like a forward tensor), `build` returns None and the caller takes the
plain path.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from hawkeye_onnx.ir import _SIZE_CLAMP, PUBLIC_OUTPUT_OPS, Columns, Graph, Node, TensorTable, build_graph
from hawkeye_onnx.scope import ScopeIndex, merge_repeated_calls, prefix_scope, raw_scopes
from hawkeye_onnx.training.builder import Builder
from hawkeye_onnx.training.expand import _training_mode


@dataclass(frozen=True)
class Forward:
    """The forward phase's IR and what `build` needs besides, shared by every style's training graph."""

    graph: Graph
    raw_scopes: list[tuple[str, ...]]  # per node, before `merge_repeated_calls` (which sees the whole graph)
    head: int  # tensors that are initializers or data inputs: they come before the new inputs (label, ...)


def forward_ir(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> Forward | None:
    """The IR of the shape-inferred `model` (static shapes `shapes`) with its nodes as the expander's forward
    phase; None when the model's first output is not float (the gradients' element type then comes from shape
    inference)."""
    g = model.graph
    if not g.output or g.output[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        return None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    fwd = onnx.ModelProto()
    fwd.CopyFrom(model)
    del fwd.graph.node[:]
    fwd.graph.node.extend(_training_mode(n, opset) for n in g.node)
    for n, nd in zip(g.node, fwd.graph.node, strict=True):
        if nd.output[1:] != n.output[1:]:  # BatchNormalization's running statistics: shaped like its inputs
            for o, x in zip(nd.output[1:], nd.input[3:], strict=False):
                if x not in shapes:
                    return None
                fwd.graph.value_info.append(onnx.helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[x]))
    graph = build_graph(fwd)
    scopes, number = raw_scopes(fwd.graph.node)
    raw = [scopes[k] for k in number]
    head = len(dict.fromkeys([*graph.initializers, *graph.inputs]))
    return Forward(graph, raw, head)


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
    groups: dict[str, list[int]] = {}
    raw_scopes: list[tuple[str, ...]] = []
    scope_cache: dict[str, tuple[str, ...]] = {}
    # per distinct shape: (the shape as plain ints, as read from a proto; its clamped size; its rank)
    norm: dict[tuple[int, ...] | None, tuple[tuple[int, ...], int, int]] = {}
    records: list[Node] = []
    new_node = tuple.__new__  # `Node(...)` without its Python-level __new__
    nf = len(base.nodes)
    pad = [-1, -1, -1]
    shape_of, dtype_of, float_type = b.shapes.get, b.dtypes.get, TensorProto.FLOAT
    for i, (name, op, domain, inputs, outs, attrs, value) in enumerate(b.records, start=nf):
        try:
            in_ids = [ids[x] if x else -1 for x in inputs]
        except KeyError:
            return None
        reads_secret = any([secret[t] for t in in_ids if t >= 0])
        out_secret = reads_secret and op not in PUBLIC_OUTPUT_OPS
        first = len(secret)
        for out in outs:
            shape = shape_of(out)
            entry = norm.get(shape)
            if entry is None:
                if shape is None or min(shape, default=1) < 0:
                    return None
                plain = tuple(int(d) for d in shape)
                entry = norm[shape] = (plain, min(math.prod(plain), _SIZE_CLAMP), len(plain))
            if value is not None:
                t_value[len(secret)] = value
            ids[out] = len(secret)
            size.append(entry[1])
            rank.append(entry[2])
            secret.append(out_secret)
            t_shape.append(entry[0])
            t_dtype.append(dtype_of(out, float_type))
        records.append(new_node(Node, (i, name, op, domain, inputs, outs, attrs)))
        prefix = name[: name.rindex("/") + 1]  # every emitted name is `<scope>/<Op>...`
        found = scope_cache.get(prefix)
        if found is None:
            # `<P><fwd>_Grad/`: the segments stop at `_Grad`, so the scope is the one of `<P>` (one per module,
            # where the backward prefixes are one per forward node)
            cut = prefix.rfind("/", 0, len(prefix) - 1) + 1
            key = prefix[:cut] if prefix.endswith("_Grad/") else prefix
            found = scope_cache.get(key)
            if found is None:
                found = scope_cache[key] = prefix_scope(prefix)
            scope_cache[prefix] = found
        raw_scopes.append(found)
        in_rows.append((in_ids + pad)[:3])
        out_ids.append(first if outs else -1)
        secret_in.append(reads_secret)
        if reads_secret:
            groups.setdefault(op if domain in ("", "ai.onnx") else f"{domain}::{op}", []).append(i)

    number: dict[tuple[str, ...], int] = {}
    node_scope = [number.setdefault(sc, len(number)) for sc in (*fwd.raw_scopes, *raw_scopes)]
    scope_index = (merge_repeated_calls(list(number)), np.asarray(node_scope, dtype=np.int64))
    nodes = [*base.nodes, *records]

    def shifted(a: np.ndarray) -> np.ndarray:  # forward tensor ids after the new inputs
        return np.where(a >= head, a + m, a)

    n = len(nodes)
    all_groups = {k: np.concatenate([v, np.asarray(groups.pop(k, []), dtype=np.int64)])
                  for k, v in col.groups.items()}
    all_groups.update((k, np.asarray(v, dtype=np.int64)) for k, v in groups.items())
    columns = Columns(
        np.concatenate([col.size[:head], np.asarray(in_size, np.int64), col.size[head:], np.asarray(size, np.int64)]),
        np.concatenate([col.rank[:head], np.asarray(in_rank, np.int64), col.rank[head:], np.asarray(rank, np.int64)]),
        np.asarray(secret, dtype=bool),
        np.concatenate([shifted(col.node_in), np.asarray(in_rows, np.int64).reshape(-1, 3)]).reshape(n, 3),
        np.concatenate([shifted(col.node_out), np.asarray(out_ids, np.int64)]),
        np.concatenate([col.secret_in, np.asarray(secret_in, bool)]),
        all_groups)
    tensors = TensorTable(ids, t_shape, t_dtype, secret, t_value)
    graph = Graph(tuple(nodes), tensors, data_inputs, tuple(o.name for o in g.output), inits, base.opset,
                  base.parameters)
    graph.__dict__["columns"] = columns
    return graph, scope_index
