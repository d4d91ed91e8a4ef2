"""The `ai.hawkeye` ops of a training graph, as ONNX model-local functions.

Each is a standard-op body (so `onnx.checker` and shape inference see through it) with a name the
cost rules can key on, because its cost under MPC differs from the cost of its body:
- `ReluGrad(dY, X)`: dY where X > 0. CrypTen and SPU reuse the comparison bit of the forward ReLU
  (crypten/gradients.py AutogradReLU saves `input.gt(0)`; XLA keeps jax.nn.relu's `x > 0`), so only
  the product by the mask is paid, not a second comparison (the body recomputes it).
- `MaxPoolGrad(dY, X)`: scatter dY to the argmax of each window (CrypTen saves the one-hot argmax of
  the forward, crypten/gradients.py AutogradMaxPool2D; only the product by it is paid).
- `SoftmaxCrossEntropy(logits, label) -> (loss, probs)`: mean over the batch of -sum(label * log
  softmax(logits)), label one-hot and secret (crypten/gradients.py AutogradCrossEntropy).
- `SoftmaxCrossEntropyGrad(dloss, probs, label)`: (probs - label) / batch * dloss.
- `Rsqrt(X)`: 1 / sqrt(X), one kernel in SPU (hal f_rsqrt), what its compiler makes of a / sqrt(b).
- `SoftmaxQuotientGrad(dY, Y)` (last axis): the gradient of softmax written as u / sum(u), u = exp(x - max),
  as jax 0.4.34 differentiates it (jax/_src/nn/functions.py _softmax_deprecated; jax_softmax_custom_jvp is
  off by default): dY / s - sum(dY * u / s^2), times u. The body computes the same value from Y.
- `LayerNormGrad(dY, X, Scale) -> (dX, dScale)` (last axis, epsilon): as XLA differentiates the JAX layer
  norm, reusing the forward's centred input, rsqrt(var + eps) and var (no statistic recomputed).
- `HardSigmoidGrad(dY, X)` (alpha, beta), `HardSwishGrad(dY, X)`: dY times the derivative, where the
  clipped linear piece is active. JAX differentiates relu6 by its custom_jvp (jax/_src/nn/functions.py:
  select((x > 0) & (x < 6), g, 0)): two fresh comparisons on the saved input, not the forward's.
"""

from __future__ import annotations

import numpy as np
from onnx import AttributeProto, FunctionProto, helper, numpy_helper

DOMAIN = "ai.hawkeye"


def _const(name: str, value: float | list[int], dtype: type = np.float32) -> object:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype=dtype)))


def _relu_grad(opset: int) -> FunctionProto:
    nodes = [
        _const("zero", 0.0),
        helper.make_node("Greater", ["X", "zero"], ["mask"]),
        helper.make_node("Where", ["mask", "dY", "zero"], ["dX"]),
    ]
    return helper.make_function(DOMAIN, "ReluGrad", ["dY", "X"], ["dX"], nodes,
                                [helper.make_opsetid("", opset)])


def _maxpool_grad(opset: int) -> FunctionProto:
    refs = [helper.make_attribute_ref(a, t) for a, t in (
        ("kernel_shape", AttributeProto.INTS), ("strides", AttributeProto.INTS), ("pads", AttributeProto.INTS),
        ("dilations", AttributeProto.INTS), ("ceil_mode", AttributeProto.INT))]
    pool = helper.make_node("MaxPool", ["X"], ["Y", "idx"])
    pool.attribute.extend(refs)
    nodes = [
        pool,
        _const("flat", [-1], np.int64),
        helper.make_node("Size", ["X"], ["size"]),
        helper.make_node("Reshape", ["size", "flat"], ["size1"]),
        helper.make_node("ConstantOfShape", ["size1"], ["zeros"]),
        helper.make_node("Reshape", ["idx", "flat"], ["idx1"]),
        helper.make_node("Reshape", ["dY", "flat"], ["dY1"]),
        # overlapping windows add up (reduction needs opset 16; before it, windows must not overlap)
        helper.make_node("ScatterElements", ["zeros", "idx1", "dY1"], ["dX1"], axis=0,
                         **({"reduction": "add"} if opset >= 16 else {})),
        helper.make_node("Shape", ["X"], ["shape"]),
        helper.make_node("Reshape", ["dX1", "shape"], ["dX"]),
    ]
    return helper.make_function(DOMAIN, "MaxPoolGrad", ["dY", "X"], ["dX"], nodes,
                                [helper.make_opsetid("", opset)],
                                attributes=["kernel_shape", "strides", "pads", "dilations", "ceil_mode"])


def _batch(src: str) -> list:
    """Nodes computing `batch` (float) = dim 0 of `src`."""
    return [
        helper.make_node("Shape", [src], ["shape"], start=0, end=1),
        helper.make_node("Cast", ["shape"], ["batch1"], to=1),
        _const("no_axes", [0], np.int64),
        helper.make_node("Squeeze", ["batch1", "no_axes"], ["batch"]),
    ]


def _cross_entropy(opset: int) -> FunctionProto:
    nodes = [
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        helper.make_node("Log", ["probs"], ["logp"]),
        helper.make_node("Mul", ["logp", "label"], ["picked"]),
        helper.make_node("ReduceSum", ["picked"], ["total"], keepdims=0),
        helper.make_node("Neg", ["total"], ["neg"]),
        *_batch("logits"),
        helper.make_node("Div", ["neg", "batch"], ["loss"]),
    ]
    return helper.make_function(DOMAIN, "SoftmaxCrossEntropy", ["logits", "label"], ["loss", "probs"], nodes,
                                [helper.make_opsetid("", opset)])


def _cross_entropy_grad(opset: int) -> FunctionProto:
    nodes = [
        helper.make_node("Sub", ["probs", "label"], ["diff"]),
        *_batch("probs"),
        helper.make_node("Div", ["diff", "batch"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "dloss"], ["dlogits"]),
    ]
    return helper.make_function(DOMAIN, "SoftmaxCrossEntropyGrad", ["dloss", "probs", "label"], ["dlogits"], nodes,
                                [helper.make_opsetid("", opset)])


def _rsqrt(opset: int) -> FunctionProto:
    nodes = [helper.make_node("Sqrt", ["X"], ["root"]), helper.make_node("Reciprocal", ["root"], ["Y"])]
    return helper.make_function(DOMAIN, "Rsqrt", ["X"], ["Y"], nodes, [helper.make_opsetid("", opset)])


def _softmax_quotient_grad(opset: int) -> FunctionProto:
    nodes = [
        _const("last", [-1], np.int64),
        helper.make_node("Mul", ["dY", "Y"], ["dy_y"]),
        helper.make_node("ReduceSum", ["dy_y", "last"], ["dot"], keepdims=1),
        helper.make_node("Sub", ["dY", "dot"], ["centred"]),
        helper.make_node("Mul", ["Y", "centred"], ["dX"]),
    ]
    return helper.make_function(DOMAIN, "SoftmaxQuotientGrad", ["dY", "Y"], ["dX"], nodes,
                                [helper.make_opsetid("", opset)])


def _row_mean(x: str, y: str, opset: int) -> object:
    """ReduceMean over the last axis (axes an attribute before opset 18, an input from 18; `last` = [-1])."""
    if opset >= 18:
        return helper.make_node("ReduceMean", [x, "last"], [y], keepdims=1)
    return helper.make_node("ReduceMean", [x], [y], axes=[-1], keepdims=1)


def _layernorm_grad(opset: int) -> FunctionProto:
    ln = helper.make_node("LayerNormalization", ["X", "Scale"], ["Y", "mean", "inv"], axis=-1)
    ln.attribute.append(AttributeProto(name="epsilon", ref_attr_name="epsilon", type=AttributeProto.FLOAT))
    nodes = [
        ln,
        helper.make_node("Sub", ["X", "mean"], ["xc"]),
        helper.make_node("Mul", ["xc", "inv"], ["xh"]),
        helper.make_node("Mul", ["dY", "Scale"], ["g"]),
        _const("last", [-1], np.int64),
        _row_mean("g", "g_mean", opset),
        helper.make_node("Mul", ["g", "xh"], ["g_xh"]),
        _row_mean("g_xh", "gx_mean", opset),
        helper.make_node("Sub", ["g", "g_mean"], ["t1"]),
        helper.make_node("Mul", ["xh", "gx_mean"], ["t2"]),
        helper.make_node("Sub", ["t1", "t2"], ["t3"]),
        helper.make_node("Mul", ["inv", "t3"], ["dX"]),
        helper.make_node("Mul", ["dY", "xh"], ["dy_xh"]),
        helper.make_node("Shape", ["Scale"], ["scale_shape"]),
        _const("minus_one", [-1], np.int64),
        helper.make_node("Concat", ["minus_one", "scale_shape"], ["rows_c"], axis=0),
        helper.make_node("Reshape", ["dy_xh", "rows_c"], ["flat"]),
        _const("zero_axis", [0], np.int64),
        helper.make_node("ReduceSum", ["flat", "zero_axis"], ["dScale"], keepdims=0),
    ]
    return helper.make_function(DOMAIN, "LayerNormGrad", ["dY", "X", "Scale"], ["dX", "dScale"], nodes,
                                [helper.make_opsetid("", opset)], attributes=["epsilon"])


def _ref_const(name: str, attr: str) -> object:
    """A Constant whose float value is the function's attribute `attr`."""
    node = helper.make_node("Constant", [], [name])
    node.attribute.append(AttributeProto(name="value_float", ref_attr_name=attr, type=AttributeProto.FLOAT))
    return node


def _hardsigmoid_grad(opset: int) -> FunctionProto:
    nodes = [
        _ref_const("alpha", "alpha"), _ref_const("beta", "beta"), _const("zero", 0.0), _const("one", 1.0),
        helper.make_node("Mul", ["X", "alpha"], ["ax"]),
        helper.make_node("Add", ["ax", "beta"], ["z"]),
        helper.make_node("Greater", ["z", "zero"], ["above"]),
        helper.make_node("Less", ["z", "one"], ["below"]),
        helper.make_node("And", ["above", "below"], ["active"]),
        helper.make_node("Mul", ["dY", "alpha"], ["scaled"]),
        helper.make_node("Where", ["active", "scaled", "zero"], ["dX"]),
    ]
    return helper.make_function(DOMAIN, "HardSigmoidGrad", ["dY", "X"], ["dX"], nodes,
                                [helper.make_opsetid("", opset)], attributes=["alpha", "beta"])


def _hardswish_grad(opset: int) -> FunctionProto:
    """d/dx x * clip(x / 6 + 1/2, 0, 1) = 0 below -3, x / 3 + 1/2 between, 1 above 3."""
    nodes = [
        _const("zero", 0.0), _const("one", 1.0), _const("three", 3.0), _const("mthree", -3.0),
        _const("half", 0.5),
        helper.make_node("Div", ["X", "three"], ["x3"]),
        helper.make_node("Add", ["x3", "half"], ["inner"]),
        helper.make_node("Less", ["X", "three"], ["below"]),
        helper.make_node("Where", ["below", "inner", "one"], ["slope"]),
        helper.make_node("Greater", ["X", "mthree"], ["above"]),
        helper.make_node("Mul", ["dY", "slope"], ["g"]),
        helper.make_node("Where", ["above", "g", "zero"], ["dX"]),
    ]
    return helper.make_function(DOMAIN, "HardSwishGrad", ["dY", "X"], ["dX"], nodes,
                                [helper.make_opsetid("", opset)])


def all_functions(opset: int) -> dict[str, FunctionProto]:
    """Every `ai.hawkeye` function over the model's default-domain `opset`, by op name (the expander adds
    those it used to the model)."""
    made = (_relu_grad(opset), _maxpool_grad(opset), _cross_entropy(opset), _cross_entropy_grad(opset),
            _rsqrt(opset), _softmax_quotient_grad(opset), _layernorm_grad(opset), _hardsigmoid_grad(opset),
            _hardswish_grad(opset))
    return {f.name: f for f in made}
