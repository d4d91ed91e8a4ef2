"""A small, strict ONNX-to-JAX lowering, so that SecretFlow SPU can run an ONNX model.

The lowering is an interpreter over the ONNX graph, run while JAX traces the function: each ONNX
op becomes the JAX op a user would write for SPU (``Conv`` -> ``jax.lax.conv_general_dilated``,
``Gemm`` -> ``jnp.matmul``, ``Relu`` -> ``jax.nn.relu``, ``MaxPool`` -> ``jax.lax.reduce_window``
with ``max``, ``Softmax`` -> ``jax.nn.softmax`` ...).

What is secret and what is public (the project's conventions, shared/ground-truth/README.md):

- graph inputs and float initializers (the weights) are the program's *secret* inputs, in that
  order, except a float initializer read only where ONNX wants a static value (a ``Pow``
  exponent, ``Clip`` bounds), which is a public constant;
- ``Constant`` nodes and non-float initializers are public constants;
- shape plumbing (``Shape``, ``Gather``/``Concat``/``Unsqueeze``/``Squeeze``/``Cast``/``Slice``
  of constants, ``Reshape`` targets ...) is folded with NumPy at trace time: any node whose
  inputs are all constants is evaluated with NumPy and never reaches SPU.

Anything else raises :class:`UnsupportedOp` with the node's name; nothing is silently skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import onnx
from onnx import numpy_helper

Value = Any  # a numpy array (public, static) or a traced jax array (secret)

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}

# (op_type, input index) slots that must hold a static value
_STATIC_SLOTS = {
    ("Pow", 1),
    ("Clip", 1),
    ("Clip", 2),
    ("Reshape", 1),
    ("Expand", 1),
    ("Unsqueeze", 1),
    ("Squeeze", 1),
    ("ReduceMean", 1),
    ("ReduceSum", 1),
    ("ReduceMax", 1),
    ("Slice", 1),
    ("Slice", 2),
    ("Slice", 3),
    ("Slice", 4),
    ("Split", 1),
    ("Tile", 1),
    ("ConstantOfShape", 0),
}


# lowering switches, set by ``lower``
_OPTIONS: dict[str, bool] = {"split_groups": False}


class UnsupportedOp(NotImplementedError):
    """An ONNX construct this lowering does not handle."""


@dataclass
class Lowered:
    """An ONNX graph as a JAX function of its secret inputs."""

    fn: Callable[..., list[jax.Array]]
    secret_names: list[str]  # graph inputs first, then the float initializers (weights)
    weights: dict[str, np.ndarray]  # values of the float initializers among ``secret_names``
    output_names: list[str]


def _is_const(v: Value) -> bool:
    return isinstance(v, np.ndarray | np.generic)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        val = onnx.helper.get_attribute_value(a)
        if isinstance(val, onnx.TensorProto):
            val = numpy_helper.to_array(val)
        elif isinstance(val, bytes):
            val = val.decode()
        out[a.name] = val
    return out


def _static(v: Value, what: str, node: onnx.NodeProto) -> np.ndarray:
    if not _is_const(v):
        raise UnsupportedOp(f"{node.op_type} {node.name!r}: {what} must be a constant, got a secret value")
    return np.asarray(v)


def _axes(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any], rank: int) -> tuple[int, ...] | None:
    """Reduction/squeeze axes from the attribute (old opsets) or the second input (new opsets)."""
    if len(ins) > 1 and ins[1] is not None:
        ax = [int(a) for a in _static(ins[1], "axes", node).reshape(-1)]
    elif "axes" in attrs:
        ax = [int(a) for a in attrs["axes"]]
    else:
        return None
    return tuple(sorted(a % rank for a in ax))


def _pads(attrs: dict[str, Any], node: onnx.NodeProto, nsp: int) -> list[tuple[int, int]]:
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise UnsupportedOp(f"{node.op_type} {node.name!r}: auto_pad={attrs['auto_pad']}")
    if attrs.get("auto_pad") == "VALID":
        return [(0, 0)] * nsp
    p = list(attrs.get("pads", [0] * (2 * nsp)))
    return [(int(p[i]), int(p[i + nsp])) for i in range(nsp)]


def _conv(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    x, w = ins[0], ins[1]
    nsp = x.ndim - 2
    if not 1 <= nsp <= 3:
        raise UnsupportedOp(f"Conv {node.name!r}: {nsp} spatial dims")
    spatial = "DHW"[-nsp:]
    dn = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    groups = int(attrs.get("group", 1))

    def conv(xx: Value, ww: Value, g: int) -> Value:
        return jax.lax.conv_general_dilated(
            xx,
            ww,
            window_strides=tuple(attrs.get("strides", [1] * nsp)),
            padding=_pads(attrs, node, nsp),
            rhs_dilation=tuple(attrs.get("dilations", [1] * nsp)),
            dimension_numbers=dn,
            feature_group_count=g,
        )

    if groups > 1 and _OPTIONS["split_groups"] and groups != x.shape[1]:
        # one convolution per group, concatenated (SPU 0.9.5 cannot execute the grouped form)
        xs = jnp.split(x, groups, axis=1)
        ws = jnp.split(w, groups, axis=0)
        y = jnp.concatenate([conv(xi, wi, 1) for xi, wi in zip(xs, ws, strict=True)], axis=1)
    else:
        y = conv(x, w, groups)
    if len(ins) > 2 and ins[2] is not None:
        y = y + jnp.reshape(ins[2], (1, -1) + (1,) * nsp)
    return y


def _pool_window(node: onnx.NodeProto, attrs: dict[str, Any], x: Value) -> tuple[tuple[int, ...], ...]:
    nsp = x.ndim - 2
    if attrs.get("ceil_mode", 0):
        raise UnsupportedOp(f"{node.op_type} {node.name!r}: ceil_mode=1")
    if any(d != 1 for d in attrs.get("dilations", [1] * nsp)):
        raise UnsupportedOp(f"{node.op_type} {node.name!r}: dilated pooling")
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedOp(f"{node.op_type} {node.name!r}: Indices output")
    k = (1, 1, *attrs["kernel_shape"])
    s = (1, 1, *attrs.get("strides", [1] * nsp))
    pads = ((0, 0), (0, 0), *_pads(attrs, node, nsp))
    return k, s, pads


def _maxpool(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    x = ins[0]
    k, s, pads = _pool_window(node, attrs, x)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, k, s, pads)


def _avgpool(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    x = ins[0]
    k, s, pads = _pool_window(node, attrs, x)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, k, s, pads)
    if attrs.get("count_include_pad", 0) or all(p == (0, 0) for p in pads):
        return total / math.prod(k)
    # count only the real elements of each window: a public per-position divisor, separable
    # per spatial dim (the window is a box)
    out_shape = total.shape[2:]
    cnt = np.ones((), np.float32)
    for d, (n, kk, ss, (pb, _)) in enumerate(zip(x.shape[2:], k[2:], s[2:], pads[2:], strict=True)):
        starts = np.arange(out_shape[d]) * ss - pb
        c1 = (np.minimum(starts + kk, n) - np.maximum(starts, 0)).astype(np.float32)
        cnt = np.multiply.outer(cnt, c1)
    return total / cnt


def _gemm(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    a, b = ins[0], ins[1]
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    y = jnp.matmul(a, b)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0:
        y = y * alpha
    if len(ins) > 2 and ins[2] is not None:
        y = y + (ins[2] if beta == 1.0 else ins[2] * beta)
    return y


def _layernorm(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    if len(node.output) > 1 and any(node.output[1:]):
        raise UnsupportedOp(f"LayerNormalization {node.name!r}: Mean/InvStdDev outputs")
    x = ins[0]
    axis = int(attrs.get("axis", -1)) % x.ndim
    axes = tuple(range(axis, x.ndim))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    xc = x - mean
    var = jnp.mean(jnp.square(xc), axis=axes, keepdims=True)
    y = xc * jax.lax.rsqrt(var + float(attrs.get("epsilon", 1e-5))) * ins[1]
    if len(ins) > 2 and ins[2] is not None:
        y = y + ins[2]
    return y


def _batchnorm(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    if attrs.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
        raise UnsupportedOp(f"BatchNormalization {node.name!r}: training mode")
    x, scale, bias, mean, var = ins
    shp = (1, -1) + (1,) * (x.ndim - 2)

    def r(v: Value) -> Value:
        return jnp.reshape(v, shp)

    return (x - r(mean)) * r(scale) / jnp.sqrt(r(var) + float(attrs.get("epsilon", 1e-5))) + r(bias)


def _softmax(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    return jax.nn.softmax(ins[0], axis=int(attrs.get("axis", -1)))


def _pow(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    e = float(_static(ins[1], "exponent", node).reshape(()))
    if e.is_integer() and e >= 0:
        return ins[0] ** int(e)  # lax.integer_pow: a chain of multiplications
    return jnp.power(ins[0], e)


def _reduce(fn: Callable[..., Value]) -> Callable[[onnx.NodeProto, list[Value], dict[str, Any]], Value]:
    def op(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
        x = ins[0]
        axes = _axes(node, ins, attrs, x.ndim)
        if axes is None and attrs.get("noop_with_empty_axes", 0):
            return x
        return fn(x, axis=axes, keepdims=bool(attrs.get("keepdims", 1)))

    return op


def _gelu(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    x = ins[0]
    if attrs.get("approximate", "none") == "tanh":
        return jax.nn.gelu(x, approximate=True)
    return 0.5 * x * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))


def _clip(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    x = ins[0]
    lo = attrs.get("min") if len(ins) < 2 or ins[1] is None else float(_static(ins[1], "min", node))
    hi = attrs.get("max") if len(ins) < 3 or ins[2] is None else float(_static(ins[2], "max", node))
    return jnp.clip(x, lo, hi)


def _hard_sigmoid(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    """ONNX max(0, min(1, alpha x + beta)); torch's alpha = 1/6, beta = 1/2 is jax.nn.hard_sigmoid."""
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if np.float32(alpha) == np.float32(1.0 / 6.0) and beta == 0.5:
        return jax.nn.hard_sigmoid(ins[0])
    return jnp.clip(ins[0] * alpha + beta, 0.0, 1.0)


def _argmax(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    if attrs.get("select_last_index", 0):
        raise UnsupportedOp(f"ArgMax {node.name!r}: select_last_index=1")
    return jnp.argmax(ins[0], axis=int(attrs.get("axis", 0)), keepdims=bool(attrs.get("keepdims", 1)))


def _div(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    a, b = ins
    if _is_const(b) and np.issubdtype(np.asarray(b).dtype, np.integer):
        b = np.asarray(b, np.float32)
    return a / b


# ops on secret (traced) values
_SECRET_OPS: dict[str, Callable[[onnx.NodeProto, list[Value], dict[str, Any]], Value]] = {
    "Add": lambda n, i, a: i[0] + i[1],
    "Sub": lambda n, i, a: i[0] - i[1],
    "Mul": lambda n, i, a: i[0] * i[1],
    "Div": _div,
    "Neg": lambda n, i, a: -i[0],
    "Abs": lambda n, i, a: jnp.abs(i[0]),
    "MatMul": lambda n, i, a: jnp.matmul(i[0], i[1]),
    "Gemm": _gemm,
    "Conv": _conv,
    "Relu": lambda n, i, a: jax.nn.relu(i[0]),
    "LeakyRelu": lambda n, i, a: jax.nn.leaky_relu(i[0], float(a.get("alpha", 0.01))),
    "Sigmoid": lambda n, i, a: jax.nn.sigmoid(i[0]),
    "Tanh": lambda n, i, a: jnp.tanh(i[0]),
    "Exp": lambda n, i, a: jnp.exp(i[0]),
    "Log": lambda n, i, a: jnp.log(i[0]),
    "Erf": lambda n, i, a: jax.lax.erf(i[0]),
    "Sqrt": lambda n, i, a: jnp.sqrt(i[0]),
    "Reciprocal": lambda n, i, a: jnp.reciprocal(i[0]),
    "Pow": _pow,
    "Gelu": _gelu,
    "Clip": _clip,
    "Max": lambda n, i, a: _fold(jnp.maximum, i),
    "Min": lambda n, i, a: _fold(jnp.minimum, i),
    "Sum": lambda n, i, a: _fold(jnp.add, i),
    "Softmax": _softmax,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": lambda n, i, a: jax.nn.hard_swish(i[0]),
    "ArgMax": _argmax,
    "LogSoftmax": lambda n, i, a: jax.nn.log_softmax(i[0], axis=int(a.get("axis", -1))),
    "Equal": lambda n, i, a: jnp.equal(i[0], i[1]),
    "Less": lambda n, i, a: jnp.less(i[0], i[1]),
    "Greater": lambda n, i, a: jnp.greater(i[0], i[1]),
    "Where": lambda n, i, a: jnp.where(i[0], i[1], i[2]),
    "MaxPool": _maxpool,
    "AveragePool": _avgpool,
    "GlobalAveragePool": lambda n, i, a: jnp.mean(i[0], axis=tuple(range(2, i[0].ndim)), keepdims=True),
    "GlobalMaxPool": lambda n, i, a: jnp.max(i[0], axis=tuple(range(2, i[0].ndim)), keepdims=True),
    "ReduceMean": _reduce(jnp.mean),
    "ReduceSum": _reduce(jnp.sum),
    "ReduceMax": _reduce(jnp.max),
    "LayerNormalization": _layernorm,
    "BatchNormalization": _batchnorm,
}


def _fold(f: Callable[[Value, Value], Value], xs: Sequence[Value]) -> Value:
    out = xs[0]
    for x in xs[1:]:
        out = f(out, x)
    return out


def _reshape_target(x: Value, shape: np.ndarray, allowzero: int) -> tuple[int, ...]:
    dims = [int(d) for d in shape.reshape(-1)]
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return tuple(dims)


def _slice(node: onnx.NodeProto, ins: list[Value], xp: Any) -> Value:
    x = ins[0]
    starts = _static(ins[1], "starts", node).reshape(-1)
    ends = _static(ins[2], "ends", node).reshape(-1)
    axes = _static(ins[3], "axes", node).reshape(-1) if len(ins) > 3 and ins[3] is not None else range(len(starts))
    steps = _static(ins[4], "steps", node).reshape(-1) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        idx[int(a) % x.ndim] = slice(int(s), int(e), int(st))  # out-of-range bounds clamp as in ONNX
    return x[tuple(idx)]


def _structural(node: onnx.NodeProto, ins: list[Value], attrs: dict[str, Any]) -> Value:
    """Data-movement and shape ops; NumPy when every input is a constant, else jnp (free in SPU)."""
    op = node.op_type
    xp: Any = np if all(v is None or _is_const(v) for v in ins) else jnp
    if op in ("Identity", "Dropout"):
        return ins[0]
    if op == "Shape":
        shp = np.asarray(ins[0].shape, np.int64)
        return shp[attrs.get("start", 0) : attrs.get("end", len(shp))]
    if op == "Size":
        return np.asarray(math.prod(ins[0].shape), np.int64)
    if op == "Cast":
        to = attrs["to"]
        if _is_const(ins[0]):
            return np.asarray(ins[0]).astype(onnx.helper.tensor_dtype_to_np_dtype(to))
        if to not in _FLOAT_TYPES:
            raise UnsupportedOp(f"Cast {node.name!r}: secret value to a non-float type")
        return ins[0].astype(jnp.float32)
    if op == "Reshape":
        return xp.reshape(ins[0], _reshape_target(ins[0], _static(ins[1], "shape", node), attrs.get("allowzero", 0)))
    if op == "Flatten":
        ax = int(attrs.get("axis", 1)) % max(ins[0].ndim, 1)
        return xp.reshape(ins[0], (math.prod(ins[0].shape[:ax]), -1))
    if op == "Transpose":
        return xp.transpose(ins[0], attrs.get("perm"))
    if op == "Concat":
        return xp.concatenate(list(ins), axis=int(attrs["axis"]))
    if op == "Unsqueeze":
        ax = _static(ins[1], "axes", node).reshape(-1) if len(ins) > 1 else np.asarray(attrs["axes"])
        out = ins[0]
        for a in sorted(int(a) % (ins[0].ndim + len(ax)) for a in ax):
            out = xp.expand_dims(out, a)
        return out
    if op == "Squeeze":
        axes = _axes(node, ins, attrs, ins[0].ndim)
        return xp.squeeze(ins[0], axis=axes)
    if op == "Gather":
        idx = _static(ins[1], "indices", node)
        return xp.take(ins[0], idx, axis=int(attrs.get("axis", 0)))
    if op == "Slice":
        return _slice(node, ins, xp)
    if op == "Expand":
        shape = tuple(int(d) for d in _static(ins[1], "shape", node))
        return xp.broadcast_to(ins[0], np.broadcast_shapes(ins[0].shape, shape))
    if op == "ConstantOfShape":
        val = attrs.get("value", np.zeros(1, np.float32))
        return np.full(tuple(int(d) for d in _static(ins[0], "shape", node)), val.reshape(-1)[0], val.dtype)
    if op == "Range":
        s, lim, d = (_static(v, "range bound", node).reshape(()) for v in ins)
        return np.arange(s, lim, d)
    if op == "Split":
        axis = int(attrs.get("axis", 0)) % ins[0].ndim
        sizes = (
            _static(ins[1], "split", node).reshape(-1) if len(ins) > 1 and ins[1] is not None else attrs.get("split")
        )
        if sizes is None:
            k = len(node.output)
            sizes = [ins[0].shape[axis] // k] * k
        bounds = np.cumsum([int(s) for s in sizes])[:-1]
        return tuple(xp.split(ins[0], bounds, axis=axis))
    raise AssertionError(op)


_STRUCTURAL = {
    "Identity",
    "Dropout",
    "Shape",
    "Size",
    "Cast",
    "Reshape",
    "Flatten",
    "Transpose",
    "Concat",
    "Unsqueeze",
    "Squeeze",
    "Gather",
    "Slice",
    "Expand",
    "ConstantOfShape",
    "Range",
    "Split",
}

# element-wise ops NumPy can fold when every input is a public constant
_NUMPY_FOLD: dict[str, Callable[..., Any]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Neg": np.negative,
    "Sqrt": np.sqrt,
    "Equal": np.equal,
    "Where": np.where,
    "Max": np.maximum,
    "Min": np.minimum,
    "Abs": np.abs,
    "Pow": np.power,
    "Reciprocal": np.reciprocal,
    "Exp": np.exp,
    "Log": np.log,
}


def _run_node(node: onnx.NodeProto, ins: list[Value]) -> Value | tuple[Value, ...]:
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedOp(f"{node.domain}::{op} {node.name!r}: custom domain")
    attrs = _attrs(node)
    if op == "Constant":
        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if key in attrs:
                return np.asarray(attrs[key])
        raise UnsupportedOp(f"Constant {node.name!r}: unsupported attribute {list(attrs)}")
    if op in _STRUCTURAL:
        return _structural(node, ins, attrs)
    if all(v is None or _is_const(v) for v in ins):
        if op == "Div":
            a, b = (np.asarray(v) for v in ins)
            return a // b if np.issubdtype(a.dtype, np.integer) else a / b
        if op in _NUMPY_FOLD:
            return np.asarray(_NUMPY_FOLD[op](*[np.asarray(v) for v in ins]))
        raise UnsupportedOp(f"{op} {node.name!r}: on constants only (cannot fold)")
    if op not in _SECRET_OPS:
        raise UnsupportedOp(f"{op} {node.name!r}: not supported by onnx2jax")
    for i, v in enumerate(ins):
        if (
            _is_const(v)
            and not np.issubdtype(np.asarray(v).dtype, np.floating)
            and (op, i) not in _STATIC_SLOTS
            and op != "Div"
        ):
            raise UnsupportedOp(f"{op} {node.name!r}: mixes a secret value with an integer constant")
    return _SECRET_OPS[op](node, ins, attrs)


def _static_only_inits(graph: onnx.GraphProto) -> set[str]:
    """Float initializers that every consumer reads in a static slot (they stay public)."""
    uses: dict[str, list[bool]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, i) in _STATIC_SLOTS)
    return {n for n, u in uses.items() if u and all(u)}


def lower(model: onnx.ModelProto, split_groups: bool = False) -> Lowered:
    """Lower `model` to a JAX function of its secret inputs (graph inputs, then weights).

    ``split_groups``: write a grouped ``Conv`` (1 < group < channels) as one convolution per group
    plus a concatenation instead of ``feature_group_count`` (SPU 0.9.5's compiler turns the
    grouped form into a convolution with 3 spatial dims that its executor rejects).
    """
    _OPTIONS["split_groups"] = split_groups
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    static_only = _static_only_inits(graph)
    consts: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    for name, arr in inits.items():
        if np.issubdtype(arr.dtype, np.floating) and name not in static_only:
            weights[name] = arr.astype(np.float32)
        else:
            consts[name] = arr
    data_inputs = [i.name for i in graph.input if i.name not in inits]
    for i in graph.input:
        if i.name in data_inputs and i.type.tensor_type.elem_type not in _FLOAT_TYPES:
            raise UnsupportedOp(f"graph input {i.name!r} is not a float tensor")
    secret_names = data_inputs + list(weights)
    output_names = [o.name for o in graph.output]

    def fn(*args: jax.Array) -> list[jax.Array]:
        _OPTIONS["split_groups"] = split_groups
        env: dict[str, Value] = dict(consts)
        env.update(zip(secret_names, args, strict=True))
        for node in graph.node:
            ins = [env[n] if n else None for n in node.input]
            out = _run_node(node, ins)
            outs = out if isinstance(out, tuple) else (out,)
            for name, v in zip(node.output, outs, strict=False):
                if name:
                    env[name] = v
        result = []
        for name in output_names:
            v = env[name]
            if _is_const(v):
                raise UnsupportedOp(f"graph output {name!r} is a public constant")
            result.append(v)
        return result

    return Lowered(fn=fn, secret_names=secret_names, weights=weights, output_names=output_names)


def positive_inputs(model: onnx.ModelProto) -> set[str]:
    """Graph inputs that feed a domain-restricted op (Sqrt, Log, Reciprocal, a divisor, a
    fractional power): the measurement samples those from (0.5, 2) so the reference is finite."""
    out: set[str] = set()
    for node in model.graph.node:
        if node.op_type in ("Sqrt", "Log", "Reciprocal"):
            out.add(node.input[0])
        elif node.op_type == "Div":
            out.add(node.input[1])
        elif node.op_type == "Pow":
            out.add(node.input[0])
    return out
