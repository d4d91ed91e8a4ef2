"""Shape variables of the `ai.hawkeye` training ops, registered in the core opvars registry.

Imported by the package root so that rule files can use them when they load.
"""

from __future__ import annotations

import math

from hawkeye_onnx.ir import Graph, Node
from hawkeye_onnx.opvars import REGISTRY, _shape, register

DOMAIN = "ai.hawkeye"


@register((f"{DOMAIN}::SoftmaxCrossEntropy", f"{DOMAIN}::SoftmaxCrossEntropyGrad"), ["rows", "c", "batch"])
def _cross_entropy(node: Node, graph: Graph) -> list[int]:
    """Logits (input 0 of the loss, input 1 of its gradient): softmax over the last axis."""
    logits = node.inputs[0] if node.op_type == "SoftmaxCrossEntropy" else node.inputs[1]
    x = _shape(graph, logits, node)
    c = x[-1] if x else 1
    return [math.prod(x) // max(c, 1), c, x[0] if x else 1]


@register(f"{DOMAIN}::SoftmaxQuotientGrad", ["rows", "c"])
def _softmax_grad(node: Node, graph: Graph) -> list[int]:
    """Rows of the softmax (its last axis) from Y (input 1)."""
    y = _shape(graph, node.inputs[1], node)
    c = y[-1] if y else 1
    return [math.prod(y) // max(c, 1), c]


@register(f"{DOMAIN}::LayerNormGrad", ["rows", "c"])
def _layernorm_grad(node: Node, graph: Graph) -> list[int]:
    """Rows normalised over the last axis of X (input 1)."""
    x = _shape(graph, node.inputs[1], node)
    c = x[-1] if x else 1
    return [math.prod(x) // max(c, 1), c]


@register(f"{DOMAIN}::MaxPoolGrad", ["k", "tiles"])
def _maxpool_grad(node: Node, graph: Graph) -> list[int]:
    """`tiles`: the windows cover the padded input exactly ((size + pads - k) % stride == 0 on every axis)."""
    kernel = list(node.attrs.get("kernel_shape", (1,)))
    x = _shape(graph, node.inputs[1], node)
    nsp = len(kernel)
    strides = list(node.attrs.get("strides", (1,) * nsp))
    pads = list(node.attrs.get("pads", (0,) * 2 * nsp))
    tiles = all((x[2 + i] + pads[i] + pads[nsp + i] - kernel[i]) % strides[i] == 0 for i in range(nsp))
    return [math.prod(kernel), int(tiles)]


def _alias_backward() -> None:
    """`backward::<Op>` / `train::<Op>` rules (an op inside a framework's autograd, a forward op in training
    mode) see the variables of `<Op>`."""
    for key, spec in list(REGISTRY.items()):
        if "::" not in key or key.startswith(DOMAIN):
            REGISTRY[f"backward::{key}"] = spec
            REGISTRY[f"train::{key}"] = spec


_alias_backward()
