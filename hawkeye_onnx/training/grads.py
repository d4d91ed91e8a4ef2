"""Gradient rules: ONE registry keyed by op type.

A rule gets the forward node, the gradients of its outputs (None where no gradient flows) and which
inputs need one, and emits backward nodes (standard ONNX ops, or `ai.hawkeye` functions where the
MPC cost differs from the body's) through a `GradCtx`; it returns one gradient name (or None) per
input. Broadcasting inputs get their gradient summed back to their own shape (`unbroadcast`).
An op with a secret path from a weight to the loss and no rule here is a ModelError naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from hawkeye_onnx.errors import ModelError
from hawkeye_onnx.training.builder import Builder
from hawkeye_onnx.training.functions import DOMAIN

Grads = list[str | None]


@dataclass(frozen=True)
class Autodiff:
    """What a framework's autodiff computes beyond the minimal gradient graph (its cost is real)."""

    name: str
    data_input_grads: bool = False  # crypten AutogradMatMul/Conv2D always compute both operand grads
    gemm_scalar_grads: bool = False  # crypten Gemm: a.matmul(b).mul(alpha) + c.mul(beta), both autograd Muls
    secret_seed: bool = False  # crypten loss.backward() seeds with an encrypted one (grad_output is secret)
    # SPU: a public constant below 2^-frac_bits is 0 in fixed point (Adam's eps = 1e-8 vanishes) and
    # the pphlo pass rewrite_div_sqrt_patterns turns a / sqrt(b) into a * rsqrt(b)
    rsqrt_below: float = 0.0
    # ops whose framework module cuts the autograd graph: no gradient flows to what comes before them
    detached: tuple[str, ...] = ()
    # JAX sizes a conv's weight-gradient window to the kernel (trimming padding, even the input); CrypTen
    # computes the whole correlation and narrows it afterwards (crypten/gradients.py AutogradConv2D)
    trim_weight_grad: bool = False
    # jax 0.4.34 (jax_softmax_custom_jvp off) differentiates softmax as exp(x - max) / sum: the backward has a
    # secret division of dY by the row sums and a reciprocal of their squares (XLA dump, tests/test_training.py)
    softmax_quotient: bool = False
    # XLA keeps the forward's centred input, rsqrt(var + eps) and var: LayerNorm's backward recomputes no
    # statistic; it differentiates rsqrt (rsqrt(v) / v, a secret division per row)
    saved_norm_stats: bool = False


STYLES = {
    "onnx": Autodiff("onnx"),
    "jax": Autodiff("jax", rsqrt_below=2.0**-18, trim_weight_grad=True, softmax_quotient=True,
                   saved_norm_stats=True),
    # crypten/nn/module.py GlobalAveragePool.forward starts from input.shallow_copy(), a new tensor without
    # grad_fn: CrypTen trains nothing before it (measured: resnet_cifar's backward stops at the pooling)
    "crypten": Autodiff("crypten", data_input_grads=True, gemm_scalar_grads=True, secret_seed=True,
                        detached=("GlobalAveragePool",)),
}


def grad_scope(name: str, outputs: Sequence[str]) -> str:
    """The scope of the backward nodes of the node `name` (its first output if unnamed): onnxruntime-training's
    `<forward name>_Grad`."""
    return f"{name or outputs[0]}_Grad"


class GradCtx:
    """Emits the backward nodes of one forward node, named `<forward name>_Grad/<Op>_<k>`."""

    def __init__(self, b: Builder, node: onnx.NodeProto, needs: Sequence[bool], style: Autodiff) -> None:
        self.b = b
        self.node = node
        self.scope = grad_scope(node.name, node.output)
        self.needs = tuple(needs)
        self.style = style
        self.attrs = {a.name: _decoded(helper.get_attribute_value(a)) for a in node.attribute}

    def need(self, i: int) -> bool:
        return i < len(self.needs) and self.needs[i]

    def op(self, op: str, inputs: list[str], shape: Sequence[int] | None = None, **attrs: object) -> str:
        return self.b.op(self.scope, op, inputs, tuple(shape) if shape is not None else None, **attrs)

    def custom(self, op: str, inputs: list[str], shape: Sequence[int], **attrs: object) -> str:
        return self.b.emit(self.scope, op, inputs, 1, DOMAIN, tuple(shape), **attrs)[0]

    def const(self, value: float | list[int] | list[float], dtype: type = np.float32) -> str:
        return self.b.const(self.scope, value, dtype)

    def ints(self, value: Sequence[int]) -> str:
        return self.b.const(self.scope, list(value), np.int64)

    def shape(self, name: str) -> tuple[int, ...]:
        try:
            return self.b.shape(name)
        except KeyError:
            raise ModelError(f"node {self.node.name!r} ({self.node.op_type}): tensor {name!r} has no static shape; "
                             "bind the inputs with --input-shape / --batch") from None

    def unbroadcast(self, g: str, target: str) -> str:
        """Sum `g` (shape of the forward output) back to the shape of input `target`."""
        gs, ts = self.shape(g), self.shape(target)
        if gs == ts:
            return g
        lead = len(gs) - len(ts)
        axes = list(range(lead)) + [lead + i for i, d in enumerate(ts) if d == 1 and gs[lead + i] != 1]
        kept = tuple(1 if i in axes else d for i, d in enumerate(gs))
        if axes:
            g = self.op("ReduceSum", [g, self.ints(axes)], kept, keepdims=1)
        if kept != ts:
            g = self.op("Reshape", [g, self.ints(ts)], ts)
        return g

    def like(self, g: str, target: str) -> str:
        """`g` reshaped to `target`'s shape (shape plumbing)."""
        ts = self.shape(target)
        return g if self.shape(g) == ts else self.op("Reshape", [g, self.ints(ts)], ts)


def _decoded(value: object) -> object:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


Rule = Callable[[GradCtx, Grads], Grads]


@dataclass(frozen=True)
class GradRule:
    fn: Rule
    diff: tuple[int, ...]  # inputs that can carry a gradient (others: shapes, axes, running stats)
    any_output: bool = False  # the rule takes a gradient on any output (Split), not only the first


REGISTRY: dict[str, GradRule] = {}


def register(ops: str | Sequence[str], diff: Sequence[int] = (0,), any_output: bool = False) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        for op in [ops] if isinstance(ops, str) else ops:
            REGISTRY[op] = GradRule(fn, tuple(diff), any_output)
        return fn

    return deco


def _out_shape(c: GradCtx) -> tuple[int, ...]:
    return c.shape(c.node.output[0])


# ------------------------------------------------------------------ linear algebra


@register("Gemm", diff=(0, 1, 2))
def _gemm(c: GradCtx, dys: Grads) -> Grads:
    dy = dys[0]
    a, b = c.node.input[0], c.node.input[1]
    has_c = len(c.node.input) > 2 and bool(c.node.input[2])
    alpha, beta = float(c.attrs.get("alpha", 1.0)), float(c.attrs.get("beta", 1.0))
    ta, tb = int(c.attrs.get("transA", 0)), int(c.attrs.get("transB", 0))
    out: Grads = [None, None, None]
    if c.style.gemm_scalar_grads:
        # crypten: grad of a.matmul(b).mul(alpha) w.r.t. the product is dY.mul(alpha), a public product even
        # for alpha = 1 (a truncation for > 2 parties); the two matmul gradients then use it with alpha 1
        dy = c.op("Mul", [dy, c.const(alpha)], _out_shape(c))
        alpha = 1.0
    if c.need(0):
        if not ta:
            out[0] = c.op("Gemm", [dy, b], c.shape(a), alpha=alpha, transB=1 - tb)
        else:
            out[0] = c.op("Gemm", [b, dy], c.shape(a), alpha=alpha, transA=tb, transB=1)
    if c.need(1):
        if not tb:
            out[1] = c.op("Gemm", [a, dy], c.shape(b), alpha=alpha, transA=1 - ta)
        else:
            out[1] = c.op("Gemm", [dy, a], c.shape(b), alpha=alpha, transA=1, transB=ta)
    if c.style.gemm_scalar_grads:  # d/d alpha = sum(dY * AB): crypten multiplies dY by the product
        c.op("ReduceSum", [c.op("Mul", [dys[0], c.node.output[0]], _out_shape(c))], (), keepdims=0)
    if has_c and c.need(2):
        cin = c.node.input[2]
        db = c.unbroadcast(dys[0], cin)
        if c.style.gemm_scalar_grads:  # d/d beta = sum(dC * C)
            c.op("ReduceSum", [c.op("Mul", [db, cin], c.shape(cin))], (), keepdims=0)
        scaled = beta != 1.0 or c.style.gemm_scalar_grads  # crypten: c.mul(beta) backward is a public product
        out[2] = c.op("Mul", [db, c.const(beta)], c.shape(cin)) if scaled else db
    return out


def _swap_last(c: GradCtx, x: str) -> str:
    s = c.shape(x)
    perm = [*range(len(s) - 2), len(s) - 1, len(s) - 2]
    return c.op("Transpose", [x], (*s[:-2], s[-1], s[-2]), perm=perm)


@register("MatMul", diff=(0, 1))
def _matmul(c: GradCtx, dys: Grads) -> Grads:
    dy = dys[0]
    a, b = c.node.input[0], c.node.input[1]
    sa, sb, sy = c.shape(a), c.shape(b), _out_shape(c)
    if len(sa) < 2 or len(sb) < 2:
        raise ModelError(f"node {c.node.name!r}: MatMul gradient needs operands of rank >= 2 (got {sa} and {sb})")
    out: Grads = [None, None]
    if c.need(0):
        g = c.op("MatMul", [dy, _swap_last(c, b)], (*sy[:-1], sa[-1]))
        out[0] = c.unbroadcast(g, a)
    if c.need(1):
        g = c.op("MatMul", [_swap_last(c, a), dy], (*sy[:-2], sb[-2], sy[-1]))
        out[1] = c.unbroadcast(g, b)
    return out


def _conv_params(c: GradCtx, nsp: int) -> tuple[list[int], list[int], list[int]]:
    strides = list(c.attrs.get("strides", [1] * nsp))
    dil = list(c.attrs.get("dilations", [1] * nsp))
    pads = list(c.attrs.get("pads", [0] * 2 * nsp))
    if str(c.attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        raise ModelError(f"node {c.node.name!r}: Conv gradient with auto_pad={c.attrs['auto_pad']} is not supported; "
                         "export with explicit pads")
    return strides, dil, pads


@register("Conv", diff=(0, 1, 2))
def _conv(c: GradCtx, dys: Grads) -> Grads:
    """dX = ConvTranspose(dY, W); dW = Conv(X^T, dY^T) with strides and dilations swapped, cropped to the
    kernel (per group when group > 1); dB = sum of dY over N and space."""
    dy = dys[0]
    x, w = c.node.input[0], c.node.input[1]
    sx, sw, sy = c.shape(x), c.shape(w), _out_shape(c)
    nsp = len(sx) - 2
    strides, dil, pads = _conv_params(c, nsp)
    group = int(c.attrs.get("group", 1))
    out: Grads = [None, None, None]
    if c.need(0):
        natural = [(sy[2 + i] - 1) * strides[i] - pads[i] - pads[nsp + i] + dil[i] * (sw[2 + i] - 1) + 1
                   for i in range(nsp)]
        extra = [sx[2 + i] - natural[i] for i in range(nsp)]
        out[0] = c.op("ConvTranspose", [dy, w], sx, strides=strides, pads=pads, dilations=dil, group=group,
                      kernel_shape=list(sw[2:]), output_padding=extra)
    if c.need(1):
        perm = [1, 0, *range(2, 2 + nsp)]
        xt = c.op("Transpose", [x], (sx[1], sx[0], *sx[2:]), perm=perm)
        dyt = c.op("Transpose", [dy], (sy[1], sy[0], *sy[2:]), perm=perm)
        cin, cout = sx[1] // group, sy[1] // group
        # spatial size of the weight-grad conv: (H + pads - s (Ho - 1) - 1) // d + 1 >= kernel (crop below)
        kout = [(pads[i] + sx[2 + i] + pads[nsp + i] - strides[i] * (sy[2 + i] - 1) - 1) // dil[i] + 1
                for i in range(nsp)]
        # as JAX does (_conv_general_vjp_rhs_padding), trim the end padding, then the input itself (a negative
        # padding), so the output is exactly the kernel size (measured: SPU resnet_cifar's 1x1 stride-2 conv)
        wpads = list(pads)
        crop = [0] * nsp
        for i in range(nsp):
            extra = dil[i] * (kout[i] - sw[2 + i])
            if extra > 0 and c.style.trim_weight_grad:
                cut = min(extra, wpads[nsp + i])
                wpads[nsp + i] -= cut
                crop[i] = extra - cut
                kout[i] = sw[2 + i]
        if any(crop):
            xs = (sx[1], sx[0], *(sx[2 + i] - crop[i] for i in range(nsp)))
            xt = c.op("Slice", [xt, c.ints([0] * nsp), c.ints(list(xs[2:])), c.ints(list(range(2, 2 + nsp)))], xs)
        parts = []
        for gi in range(group):
            xg, dg = xt, dyt
            if group > 1:
                xg = c.op("Slice", [xt, c.ints([gi * cin]), c.ints([(gi + 1) * cin]), c.ints([0])],
                          (cin, *c.shape(xt)[1:]))
                dg = c.op("Slice", [dyt, c.ints([gi * cout]), c.ints([(gi + 1) * cout]), c.ints([0])],
                          (cout, *sy[:1], *sy[2:]))
            gw = c.op("Conv", [xg, dg], (cin, cout, *kout), strides=dil, dilations=strides, pads=wpads,
                      kernel_shape=list(sy[2:]))
            parts.append(gw)
        gw = parts[0] if group == 1 else c.op("Concat", parts, (cin, sy[1], *kout), axis=1)
        if kout != list(sw[2:]):
            gw = c.op("Slice", [gw, c.ints([0] * nsp), c.ints(list(sw[2:])), c.ints(list(range(2, 2 + nsp)))],
                      (cin, sy[1], *sw[2:]))
        out[1] = c.op("Transpose", [gw], sw, perm=perm)
    if len(c.node.input) > 2 and c.node.input[2] and c.need(2):
        axes = [0, *range(2, 2 + nsp)]
        out[2] = c.op("ReduceSum", [dy, c.ints(axes)], (sy[1],), keepdims=0)
    return out


# ------------------------------------------------------------------ activations


@register("Relu")
def _relu(c: GradCtx, dys: Grads) -> Grads:
    return [c.custom("ReluGrad", [dys[0], c.node.input[0]], c.shape(c.node.input[0]))]


@register("Sigmoid")
def _sigmoid(c: GradCtx, dys: Grads) -> Grads:
    y, s = c.node.output[0], _out_shape(c)
    one_minus = c.op("Sub", [c.const(1.0), y], s)
    return [c.op("Mul", [dys[0], c.op("Mul", [y, one_minus], s)], s)]


@register("Tanh")
def _tanh(c: GradCtx, dys: Grads) -> Grads:
    y, s = c.node.output[0], _out_shape(c)
    one_minus = c.op("Sub", [c.const(1.0), c.op("Mul", [y, y], s)], s)
    return [c.op("Mul", [dys[0], one_minus], s)]


@register("Erf")
def _erf(c: GradCtx, dys: Grads) -> Grads:
    x, s = c.node.input[0], _out_shape(c)
    e = c.op("Exp", [c.op("Neg", [c.op("Mul", [x, x], s)], s)], s)
    return [c.op("Mul", [dys[0], c.op("Mul", [e, c.const(2.0 / math.sqrt(math.pi))], s)], s)]


@register("Gelu")
def _gelu(c: GradCtx, dys: Grads) -> Grads:
    """d/dx x Phi(x) = Phi(x) + x phi(x) (exact form)."""
    x, s = c.node.input[0], _out_shape(c)
    erf = c.op("Erf", [c.op("Mul", [x, c.const(1 / math.sqrt(2))], s)], s)
    cdf = c.op("Mul", [c.op("Add", [erf, c.const(1.0)], s), c.const(0.5)], s)
    pdf = c.op("Mul", [c.op("Exp", [c.op("Mul", [c.op("Mul", [x, x], s), c.const(-0.5)], s)], s),
                       c.const(1 / math.sqrt(2 * math.pi))], s)
    return [c.op("Mul", [dys[0], c.op("Add", [cdf, c.op("Mul", [x, pdf], s)], s)], s)]


@register("Softmax")
def _softmax(c: GradCtx, dys: Grads) -> Grads:
    y, s = c.node.output[0], _out_shape(c)
    axis = int(c.attrs.get("axis", -1)) % len(s)
    if c.style.softmax_quotient and axis == len(s) - 1:
        return [c.custom("SoftmaxQuotientGrad", [dys[0], y], s)]
    kept = tuple(1 if i == axis else d for i, d in enumerate(s))
    dot = c.op("ReduceSum", [c.op("Mul", [dys[0], y], s), c.ints([axis])], kept, keepdims=1)
    return [c.op("Mul", [y, c.op("Sub", [dys[0], dot], s)], s)]


@register("Sqrt")
def _sqrt(c: GradCtx, dys: Grads) -> Grads:
    y, s = c.node.output[0], _out_shape(c)
    return [c.op("Div", [c.op("Mul", [dys[0], c.const(0.5)], s), y], s)]


@register("Exp")
def _exp(c: GradCtx, dys: Grads) -> Grads:
    return [c.op("Mul", [dys[0], c.node.output[0]], _out_shape(c))]


@register("Pow", diff=(0,))
def _pow(c: GradCtx, dys: Grads) -> Grads:
    """Constant exponent p: dY * p * x^(p-1) (p = 2: dY * 2x, as crypten's square backward)."""
    x, s = c.node.input[0], c.shape(c.node.input[0])
    p = _const_value(c, c.node.input[1])
    if p is None:
        raise ModelError(f"node {c.node.name!r}: Pow gradient needs a constant exponent")
    base = x if p == 2.0 else c.op("Pow", [x, c.const(p - 1.0)], s)
    return [c.unbroadcast(c.op("Mul", [dys[0], c.op("Mul", [base, c.const(p)], s)], _out_shape(c)), x)]


def _const_value(c: GradCtx, name: str) -> float | None:
    for n in c.b.producers.get(name, ()):
        if n.op_type == "Constant":
            t = helper.get_attribute_value(n.attribute[0])
            return float(onnx.numpy_helper.to_array(t).reshape(-1)[0])
    v = c.b.initial_values.get(name)
    return None if v is None else float(np.asarray(v).reshape(-1)[0])


# ------------------------------------------------------------------ elementwise with broadcasting


@register("Add", diff=(0, 1))
def _add(c: GradCtx, dys: Grads) -> Grads:
    return [c.unbroadcast(dys[0], c.node.input[i]) if c.need(i) else None for i in range(2)]


@register("Sub", diff=(0, 1))
def _sub(c: GradCtx, dys: Grads) -> Grads:
    out: Grads = [None, None]
    if c.need(0):
        out[0] = c.unbroadcast(dys[0], c.node.input[0])
    if c.need(1):
        out[1] = c.unbroadcast(c.op("Neg", [dys[0]], _out_shape(c)), c.node.input[1])
    return out


@register("Mul", diff=(0, 1))
def _mul(c: GradCtx, dys: Grads) -> Grads:
    a, b = c.node.input[0], c.node.input[1]
    out: Grads = [None, None]
    if c.need(0):
        out[0] = c.unbroadcast(c.op("Mul", [dys[0], b], _out_shape(c)), a)
    if c.need(1):
        out[1] = c.unbroadcast(c.op("Mul", [dys[0], a], _out_shape(c)), b)
    return out


@register("Div", diff=(0, 1))
def _div(c: GradCtx, dys: Grads) -> Grads:
    a, b = c.node.input[0], c.node.input[1]
    s = _out_shape(c)
    out: Grads = [None, None]
    if c.need(0):
        out[0] = c.unbroadcast(c.op("Div", [dys[0], b], s), a)
    if c.need(1):
        q = c.op("Div", [c.op("Mul", [dys[0], c.node.output[0]], s), b], s)
        out[1] = c.unbroadcast(c.op("Neg", [q], s), b)
    return out


# ------------------------------------------------------------------ pooling and normalisation


@register("MaxPool")
def _maxpool(c: GradCtx, dys: Grads) -> Grads:
    keep = {k: v for k, v in c.attrs.items() if k in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode")}
    return [c.custom("MaxPoolGrad", [dys[0], c.node.input[0]], c.shape(c.node.input[0]), **keep)]


@register("AveragePool")
def _avgpool(c: GradCtx, dys: Grads) -> Grads:
    """ConvTranspose of dY with a public 1/k kernel, one group per channel (count_include_pad assumed)."""
    x = c.node.input[0]
    sx = c.shape(x)
    nsp = len(sx) - 2
    k = list(c.attrs["kernel_shape"])
    strides = list(c.attrs.get("strides", [1] * nsp))
    pads = list(c.attrs.get("pads", [0] * 2 * nsp))
    sy = _out_shape(c)
    natural = [(sy[2 + i] - 1) * strides[i] - pads[i] - pads[nsp + i] + k[i] for i in range(nsp)]
    kernel = np.full((sx[1], 1, *k), 1.0 / math.prod(k), dtype=np.float32)
    w = c.b.const(c.scope, kernel.tolist())
    return [c.op("ConvTranspose", [dys[0], w], sx, strides=strides, pads=pads, group=sx[1], kernel_shape=k,
                 output_padding=[sx[2 + i] - natural[i] for i in range(nsp)])]


@register("GlobalAveragePool")
def _gap(c: GradCtx, dys: Grads) -> Grads:
    x = c.node.input[0]
    sx = c.shape(x)
    # scale the small tensor, then broadcast (XLA folds it the same way: one truncation per channel, not per pixel)
    scaled = c.op("Mul", [dys[0], c.const(1.0 / math.prod(sx[2:]))], c.shape(c.node.output[0]))
    return [c.op("Expand", [scaled, c.ints(sx)], sx)]


@register(("ReduceMean", "ReduceSum"), diff=(0,))
def _reduce(c: GradCtx, dys: Grads) -> Grads:
    x = c.node.input[0]
    sx, sy = c.shape(x), _out_shape(c)
    axes = c.attrs.get("axes")
    if axes is None and len(c.node.input) > 1 and c.node.input[1]:
        v = c.b.initial_values.get(c.node.input[1])
        axes = None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
        if v is None:
            for n in c.b.producers.get(c.node.input[1], ()):
                axes = [int(a) for a in onnx.numpy_helper.to_array(n.attribute[0].t).reshape(-1)]
    axes = list(range(len(sx))) if axes is None else [a % len(sx) for a in axes]
    kept = tuple(1 if i in axes else d for i, d in enumerate(sx))
    g = dys[0] if sy == kept else c.op("Reshape", [dys[0], c.ints(kept)], kept)
    g = c.op("Expand", [g, c.ints(sx)], sx)
    if c.node.op_type == "ReduceMean":
        g = c.op("Mul", [g, c.const(1.0 / math.prod(sx[a] for a in axes))], sx)
    return [g]


def _norm_backward(c: GradCtx, dy: str, x: str, axes: list[int], eps: float, scale: str | None,
                   bshape: tuple[int, ...]) -> tuple[str, str]:
    """dX of (x - mean) / sqrt(var + eps) * scale over `axes`, batch statistics recomputed:
    rstd * (dxh - mean(dxh) - xh * mean(dxh * xh)) with dxh = dY * scale."""
    s = c.shape(x)
    red = tuple(1 if i in axes else d for i, d in enumerate(s))
    ax = c.ints(axes)
    mean = c.op("ReduceMean", [x], red, axes=axes, keepdims=1) if c.b.opset < 18 else \
        c.op("ReduceMean", [x, ax], red, keepdims=1)
    xc = c.op("Sub", [x, mean], s)
    sq = c.op("Mul", [xc, xc], s)
    var = c.op("ReduceMean", [sq], red, axes=axes, keepdims=1) if c.b.opset < 18 else \
        c.op("ReduceMean", [sq, ax], red, keepdims=1)
    rstd = c.op("Reciprocal", [c.op("Sqrt", [c.op("Add", [var, c.const(eps)], red)], red)], red)
    xh = c.op("Mul", [xc, rstd], s)
    dxh = dy if scale is None else c.op("Mul", [dy, c.op("Reshape", [scale, c.ints(bshape)], bshape)], s)

    def mean_of(t: str) -> str:
        if c.b.opset < 18:
            return c.op("ReduceMean", [t], red, axes=axes, keepdims=1)
        return c.op("ReduceMean", [t, ax], red, keepdims=1)

    inner = c.op("Sub", [c.op("Sub", [dxh, mean_of(dxh)], s),
                         c.op("Mul", [xh, mean_of(c.op("Mul", [dxh, xh], s))], s)], s)
    return c.op("Mul", [rstd, inner], s), xh


@register("BatchNormalization", diff=(0, 1, 2))
def _batchnorm(c: GradCtx, dys: Grads) -> Grads:
    """Training-mode batch norm (batch statistics over N and space); running stats get no gradient."""
    dy = dys[0]
    x, scale = c.node.input[0], c.node.input[1]
    s = c.shape(x)
    axes = [0, *range(2, len(s))]
    bshape = (1, s[1], *([1] * (len(s) - 2)))
    dx, xh = _norm_backward(c, dy, x, axes, float(c.attrs.get("epsilon", 1e-5)), scale, bshape)
    out: Grads = [dx if c.need(0) else None, None, None, None, None]
    if c.need(1):
        out[1] = c.op("ReduceSum", [c.op("Mul", [dy, xh], s), c.ints(axes)], (s[1],), keepdims=0)
    if c.need(2):
        out[2] = c.op("ReduceSum", [dy, c.ints(axes)], (s[1],), keepdims=0)
    return out


@register("LayerNormalization", diff=(0, 1, 2))
def _layernorm(c: GradCtx, dys: Grads) -> Grads:
    dy = dys[0]
    x = c.node.input[0]
    s = c.shape(x)
    axis = int(c.attrs.get("axis", -1)) % len(s)
    axes = list(range(axis, len(s)))
    scale = c.node.input[1] if len(c.node.input) > 1 and c.node.input[1] else None
    bshape = tuple(s[axis:])
    if c.style.saved_norm_stats and scale and axis == len(s) - 1:
        eps = float(c.attrs.get("epsilon", 1e-5))
        dx, dscale = c.b.emit(c.scope, "LayerNormGrad", [dy, x, scale], 2, DOMAIN, s, epsilon=eps)
        c.b.shapes[dscale] = c.shape(scale)
        out_j: Grads = [dx if c.need(0) else None, dscale if c.need(1) else None, None]
        if c.need(2) and len(c.node.input) > 2 and c.node.input[2]:
            lead = list(range(axis))
            out_j[2] = c.like(c.op("ReduceSum", [dy, c.ints(lead)], bshape, keepdims=0), c.node.input[2])
        return out_j
    dx, xh = _norm_backward(c, dy, x, axes, float(c.attrs.get("epsilon", 1e-5)), scale, bshape)
    out: Grads = [dx if c.need(0) else None, None, None]
    lead = list(range(axis))
    if c.need(1) and scale:
        out[1] = c.like(c.op("ReduceSum", [c.op("Mul", [dy, xh], s), c.ints(lead)], bshape, keepdims=0), scale)
    if c.need(2) and len(c.node.input) > 2 and c.node.input[2]:
        out[2] = c.like(c.op("ReduceSum", [dy, c.ints(lead)], bshape, keepdims=0), c.node.input[2])
    return out


# ------------------------------------------------------------------ shape plumbing


@register(("Reshape", "Flatten", "Squeeze", "Unsqueeze"), diff=(0,))
def _reshape(c: GradCtx, dys: Grads) -> Grads:
    return [c.like(dys[0], c.node.input[0])]


@register("Cast", diff=(0,))
def _cast(c: GradCtx, dys: Grads) -> Grads:
    """A float-to-float cast: the gradient is cast back (to float32, the only type the expander writes)."""
    return [c.op("Cast", [dys[0]], c.shape(c.node.input[0]), to=onnx.TensorProto.FLOAT)]


@register("Pad", diff=(0,))
def _pad(c: GradCtx, dys: Grads) -> Grads:
    """Constant padding: the gradient is dY without the padded border (static pads, non-negative)."""
    x = c.node.input[0]
    sx = c.shape(x)
    pads = None
    if "pads" in c.attrs:
        pads = list(c.attrs["pads"])
    elif len(c.node.input) > 1 and c.node.input[1]:
        v = c.b.initial_values.get(c.node.input[1])
        if v is None:
            for p in c.b.producers.get(c.node.input[1], ()):
                if p.op_type == "Constant":
                    v = onnx.numpy_helper.to_array(p.attribute[0].t)
        pads = None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
    mode = str(c.attrs.get("mode", "constant"))
    has_axes = len(c.node.input) > 3 and bool(c.node.input[3])
    if pads is None or mode != "constant" or has_axes or any(p < 0 for p in pads) or len(pads) != 2 * len(sx):
        raise ModelError(f"node {c.node.name!r}: Pad gradient needs constant, non-negative pads on every axis "
                         "(mode constant)")
    starts = pads[: len(sx)]
    ends = [s + d for s, d in zip(starts, sx, strict=True)]
    return [c.op("Slice", [dys[0], c.ints(starts), c.ints(ends), c.ints(list(range(len(sx))))], sx)]


@register(("Identity", "Dropout"), diff=(0,))
def _identity(c: GradCtx, dys: Grads) -> Grads:
    return [dys[0]]


@register("Transpose", diff=(0,))
def _transpose(c: GradCtx, dys: Grads) -> Grads:
    s = c.shape(c.node.input[0])
    perm = list(c.attrs.get("perm", list(reversed(range(len(s))))))
    inv = [perm.index(i) for i in range(len(perm))]
    return [c.op("Transpose", [dys[0]], s, perm=inv)]


@register("Concat", diff=tuple(range(64)))
def _concat(c: GradCtx, dys: Grads) -> Grads:
    sy = _out_shape(c)
    axis = int(c.attrs["axis"]) % len(sy)
    out: Grads = []
    start = 0
    for i, name in enumerate(c.node.input):
        si = c.shape(name)
        end = start + si[axis]
        out.append(c.op("Slice", [dys[0], c.ints([start]), c.ints([end]), c.ints([axis])], si) if c.need(i) else None)
        start = end
    return out


def _const_ints(c: GradCtx, name: str) -> np.ndarray | None:
    """The value of a constant int input (initializer or Constant node), else None."""
    if not name:
        return None
    v = c.b.initial_values.get(name)
    if v is None:
        for p in c.b.producers.get(name, ()):
            if p.op_type == "Constant":
                v = onnx.numpy_helper.to_array(p.attribute[0].t)
    return None if v is None else np.asarray(v).reshape(-1)


@register("Slice", diff=(0,))
def _slice(c: GradCtx, dys: Grads) -> Grads:
    """Put dY back where the slice took it, zeros elsewhere (constant starts/ends, positive steps).
    A step s > 1 (resnet32's option-A shortcut x[:, :, ::2, ::2]) interleaves s - 1 zeros after every
    element (Unsqueeze, Pad, Reshape: JAX's transpose of a strided slice is lax.pad with interior padding,
    crypten/gradients.py AutogradGetItem zero-fills and assigns), then a border Pad; all layout, local."""
    x = c.node.input[0]
    sx = c.shape(x)
    starts, ends = (_const_ints(c, n) for n in c.node.input[1:3])
    axes = _const_ints(c, c.node.input[3]) if len(c.node.input) > 3 else None
    steps = _const_ints(c, c.node.input[4]) if len(c.node.input) > 4 else None
    if starts is None or ends is None:
        raise ModelError(f"node {c.node.name!r}: Slice gradient needs constant starts and ends")
    axes = np.arange(len(starts)) if axes is None else axes
    steps = np.ones(len(starts), dtype=np.int64) if steps is None else steps
    if np.any(steps < 1):
        raise ModelError(f"node {c.node.name!r}: Slice gradient needs positive steps (got {steps.tolist()})")
    g, cur = dys[0], list(_out_shape(c))
    pads = [0] * (2 * len(sx))
    for st, en, ax, step in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist(), strict=True):
        ax %= len(sx)
        d = sx[ax]
        st = max(0, min(d, st + d if st < 0 else st))
        en = max(0, min(d, en + d if en < 0 else en))
        m = cur[ax]
        if step > 1 and m > 0:
            wide = [*cur[: ax + 1], 1, *cur[ax + 1:]]
            g = c.op("Unsqueeze", [g, c.ints([ax + 1])], wide)
            interior = [0] * (2 * len(wide))
            interior[len(wide) + ax + 1] = step - 1
            wide[ax + 1] = step
            g = c.op("Pad", [g, c.ints(interior)], wide)
            span = min(m * step, d - st)
            cur[ax] = m * step
            g = c.op("Reshape", [g, c.ints(cur)], cur)
            if span < cur[ax]:  # trailing zeros past the end of the axis
                cur[ax] = span
                g = c.op("Slice", [g, c.ints([0]), c.ints([span]), c.ints([ax])], cur)
        pads[ax], pads[len(sx) + ax] = st, d - st - cur[ax]
    return [c.op("Pad", [g, c.ints(pads)], sx) if any(pads) else c.like(g, x)]


@register("Split", diff=(0,), any_output=True)
def _split(c: GradCtx, dys: Grads) -> Grads:
    """Concat of the outputs' gradients; an output without one contributes zeros (ConstantOfShape: public)."""
    sx = c.shape(c.node.input[0])
    axis = int(c.attrs.get("axis", 0)) % len(sx)
    parts = []
    for o, dy in zip(c.node.output, dys, strict=True):
        so = c.shape(o)
        parts.append(dy if dy is not None else c.op("ConstantOfShape", [c.ints(so)], so))
    return [parts[0] if len(parts) == 1 else c.op("Concat", parts, sx, axis=axis)]


@register("Expand", diff=(0,))
def _expand(c: GradCtx, dys: Grads) -> Grads:
    return [c.unbroadcast(dys[0], c.node.input[0])]


@register("Where", diff=(1, 2))
def _where(c: GradCtx, dys: Grads) -> Grads:
    """The gradient goes to the branch each element came from: Where(cond, dY, 0) and Where(cond, 0, dY)
    (jax's select transpose; crypten/gradients.py AutogradWhere multiplies by the condition). GPT-2's
    causal mask has a public condition: local in every framework."""
    cond, s = c.node.input[0], _out_shape(c)
    zero = c.const(0.0)
    out: Grads = [None, None, None]
    if c.need(1):
        out[1] = c.unbroadcast(c.op("Where", [cond, dys[0], zero], s), c.node.input[1])
    if c.need(2):
        out[2] = c.unbroadcast(c.op("Where", [cond, zero, dys[0]], s), c.node.input[2])
    return out


@register("Gather", diff=(0,))
def _gather(c: GradCtx, dys: Grads) -> Grads:
    """Embedding lookup: the table's gradient is dY scatter-added into zeros at the (public) indices
    (JAX's gather transpose is scatter-add; crypten/gradients.py AutogradIndexSelect uses index_add_).
    ScatterND with reduction add (opset >= 16; before it, repeated indices would overwrite, costing the same)."""
    data, idx = c.node.input[0], c.node.input[1]
    sd = c.shape(data)
    if int(c.attrs.get("axis", 0)) % len(sd) != 0:
        raise ModelError(f"node {c.node.name!r}: Gather gradient is implemented for axis 0 (an embedding "
                         f"lookup); got axis {c.attrs['axis']}")
    si = c.shape(idx)
    zeros = c.op("ConstantOfShape", [c.ints(sd)], sd)
    ind = c.op("Unsqueeze", [idx, c.ints([len(si)])], (*si, 1))
    red = {"reduction": "add"} if c.b.opset >= 16 else {}
    return [c.op("ScatterND", [zeros, ind, dys[0]], sd, **red), None]


@register("HardSigmoid")
def _hardsigmoid(c: GradCtx, dys: Grads) -> Grads:
    return [c.custom("HardSigmoidGrad", [dys[0], c.node.input[0]], c.shape(c.node.input[0]),
                     alpha=float(c.attrs.get("alpha", 0.2)), beta=float(c.attrs.get("beta", 0.5)))]


@register("HardSwish")
def _hardswish(c: GradCtx, dys: Grads) -> Grads:
    return [c.custom("HardSwishGrad", [dys[0], c.node.input[0]], c.shape(c.node.input[0]))]
