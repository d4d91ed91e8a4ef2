"""Single-operator ONNX micro-models for measuring the real frameworks op by op.

Each case is one ONNX op (or the decomposed form an exporter emits) on small tensors, so that a
framework's measured communication for the case is the cost of exactly that op. Conventions, shared
with the profiler's defaults: graph inputs are secret data; float initializers are weights (secret);
`Constant` nodes are public. Opset 17, float32.

    python validation/opzoo.py OUTDIR   # writes OUTDIR/<case>.onnx and OUTDIR/index.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
_RNG = np.random.default_rng(0)


@dataclass(frozen=True)
class Case:
    """One micro-model: its name, the model, and the shapes of its secret data inputs."""

    name: str
    model: onnx.ModelProto
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)


def weight(name: str, shape: tuple[int, ...], positive: bool = False) -> TensorProto:
    data = _RNG.standard_normal(shape).astype(np.float32) * 0.5
    if positive:
        data = np.abs(data) + 0.5
    return numpy_helper.from_array(data, name)


def const(name: str, value: float | list[float] | np.ndarray, dtype=np.float32) -> onnx.NodeProto:
    arr = np.asarray(value, dtype=dtype)
    return helper.make_node("Constant", [], [name], name=f"/{name}/Constant",
                            value=numpy_helper.from_array(arr, name))


def model(name: str, nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]],
           inits: list[TensorProto] | None = None, outputs: tuple[str, ...] = ("out",),
           out_type: int = TensorProto.FLOAT) -> Case:
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(o, out_type, None) for o in outputs],
        initializer=inits or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="hawkeye-onnx-opzoo")
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return Case(name, model, dict(inputs))


def unary(op: str, shape: tuple[int, ...], **attrs) -> Case:
    node = helper.make_node(op, ["x"], ["out"], name=f"/{op.lower()}/{op}", **attrs)
    suffix = "x".join(map(str, shape))
    return model(f"{op.lower()}_{suffix}", [node], {"x": shape})


def binary_ss(op: str, xs: tuple[int, ...], ys: tuple[int, ...]) -> Case:
    node = helper.make_node(op, ["x", "y"], ["out"], name=f"/{op.lower()}/{op}")
    tag = "x".join(map(str, xs)) + "_" + "x".join(map(str, ys))
    return model(f"{op.lower()}_ss_{tag}", [node], {"x": xs, "y": ys})


def binary_const(op: str, shape: tuple[int, ...], value: float, tag: str | None = None) -> Case:
    nodes = [const("c", value), helper.make_node(op, ["x", "c"], ["out"], name=f"/{op.lower()}/{op}")]
    return model(f"{tag or op.lower() + '_const'}_{'x'.join(map(str, shape))}", nodes, {"x": shape})


def conv(name: str, x: tuple[int, ...], w: tuple[int, ...], bias: bool = True, **attrs) -> Case:
    inits = [weight("W", w)] + ([weight("B", (w[0],))] if bias else [])
    node = helper.make_node("Conv", ["x", "W"] + (["B"] if bias else []), ["out"],
                            name=f"/{name}/Conv", **attrs)
    return model(name, [node], {"x": x}, inits)


def pool(name: str, op: str, x: tuple[int, ...], **attrs) -> Case:
    node = helper.make_node(op, ["x"], ["out"], name=f"/{name}/{op}", **attrs)
    return model(name, [node], {"x": x})


def cases() -> list[Case]:
    """All micro-models, in a stable order."""
    out: list[Case] = []
    # Linear algebra.
    out.append(binary_ss("MatMul", (4, 8), (8, 5)))
    out.append(binary_ss("MatMul", (2, 4, 8), (2, 8, 5)))
    out.append(model("matmul_weight_4x8", [helper.make_node("MatMul", ["x", "W"], ["out"],
                                                             name="/fc/MatMul")],
                      {"x": (4, 8)}, [weight("W", (8, 5))]))
    for b in (1, 3):
        out.append(model(f"gemm_{b}x16_to_10",
                          [helper.make_node("Gemm", ["x", "W", "B"], ["out"], name="/fc/Gemm",
                                            transB=1)],
                          {"x": (b, 16)}, [weight("W", (10, 16)), weight("B", (10,))]))
    out.append(conv("conv_3x3_s1_p1", (1, 3, 8, 8), (4, 3, 3, 3), pads=[1, 1, 1, 1]))
    out.append(conv("conv_3x3_s2_p0", (1, 3, 9, 9), (4, 3, 3, 3), strides=[2, 2]))
    out.append(conv("conv_1x1_b2", (2, 8, 6, 6), (16, 8, 1, 1), bias=False))
    out.append(conv("conv_3x3_dil2", (1, 2, 9, 9), (3, 2, 3, 3), dilations=[2, 2]))
    out.append(conv("conv_groups2", (1, 4, 6, 6), (6, 2, 3, 3), group=2))
    out.append(conv("conv_depthwise", (1, 4, 6, 6), (4, 1, 3, 3), group=4, pads=[1, 1, 1, 1]))
    # Element-wise arithmetic.
    out.append(binary_ss("Add", (2, 10), (2, 10)))
    out.append(binary_ss("Sub", (2, 10), (2, 10)))
    out.append(model("add_bias_2x10", [helper.make_node("Add", ["x", "B"], ["out"], name="/b/Add")],
                      {"x": (2, 10)}, [weight("B", (10,))]))
    out.append(binary_ss("Mul", (2, 10), (2, 10)))
    out.append(binary_ss("Mul", (3, 7), (3, 7)))
    out.append(binary_ss("Mul", (2, 3, 4), (4,)))
    out.append(binary_const("Mul", (2, 10), 0.5))
    out.append(binary_const("Div", (2, 10), 3.0))
    out.append(binary_ss("Div", (2, 10), (2, 10)))
    out.append(model("mul_weight_2x10", [helper.make_node("Mul", ["x", "W"], ["out"], name="/s/Mul")],
                      {"x": (2, 10)}, [weight("W", (10,))]))
    # Non-linear.
    out.append(unary("Relu", (2, 50)))
    out.append(unary("Relu", (3, 7)))
    for op in ("Sigmoid", "Tanh", "Exp", "Erf", "Reciprocal", "Sqrt"):
        out.append(unary(op, (2, 10)))
    out.append(unary("Sigmoid", (3, 7)))
    out.append(unary("Exp", (3, 7)))
    out.append(binary_const("Pow", (2, 10), 2.0, tag="pow2"))
    out.append(binary_const("Pow", (2, 10), 3.0, tag="pow3"))
    out.append(unary("Softmax", (2, 10), axis=-1))
    out.append(unary("Softmax", (3, 7), axis=-1))
    out.append(unary("ReduceMean", (2, 10), axes=[-1], keepdims=1))
    out.append(model("reducesum_2x10", [const("axes", [-1], np.int64),
                                         helper.make_node("ReduceSum", ["x", "axes"], ["out"],
                                                          name="/r/ReduceSum", keepdims=1)],
                      {"x": (2, 10)}))
    # Pooling and normalisation.
    out.append(pool("maxpool_2x2", "MaxPool", (1, 2, 8, 8), kernel_shape=[2, 2], strides=[2, 2]))
    out.append(pool("maxpool_3x3_s2_p1", "MaxPool", (1, 2, 9, 9), kernel_shape=[3, 3],
                     strides=[2, 2], pads=[1, 1, 1, 1]))
    out.append(pool("maxpool_3x3_s1", "MaxPool", (1, 1, 6, 6), kernel_shape=[3, 3]))
    out.append(pool("avgpool_2x2", "AveragePool", (1, 2, 8, 8), kernel_shape=[2, 2], strides=[2, 2]))
    out.append(pool("globalavgpool", "GlobalAveragePool", (1, 3, 4, 4)))
    out.append(model("batchnorm_1x3x4x4",
                      [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["out"],
                                        name="/bn/BatchNormalization", epsilon=1e-5)],
                      {"x": (1, 3, 4, 4)},
                      [weight("s", (3,)), weight("b", (3,)), weight("m", (3,)),
                       weight("v", (3,), positive=True)]))
    out.append(model("layernorm_2x4x8",
                      [helper.make_node("LayerNormalization", ["x", "g", "b"], ["out"],
                                        name="/ln/LayerNormalization", axis=-1, epsilon=1e-5)],
                      {"x": (2, 4, 8)}, [weight("g", (8,)), weight("b", (8,))]))
    out.append(model("gelu_erf_2x10", [
        const("sqrt2", 1.4142135), const("one", 1.0), const("half", 0.5),
        helper.make_node("Div", ["x", "sqrt2"], ["d"], name="/gelu/Div"),
        helper.make_node("Erf", ["d"], ["e"], name="/gelu/Erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="/gelu/Add"),
        helper.make_node("Mul", ["x", "a"], ["m"], name="/gelu/Mul"),
        helper.make_node("Mul", ["m", "half"], ["out"], name="/gelu/Mul_1"),
    ], {"x": (2, 10)}))
    # Added after the first CrypTen run (validation/crypten/NOTES.md): more window sizes and ops.
    out.append(pool("maxpool_4x4", "MaxPool", (1, 1, 8, 8), kernel_shape=[4, 4], strides=[4, 4]))
    out.append(pool("maxpool_5x5", "MaxPool", (1, 1, 10, 10), kernel_shape=[5, 5], strides=[5, 5]))
    out.append(unary("Softmax", (1, 64), axis=-1))
    out.append(unary("LogSoftmax", (2, 10), axis=-1))
    out.append(model("clip_relu6_2x10", [const("lo", 0.0), const("hi", 6.0),
                                         helper.make_node("Clip", ["x", "lo", "hi"], ["out"], name="/act/Clip")],
                     {"x": (2, 10)}))
    out.append(model("where_eq_2x10", [
        helper.make_node("Equal", ["x", "y"], ["e"], name="/w/Equal"),
        helper.make_node("Where", ["e", "x", "y"], ["out"], name="/w/Where"),
    ], {"x": (2, 10), "y": (2, 10)}))
    # Free plumbing: costs nothing anywhere.
    out.append(model("plumbing_2x3x4", [
        const("shape", [6, 4], np.int64),
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="/p/Reshape"),
        helper.make_node("Transpose", ["r"], ["t"], name="/p/Transpose", perm=[1, 0]),
        helper.make_node("Flatten", ["t"], ["f"], name="/p/Flatten", axis=1),
        helper.make_node("Concat", ["f", "f"], ["out"], name="/p/Concat", axis=0),
    ], {"x": (2, 3, 4)}))
    # Added for the semi2k rule gaps (tests/test_exporters.py EXPECTED_UNSUPPORTED): ArgMax (a classifier's
    # last op), HardSigmoid / HardSwish (MobileNetV3); torch exports HardSigmoid with alpha = 1/6.
    for shape, axis in (((2, 10), -1), ((3, 7), -1), ((1, 64), -1), ((1, 1000), 1), ((4, 5, 3), 1)):
        tag = "x".join(map(str, shape))
        out.append(model(f"argmax_{tag}_a{axis % len(shape)}",
                         [helper.make_node("ArgMax", ["x"], ["out"], name="/head/ArgMax", axis=axis, keepdims=1)],
                         {"x": shape}, out_type=TensorProto.INT64))
    for shape in ((2, 10), (3, 7), (1, 64)):
        out.append(unary("HardSigmoid", shape, alpha=1.0 / 6.0, beta=0.5))
        out.append(unary("HardSwish", shape))
    out.append(model("head_gemm_hardswish_argmax", [
        helper.make_node("Gemm", ["x", "W", "B"], ["g"], name="/fc/Gemm", transB=1),
        helper.make_node("HardSwish", ["g"], ["h"], name="/act/HardSwish"),
        helper.make_node("ArgMax", ["h"], ["out"], name="/head/ArgMax", axis=1, keepdims=0),
    ], {"x": (2, 16)}, [weight("W", (12, 16)), weight("B", (12,))], out_type=TensorProto.INT64))
    out.append(model("hardsigmoid_default_2x10", [helper.make_node("HardSigmoid", ["x"], ["out"],
                                                                   name="/act/HardSigmoid")], {"x": (2, 10)}))
    # A classifier head at batch 1 (models/keras_cnn_tf2onnx.onnx): SPU reduces the row max over dim 0 once
    # XLA strips the unit dims of a dot's output, and then keeps the reduce's -inf init (one more compare).
    # The batch-2 head and the Relu-fed softmax are the controls (init dropped).
    for b in (1, 2):
        out.append(model(f"softmax_after_matmul_{b}x64x10", [
            helper.make_node("MatMul", ["x", "W"], ["t"], name="/fc/MatMul"),
            helper.make_node("Softmax", ["t"], ["out"], name="/head/Softmax", axis=-1),
        ], {"x": (b, 64)}, [weight("W", (64, 10))]))
    out.append(model("softmax_after_gemm_relu_1x16x8", [
        helper.make_node("Gemm", ["x", "W", "B"], ["g"], name="/fc/Gemm", transB=1),
        helper.make_node("Relu", ["g"], ["r"], name="/fc/Relu"),
        helper.make_node("Softmax", ["r"], ["out"], name="/head/Softmax", axis=-1),
    ], {"x": (1, 16)}, [weight("W", (8, 16)), weight("B", (8,))]))
    out.append(model("logsoftmax_after_matmul_1x64x10", [
        helper.make_node("MatMul", ["x", "W"], ["t"], name="/fc/MatMul"),
        helper.make_node("LogSoftmax", ["t"], ["out"], name="/head/LogSoftmax", axis=-1),
    ], {"x": (1, 64)}, [weight("W", (64, 10))]))
    out.append(model("softmax_axis0_10x3", [helper.make_node("Softmax", ["x"], ["out"], name="/head/Softmax",
                                                             axis=0)], {"x": (10, 3)}))
    out.append(model("softmax_after_relu_1x10", [
        helper.make_node("Relu", ["x"], ["r"], name="/act/Relu"),
        helper.make_node("Softmax", ["r"], ["out"], name="/head/Softmax", axis=-1),
    ], {"x": (1, 10)}))
    # Reductions over a dim of size 1: CrypTen's softmax / log_softmax return ones / zeros at once
    # (approximations.py), its pairwise max compares a row of one with itself (maximum.py, row_length 2).
    out.append(model("softmax_dim1_3x1", [helper.make_node("Softmax", ["x"], ["out"], name="/head/Softmax",
                                                           axis=-1)], {"x": (3, 1)}))
    out.append(model("logsoftmax_dim1_3x1", [helper.make_node("LogSoftmax", ["x"], ["out"],
                                                              name="/head/LogSoftmax", axis=-1)], {"x": (3, 1)}))
    out.append(pool("maxpool_1x1_1x2x3x3", "MaxPool", (1, 2, 3, 3), kernel_shape=[1, 1]))
    # One tensor in two input slots: x * x as torch exports it. SPU runs it (MulAA); CrypTen's nn.Graph never
    # runs such a node (rules/crypten.toml [backend] repeated_input).
    out.append(model("repeated_mul_xx_2x10", [helper.make_node("Mul", ["x", "x"], ["out"], name="/sq/Mul")],
                     {"x": (2, 10)}))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python validation/opzoo.py OUTDIR", file=sys.stderr)
        return 2
    outdir = Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    index = []
    for case in cases():
        onnx.save(case.model, outdir / f"{case.name}.onnx")
        index.append({"name": case.name, "file": f"{case.name}.onnx",
                      "inputs": {k: list(v) for k, v in case.inputs.items()}})
    (outdir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"{len(index)} cases written to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
