"""Shape variables of a node: the numbers that rule formulas are written over.

One registry keyed by op type. Every costed node gets the generic variables; an op type with a
helper gets its own as well (a Conv's `N, C, H, W, O, kh, kw, Ho, Wo, groups`; a MatMul's
`batch, m, k, q`; a Softmax's `rows, c`; ...). Rule files may only use variables declared here, so
a misspelt variable fails when the rule file loads, not when a model happens to hit it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hawkeye_onnx.errors import ModelError, ShapeError
from hawkeye_onnx.ir import Graph, Node, node_attrs

GENERIC_VARS: tuple[str, ...] = ("n", "n_in", "n_in1", "n_in2", "s0", "s1", "s2", "rank")


@dataclass(frozen=True)
class OpVars:
    """Extra variables of one op type and the function that computes them for a node; `columns`, if set,
    computes them for a whole op group at once (None where it cannot: `compute` then runs per node and
    raises the error that names the node)."""

    names: tuple[str, ...]
    compute: Callable[[Node, Graph], Sequence[float | int]]
    columns: Callable[[Graph, np.ndarray], dict[str, np.ndarray] | None] | None = None


REGISTRY: dict[str, OpVars] = {}


def register(op_types: str | Sequence[str], names: Sequence[str]):
    """Decorator: `@register("Conv", ["N", "C", ...])` on `fn(node, graph) -> values`."""

    def deco(fn: Callable[[Node, Graph], Sequence[float | int]]):
        for op in [op_types] if isinstance(op_types, str) else op_types:
            REGISTRY[op] = OpVars(tuple(names), fn)
        return fn

    return deco


def register_columns(op_types: str | Sequence[str]):
    """Decorator: the group-at-once form of the `register`ed function of these op types."""

    def deco(fn: Callable[[Graph, np.ndarray], dict[str, np.ndarray] | None]):
        for op in [op_types] if isinstance(op_types, str) else op_types:
            REGISTRY[op] = dataclasses.replace(REGISTRY[op], columns=fn)
        return fn

    return deco


def _group_shapes(graph: Graph, idx: np.ndarray, slots: Sequence[int],
                  scalars: bool = False) -> list[list[tuple[int, ...]]] | None:
    """The shapes of input slots `slots` (-1: the first output) of the nodes `idx`, or None when one is
    absent, unknown, rank 0 (unless `scalars`) or absurd (the per-node path then names the culprit)."""
    col = graph.columns
    table = graph.shape_list
    out = []
    for slot in slots:
        ids = col.node_out[idx] if slot < 0 else col.node_in[idx, slot]
        if len(ids) and (int(ids.min()) < 0 or int(col.size[ids].max()) > MAX_ELEMENTS):
            return None
        shapes = [table[i] for i in ids.tolist()]
        if None in shapes or (not scalars and () in shapes):
            return None
        out.append(shapes)
    return out


def variables_for(op_type: str) -> tuple[str, ...]:
    extra = REGISTRY.get(op_type)
    return GENERIC_VARS + (extra.names if extra else ())


#: Elements per tensor beyond which costs could overflow int64 (2^48 elements times per-element
#: constants of up to ~2^14 stays below 2^63); no real model comes near it.
MAX_ELEMENTS = 1 << 48


def _shape(graph: Graph, name: str, node: Node) -> tuple[int, ...]:
    shape = graph.shape_of(name)
    if shape is None:
        hint = graph.extra.get("shape_hint", "bind the model's inputs with --input-shape NAME=DIMS or --batch N")
        raise ShapeError(f"tensor {name!r} (used by {node.op_type} node {node.name!r}) has no static shape; {hint}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ModelError(f"tensor {name!r} (used by {node.op_type} node {node.name!r}) has {math.prod(shape):.3g} "
                         f"elements (shape {'x'.join(map(str, shape))}): absurd dims; check --input-shape / --batch")
    return shape


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def generic(node: Node, graph: Graph) -> list[int]:
    sizes, flags = [0, 0, 0], [0, 0, 0]
    for i, name in enumerate(node.inputs[:3]):  # inputs first: an unknown input names the root cause
        if name:
            t = graph.tensors[name]
            sizes[i] = _size(_shape(graph, name, node))
            flags[i] = int(t.secret)
    out_shape = _shape(graph, node.outputs[0], node) if node.outputs else ()
    return [_size(out_shape), *sizes, *flags, len(out_shape)]


def generic_columns(graph: Graph, idx: np.ndarray) -> dict[str, np.ndarray]:
    """`generic` for many nodes at once, from the graph's columns (no per-node Python). A node with an
    unknown or absurd shape is handed to `generic`, which raises the error naming it."""
    col = graph.columns
    ins, out = col.node_in[idx], col.node_out[idx]
    present = ins >= 0
    in_size = np.where(present, col.size[ins], 0)
    has_out = out >= 0
    out_size = np.where(has_out, col.size[out], 1)
    bad = (present & ((in_size < 0) | (in_size > MAX_ELEMENTS))).any(axis=1)
    bad |= (out == -2) | (has_out & ((out_size < 0) | (out_size > MAX_ELEMENTS)))
    if bad.any():
        first = graph.nodes[int(idx[int(np.argmax(bad))])]
        generic(first, graph)
        raise ModelError(f"node {first.name!r}: a tensor it reads or writes has no usable shape")
    flags = np.where(present, col.secret[ins], False).astype(np.int64)
    values = [out_size, in_size[:, 0], in_size[:, 1], in_size[:, 2], flags[:, 0], flags[:, 1], flags[:, 2],
              np.where(has_out, col.rank[out], 0)]
    return dict(zip(GENERIC_VARS, values, strict=True))


@register("MatMul", ["batch", "m", "k", "q", "a_batch", "b_batch"])
def _matmul(node: Node, graph: Graph) -> list[int]:
    """`batch`: matrices in the output; `a_batch`/`b_batch`: matrices each operand holds (1 = 2-D)."""
    a = _shape(graph, node.inputs[0], node)
    b = _shape(graph, node.inputs[1], node)
    out = _shape(graph, node.outputs[0], node)
    m = a[-2] if len(a) >= 2 else 1
    k = a[-1]
    q = b[-1] if len(b) >= 2 else 1
    batch = _size(out) // max(1, m * q) if len(out) >= 2 else 1
    return [batch, m, k, q, _size(a[:-2]), _size(b[:-2])]


@register_columns("MatMul")
def _matmul_columns(graph: Graph, idx: np.ndarray) -> dict[str, np.ndarray] | None:
    found = _group_shapes(graph, idx, (0, 1, -1))
    if found is None:
        return None
    a, b, out = found
    m = [s[-2] if len(s) >= 2 else 1 for s in a]
    q = [s[-1] if len(s) >= 2 else 1 for s in b]
    col = graph.columns
    out_size = col.size[col.node_out[idx]]
    mq = np.maximum(1, np.asarray(m, dtype=np.int64) * np.asarray(q, dtype=np.int64))
    batch = np.where(np.asarray([len(s) >= 2 for s in out]), out_size // mq, 1)
    return {"batch": batch, "m": np.asarray(m, dtype=np.int64), "k": np.asarray([s[-1] for s in a], dtype=np.int64),
            "q": np.asarray(q, dtype=np.int64), "a_batch": np.asarray([_size(s[:-2]) for s in a], dtype=np.int64),
            "b_batch": np.asarray([_size(s[:-2]) for s in b], dtype=np.int64)}


@register("Gemm", ["m", "k", "q", "bias"])
def _gemm(node: Node, graph: Graph) -> list[int]:
    a = _shape(graph, node.inputs[0], node)
    b = _shape(graph, node.inputs[1], node)
    m, k = (a[1], a[0]) if node.attrs.get("transA", 0) else (a[0], a[1])
    q = b[0] if node.attrs.get("transB", 0) else b[1]
    bias = int(len(node.inputs) > 2 and bool(node.inputs[2]))
    return [m, k, q, bias]


@register_columns("Gemm")
def _gemm_columns(graph: Graph, idx: np.ndarray) -> dict[str, np.ndarray] | None:
    found = _group_shapes(graph, idx, (0, 1))
    if found is None or any(len(s) != 2 for shapes in found for s in shapes):
        return None
    a, b = found
    attrs = node_attrs(graph.nodes, idx.tolist())
    trans_a = [bool(a.get("transA", 0)) for a in attrs]
    trans_b = [bool(a.get("transB", 0)) for a in attrs]
    return {"m": np.asarray([s[1] if t else s[0] for s, t in zip(a, trans_a, strict=True)], dtype=np.int64),
            "k": np.asarray([s[0] if t else s[1] for s, t in zip(a, trans_a, strict=True)], dtype=np.int64),
            "q": np.asarray([s[0] if t else s[1] for s, t in zip(b, trans_b, strict=True)], dtype=np.int64),
            "bias": (graph.columns.node_in[idx, 2] >= 0).astype(np.int64)}  # a third input, not omitted ("")


@register(("Conv", "ConvTranspose"), ["N", "C", "H", "W", "O", "kh", "kw", "Ho", "Wo", "groups", "sh", "sw",
                                      "pad_h", "pad_w", "dil_h", "dil_w"])
def _conv(node: Node, graph: Graph) -> list[int]:
    """Shapes, groups, strides, total padding (begin + end) and dilations; 1-D convs get W = 1."""
    x = _shape(graph, node.inputs[0], node)
    w = _shape(graph, node.inputs[1], node)
    y = _shape(graph, node.outputs[0], node)
    return _conv_row(x, w, y, node.attrs)


def _conv_row(x: tuple[int, ...], w: tuple[int, ...], y: tuple[int, ...], attrs: Mapping[str, Any]) -> list[int]:
    spatial_in = list(x[2:]) + [1] * (2 - len(x[2:]))
    spatial_out = list(y[2:]) + [1] * (2 - len(y[2:]))
    kernel = list(w[2:]) + [1] * (2 - len(w[2:]))
    # 3-D convolutions fold their extra spatial dims into the second one.
    h, wd = spatial_in[0], math.prod(spatial_in[1:])
    ho, wo = spatial_out[0], math.prod(spatial_out[1:])
    kh, kw = kernel[0], math.prod(kernel[1:])
    strides = [*list(attrs.get("strides", (1,) * len(x[2:]))), 1]
    dil = [*list(attrs.get("dilations", (1,) * len(x[2:]))), 1]
    pads = list(attrs.get("pads", (0,) * 2 * len(x[2:])))
    half = len(pads) // 2
    pad_h = pads[0] + pads[half] if half >= 1 else 0
    pad_w = pads[1] + pads[half + 1] if half >= 2 else 0
    return [x[0], x[1], h, wd, y[1], kh, kw, ho, wo, int(attrs.get("group", 1)), strides[0], strides[1],
            pad_h, pad_w, dil[0], dil[1]]


@register_columns(("Conv", "ConvTranspose"))
def _conv_columns(graph: Graph, idx: np.ndarray) -> dict[str, np.ndarray] | None:
    found = _group_shapes(graph, idx, (0, 1, -1))
    if found is None or any(len(s) < 2 for shapes in found for s in shapes):
        return None
    # Repeated blocks repeat (shapes, attributes): each distinct one is made into a row once.
    distinct: dict[tuple, int] = {}
    rows: list[list[int]] = []
    which: list[int] = []
    try:
        for x, w, y, attrs in zip(*found, node_attrs(graph.nodes, idx.tolist()), strict=True):
            key = (x, w, y, attrs.get("strides"), attrs.get("dilations"), attrs.get("pads"), attrs.get("group"))
            k = distinct.get(key)
            if k is None:
                k = distinct[key] = len(rows)
                rows.append(_conv_row(x, w, y, attrs))
            which.append(k)
    except (IndexError, ValueError, TypeError):
        return None  # the per-node form names the node (an unhashable attribute too)
    table = np.asarray(rows, dtype=np.int64).reshape(len(rows), 16)[np.asarray(which, dtype=np.int64)]
    return dict(zip(REGISTRY["Conv"].names, table.T, strict=True))


@register(("MaxPool", "AveragePool", "LpPool"), ["N", "C", "k", "kh", "kw", "Ho", "Wo", "H", "W", "sh", "sw"])
def _pool(node: Node, graph: Graph) -> list[int]:
    x = _shape(graph, node.inputs[0], node)
    y = _shape(graph, node.outputs[0], node)
    kernel = list(node.attrs.get("kernel_shape", (1,)))
    kernel += [1] * (2 - len(kernel))
    out = list(y[2:]) + [1] * (2 - len(y[2:]))
    inp = list(x[2:]) + [1] * (2 - len(x[2:]))
    strides = [*list(node.attrs.get("strides", (1,) * len(x[2:]))), 1, 1]
    return [y[0], y[1], math.prod(kernel), kernel[0], math.prod(kernel[1:]), out[0], math.prod(out[1:]),
            inp[0], math.prod(inp[1:]), strides[0], strides[1]]


@register(("GlobalAveragePool", "GlobalMaxPool"), ["N", "C", "k"])
def _global_pool(node: Node, graph: Graph) -> list[int]:
    x = _shape(graph, node.inputs[0], node)
    return [x[0], x[1], _size(x[2:])]


def _axis(node: Node, rank: int, default: int) -> int:
    axis = int(node.attrs.get("axis", default))
    if not -rank <= axis < max(rank, 1):
        raise ModelError(f"{node.op_type} node {node.name!r}: axis {axis} is out of range for rank {rank}; "
                         "fix the export")
    return axis + rank if axis < 0 else axis


#: Ops XLA moves a degenerate-dim reshape through (elementwise), and ops whose output XLA reshapes to drop
#: unit dims (a dot with a size-1 row, a reshape). Used by `reduce_dim0` below.
_ELEMENTWISE = frozenset({"Relu", "Add", "Sub", "Mul", "Div", "Neg", "Tanh", "Sigmoid", "Exp", "Clip",
                          "LeakyRelu", "Identity", "Erf", "Sqrt", "Abs"})
_RESHAPING = frozenset({"MatMul", "Gemm", "Reshape", "Flatten", "Squeeze", "Unsqueeze"})


def _producer(graph: Graph, name: str) -> Node | None:
    """The node whose first output is `name` (the ops `_reshaped_upstream` follows have one output), from the
    columns: a training graph makes most of its node records only when read (`ir.ColumnNodes`)."""
    index = graph.extra.get("_producer")
    if index is None:
        col = graph.columns
        index = np.full(len(col.size), -1, dtype=np.int64)
        has = col.node_out >= 0
        index[col.node_out[has]] = np.flatnonzero(has)
        graph.extra["_producer"] = index  # shared by the `_context` variants of a graph (same nodes and tensors)
    t = graph.tensor_id(name)
    return None if t < 0 or index[t] < 0 else graph.nodes[int(index[t])]


def _reshaped_upstream(graph: Graph, name: str, depth: int = 8) -> bool:
    """Whether `name` comes from a dot or a reshape, through elementwise ops only."""
    node = _producer(graph, name)
    if node is None or depth == 0:
        return False
    if node.op_type in _RESHAPING:
        return True
    return node.op_type in _ELEMENTWISE and any(
        _reshaped_upstream(graph, i, depth - 1) for i in node.inputs if i)


@register(("Softmax", "LogSoftmax", "Hardmax"), ["rows", "c", "reduce_dim0"])
def _softmax(node: Node, graph: Graph) -> list[int]:
    """`reduce_dim0`: the row max runs as a reduce over dimension 0 of the compiled tensor, so SPU also
    compares each row with the reduce's init (pphlo_executor.cc execute(ReduceOp): the init value is
    dropped only when no reduced dim is 0). That is so when the axis is 0, or when every dim before it is 1
    and the input comes from a dot or a reshape (through elementwise ops): XLA's simplifier then strips the
    unit dims (measured, validation/measured/semi2k_ops_gaps.json softmax_after_matmul_*)."""
    x = _shape(graph, node.inputs[0], node)
    axis = _axis(node, len(x), -1 if graph.opset >= 13 else 1)
    c = x[axis] if graph.opset >= 13 else _size(x[axis:])
    dim0 = axis == 0 or (_size(x[:axis]) == 1 and _reshaped_upstream(graph, node.inputs[0]))
    return [_size(x) // max(c, 1), c, int(dim0)]


@register(("LayerNormalization",), ["rows", "c", "has_scale", "has_bias"])
def _layernorm(node: Node, graph: Graph) -> list[int]:
    x = _shape(graph, node.inputs[0], node)
    axis = _axis(node, len(x), -1)
    c = _size(x[axis:])
    has_scale = int(len(node.inputs) > 1 and bool(node.inputs[1]))
    has_bias = int(len(node.inputs) > 2 and bool(node.inputs[2]))
    return [_size(x) // max(c, 1), c, has_scale, has_bias]


@register(("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare",
           "ArgMax", "ArgMin"), ["rows", "c", "axes_input"])
def _reduce(node: Node, graph: Graph) -> list[int]:
    """`axes_input`: the axes come as a second input (ReduceSum >= 13, the others >= 18)."""
    x = _shape(graph, node.inputs[0], node)
    y = _shape(graph, node.outputs[0], node)
    rows = max(_size(y), 1)
    return [rows, _size(x) // rows, int(len(node.inputs) > 1 and bool(node.inputs[1]))]


@register("BatchNormalization", ["N", "C", "spatial"])
def _batchnorm(node: Node, graph: Graph) -> list[int]:
    x = _shape(graph, node.inputs[0], node)
    return [x[0], x[1] if len(x) > 1 else 1, _size(x[2:])]


@register("Pow", ["exponent"])
def _pow(node: Node, graph: Graph) -> list[float]:
    t = graph.tensor(node.inputs[1])
    if t is None or t.value is None or t.value.size != 1:
        return [float("nan")]
    return [float(np.asarray(t.value).reshape(-1)[0])]


def _is_weight(graph: Graph, name: str) -> bool:
    """An initializer of rank > 0: a model weight (the server's, in a two-party inference). Rank-0
    initializers are exporter literals (ir.py), Constant nodes are public constants, not weights."""
    t = graph.tensor(name)
    return name in graph.initializers and t is not None and bool(t.shape)


@register("Mul", ["wmul", "N", "C", "spatial", "per_channel"])
def _mul(node: Node, graph: Graph) -> list[int]:
    """`wmul`: exactly one operand is a model weight (an initializer, e.g. a folded BatchNorm scale), the
    other an activation. `N`, `C`, `spatial`: the activation's batch, channels (dim 1) and the product of
    its other dims. `per_channel`: the weight holds C values that broadcast along the activation's dim 1
    (a [C, 1, 1] or [1, C, 1, 1] scale), as a BatchNorm's scale does."""
    a, b = node.inputs[0], node.inputs[1]
    wa, wb = _is_weight(graph, a), _is_weight(graph, b)
    act, w = (b, a) if wa and not wb else (a, b)
    return _mul_row(wa, wb, _shape(graph, act, node), _shape(graph, w, node))


def _mul_row(wa: bool, wb: bool, x: tuple[int, ...], ws: tuple[int, ...]) -> list[int]:
    """`_mul` from whether each operand is a weight and the shapes of the activation `x` and the other `ws`."""
    wmul = int(wa != wb)
    n, c, spatial = (x[0], x[1], _size(x[2:])) if len(x) >= 2 else (1, _size(x), 1)
    # right-align the weight's dims with the activation's: only the one at dim 1 may differ from 1
    lead = len(x) - len(ws)
    dims = [d for i, d in enumerate(ws) if d != 1]
    at_c = [i + lead for i, d in enumerate(ws) if d != 1]
    per_channel = int(wmul and len(x) >= 2 and (not dims or (at_c == [1] and dims == [c])))
    return [wmul, n, c, spatial, per_channel]


@register_columns("Mul")
def _mul_columns(graph: Graph, idx: np.ndarray) -> dict[str, np.ndarray] | None:
    found = _group_shapes(graph, idx, (0, 1), scalars=True)
    if found is None:
        return None
    col = graph.columns
    weight = graph.is_initializer & (col.rank > 0)  # `_is_weight` by tensor id
    wa, wb = weight[col.node_in[idx, 0]].tolist(), weight[col.node_in[idx, 1]].tolist()
    rows = []
    made: dict[tuple, list[int]] = {}  # a big model repeats a few (weights?, shapes) combinations
    for key in zip(wa, wb, *found, strict=True):
        row = made.get(key)
        if row is None:
            p, q, x, y = key
            row = made[key] = _mul_row(p, q, y, x) if p and not q else _mul_row(p, q, x, y)
        rows.append(row)
    table = np.asarray(rows, dtype=np.int64).reshape(len(rows), 5)
    return dict(zip(REGISTRY["Mul"].names, table.T, strict=True))
