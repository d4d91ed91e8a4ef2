"""CrypTFlow2 (SCI) static profile vs the published numbers.

Builds SCI's own networks (the calls of `mpc-msri/EzPC SCI/networks/main_*.cpp`, the networks the CrypTFlow2
paper measured, extracted to validation/cryptflow2/sci_networks.json by extract_sci_calls.py) as ONNX
replicas and the zoo architectures the HawkEye paper used, prices them with rules/cryptflow2.toml and prints
the tables of docs/backends/cryptflow2.md.
Run: `PYTHONPATH=. python validation/cryptflow2/compare.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

import hawkeye_onnx

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = ROOT / "validation" / "cryptflow2" / "sci_networks.json"
OPENCHEETAH_NETWORKS = ROOT / "validation" / "cheetah" / "opencheetah_networks.json"

#: CrypTFlow2 paper (Rathee et al., CCS 2020), Table "performance on ImageNet-scale benchmarks": end-to-end
#: communication in GiB, (SCI_OT, SCI_HE). Quoted from the paper as the authors of this file read it; the
#: corpora hold only the paper's opening, so the table could not be re-read. The Cheetah abstract (ePrint
#: 2022/207: ResNet-50 "2.3 gigabytes", "12.9x" less than CrypTFlow2, i.e. ~29.7 GiB) corroborates the SCI_HE
#: ResNet-50 order of magnitude only (docs/backends/cryptflow2.md).
PUBLISHED_GIB = {"sqnet": (26.07, 5.27), "resnet50": (370.84, 32.02), "densenet121": (217.19, 35.56)}
#: SCI's bitlength per network (SCI/networks/main_*.cpp `int32_t bitlength`).
BITLENGTH = {"resnet50": 37, "densenet121": 32, "sqnet": 32}
#: HawkEye paper, Scripts/CrypTFlow2_round_res.py: rounds measured on CrypTFlow2 per class (conv, other
#: linear, non-linear) with ell = 60 (../shared/reference/hawkeye-profiles.md section 3.3).
HAWKEYE_ROUNDS = {
    "resnet50": (7155, 582, 438),
    "densenet121": (10317, 1340, 720),
    "mobilenet_v3_large": (12131, 2252, 612),
    "shufflenet_v2_x1_0": (6827, 608, 270),
}
#: The ops of each HawkEye class.
CLASSES = {
    "conv": ("Conv",),
    "other": ("BatchNormalization", "Gemm", "MatMul", "GlobalAveragePool", "AveragePool", "ReduceMean", "Mul"),
    "nonlin": ("Relu", "MaxPool"),
}


def replica(calls: list[list[int]]) -> onnx.ModelProto:
    """A network's call list as independent ONNX nodes with the calls' shapes: Conv2DWrapper / FusedBN -> Conv,
    FusedBatchNorm4411 -> BatchNormalization (+ a ScaleDown when its multExprScaleDownSf > 0), Relu4 -> Relu
    (its fused truncation is the `relu_trunc_known_msb` parameter), ScaleDown4 -> Mul by a public constant
    (a ScaleDown), MaxPool / AvgPool, MatMul2D -> Gemm by the model's matrix. Additions, ScaleUp and Concat are
    local. Reads both SCI's rows (with sf arguments) and OpenCheetah's (without)."""
    nodes, inputs, outputs = [], [], []

    def inp(name, shape):
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def scaledown(i, x, y, name):
        nodes.append(helper.make_node("Constant", [], [f"c{i}"], name=f"const_{i}",
                                      value=helper.make_tensor(f"cv{i}", TensorProto.FLOAT, [], [0.5])))
        return helper.make_node("Mul", [x, f"c{i}"], [y], name=name)

    for i, (fn, *a) in enumerate(calls):
        x, y = f"x{i}", f"y{i}"
        if fn in ("Conv2DWrapper", "FusedBN"):
            n, h, w, ci, fh, fw, co, phl, phr, pwl, pwr, sh, sw = a[:13]
            node = helper.make_node("Conv", [inp(x, [n, ci, h, w]), inp(f"w{i}", [co, ci, fh, fw])], [y],
                                    name=f"{fn}_{i}", kernel_shape=[fh, fw], pads=[phl, pwl, phr, pwr],
                                    strides=[sh, sw])
        elif fn == "FusedBatchNorm4411":
            n, h, w, c = a[:4]
            bn_out = f"b{i}" if len(a) > 4 and a[4] > 0 else y
            node = helper.make_node("BatchNormalization", [inp(x, [n, c, h, w]),
                                                           *(inp(f"{p}{i}", [c]) for p in "sbmv")], [bn_out],
                                    name=f"{fn}_{i}")
            if bn_out != y:
                nodes.append(node)
                node = scaledown(i, bn_out, y, f"{fn}_{i}_scaledown")
        elif fn == "Relu4":
            n, h, w, c = a[:4]
            node = helper.make_node("Relu", [inp(x, [n, c, h, w])], [y], name=f"{fn}_{i}")
        elif fn == "ScaleDown4":
            n, h, w, c = a[:4]
            node = scaledown(i, inp(x, [n, c, h, w]), y, f"{fn}_{i}")
        elif fn in ("MaxPool", "AvgPool"):
            n, h, w, c, kh, kw, phl, phr, pwl, pwr, sh, sw, _, ih, iw, _ = a[:16]
            node = helper.make_node("MaxPool" if fn == "MaxPool" else "AveragePool", [inp(x, [n, c, ih, iw])], [y],
                                    name=f"{fn}_{i}", kernel_shape=[kh, kw], pads=[phl, pwl, phr, pwr],
                                    strides=[sh, sw])
        elif fn == "MatMul2D":
            d0, d1, d2 = a[:3]
            node = helper.make_node("Gemm", [inp(x, [d0, d1]), inp(f"w{i}", [d1, d2])], [y], name=f"{fn}_{i}")
        else:
            continue
        nodes.append(node)
        outputs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "sci", inputs, outputs)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def networks() -> dict[str, list]:
    """SCI's own networks (the CrypTFlow2 paper's)."""
    return json.loads(NETWORKS.read_text())["networks"]


def opencheetah_networks() -> dict[str, list]:
    """OpenCheetah's hand-edited copies (the Cheetah paper's)."""
    return json.loads(OPENCHEETAH_NETWORKS.read_text())["networks"]


def scale(name: str) -> int:
    """The network's fixed-point scale: the sf of its ScaleDown4 / Relu4 calls (12 ResNet-50, 11 DenseNet-121,
    9 SqueezeNet), all equal within a network."""
    sfs = {c[5] for c in networks()[name] if c[0] == "Relu4"} | {c[5] for c in networks()[name] if c[0] == "ScaleDown4"}
    assert len(sfs) == 1, sfs
    return sfs.pop()


def paper_params(name: str, linear: int) -> dict[str, int]:
    """The CrypTFlow2 paper's setting: SCI's bitlength and the network's scale, 4 threads, the 2020
    linear-layer code (MatMulUniform, matmul_mode 0), truncations as the network makes them (explicit
    ScaleDowns, trunc_after_linear 0; every Relu4 truncates with doTruncation = 1: relu_trunc_known_msb 1)."""
    return {"ring_bits": BITLENGTH[name], "frac_bits": scale(name), "threads": 4, "matmul_mode": 0,
            "trunc_after_linear": 0, "relu_trunc_known_msb": 1, "linear": linear}


def replica_cost(name: str, linear: int):
    model = replica(networks()[name])
    return hawkeye_onnx.profile(model, backends=["cryptflow2"],
                                params={"cryptflow2": paper_params(name, linear)}).backends["cryptflow2"]


#: HawkEye's measurement setup as far as its numbers and code tell: ell = 60, f = 23 (Compiler/cost_config.py,
#: Programs/Source/*.mpc sfix.set_precision(23, 59)); MatMul2D on one thread (the only setting in which all
#: four measured conv counts agree); BatchNorm truncated with the MSB known (functional.py batch_norm).
HAWKEYE_SETUP = {"ring_bits": 60, "frac_bits": 23, "threads": 1, "bn_trunc_known_msb": 1}
#: ReLUs and 3x3 MaxPools of the networks HawkEye ran (wqruan/HawkEye Programs/Source/autograd_resnet.mpc:
#: stem + 16 Bottlenecks x 4 ReLUs; autograd_densenet.mpc: stem + 58 x 2 + 3 transitions, AvgPool stem;
#: ShuffleNetV2 x1.0: 37), which differ from torchvision's (hawkeye_onnx.zoo: ResNet-50 49 ReLUs,
#: DenseNet-121 121 ReLUs + MaxPool).
HAWKEYE_NONLINEAR = {"resnet50": (65, 1), "densenet121": (120, 0), "shufflenet_v2_x1_0": (37, 1)}


def class_rounds(name: str, **params) -> dict[str, int]:
    """Rounds per HawkEye class of zoo model `name` with HawkEye's ell = 60, f = 23 (BatchNorm kept); other
    parameters (threads, bn_trunc_known_msb) as given, else the rule file's defaults."""
    ops = _op_rounds(name, **{"ring_bits": 60, "frac_bits": 23, **params})
    return {cls: sum(ops.get(op, 0) for op in members) for cls, members in CLASSES.items()}


def _op_rounds(name: str, **params) -> dict[str, int]:
    from hawkeye_onnx import zoo
    b = hawkeye_onnx.profile(zoo.build(name, fold_bn=False), backends=["cryptflow2"],
                             params={"cryptflow2": params}).backends["cryptflow2"]
    return {k: v.totals.online.rounds for k, v in b.ops.items()}


def bn_product_rounds(name: str, **params) -> int:
    """Rounds of the BatchNorm products alone (ElemWiseActModelVectorMult's OT batches, no ScaleDown)."""
    return _op_rounds(name, **{**HAWKEYE_SETUP, **params, "trunc_after_linear": 0}).get("BatchNormalization", 0)


def nonlinear_rounds(relus: int, maxpools: int) -> int:
    """Rounds of `relus` ReLUs and `maxpools` 3x3 MaxPools (independent of the tensor sizes)."""
    nodes, inputs, outputs = [], [], []
    for i in range(relus + maxpools):
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [1, 8, 16, 16]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None))
        if i < relus:
            nodes.append(helper.make_node("Relu", [f"x{i}"], [f"y{i}"], name=f"relu{i}"))
        else:
            nodes.append(helper.make_node("MaxPool", [f"x{i}"], [f"y{i}"], name=f"pool{i}", kernel_shape=[3, 3],
                                          strides=[2, 2], pads=[1, 1, 1, 1]))
    model = onnx.shape_inference.infer_shapes(helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                                                                opset_imports=[helper.make_opsetid("", 17)]))
    params = {"ring_bits": 60, "frac_bits": 23}
    return hawkeye_onnx.profile(model, backends=["cryptflow2"],
                                params={"cryptflow2": params}).backends["cryptflow2"].total.online.rounds


def _pct(got: float, want: float) -> str:
    return f"{got} / {want} ({100 * (got / want - 1):+.0f}%)"


def main() -> None:
    print("| model | variant | ours GiB | paper GiB | diff | ours rounds |")
    print("|---|---|---:|---:|---:|---:|")
    for name, pub in PUBLISHED_GIB.items():
        for linear, label in ((0, "SCI_OT"), (1, "SCI_HE")):
            b = replica_cost(name, linear)
            gib = b.total.online.bytes / 2**30
            print(f"| {name} | {label} | {gib:.2f} | {pub[linear]} | {100 * (gib / pub[linear] - 1):+.1f}% | "
                  f"{b.total.online.rounds} |")
    print()
    print("| model | conv, 1 thread | conv, 4 threads | other linear | other linear w/o BN product "
          "| non-linear (zoo) | non-linear (HawkEye's network) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (conv, other, nonlin) in HAWKEYE_ROUNDS.items():
        one = class_rounds(name, **HAWKEYE_SETUP)
        four = class_rounds(name, **{**HAWKEYE_SETUP, "threads": 4})
        bn = bn_product_rounds(name)
        hk = HAWKEYE_NONLINEAR.get(name)
        hk_cell = _pct(nonlinear_rounds(*hk), nonlin) if hk else "—"
        print(f"| {name} | {_pct(one['conv'], conv)} | {_pct(four['conv'], conv)} | {_pct(one['other'], other)} | "
              f"{_pct(one['other'] - bn, other)} | {_pct(one['nonlin'], nonlin)} | {hk_cell} |")


if __name__ == "__main__":
    main()
