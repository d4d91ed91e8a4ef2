"""Training step: expander (checker, shapes, gradients), phase costs against the real frameworks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import GROUND_TRUTH, MODELS, ROOT, ground_truth_cases
from onnx import TensorProto, helper, numpy_helper

from hawkeye_onnx.errors import ModelError, ParamError
from hawkeye_onnx.load import load
from hawkeye_onnx.training import TrainOptions, profile_train
from hawkeye_onnx.training.expand import check, expand, missing_shapes

CASES = ground_truth_cases("training")
_LOSS = {"cross_entropy": "cross-entropy", "mse": "mse"}


def _phases(case: dict) -> dict:
    """Our phases of one measured case, in the case's own phase keys (SPU measures loss+backward)."""
    shape = tuple(case.get("input_shape") or case["inputs"]["input"])
    model = GROUND_TRUTH / case["model"] if "input_shape" in case else ROOT / case["model"]
    opts = TrainOptions(loss=_LOSS[case["loss"]], optimizer=case["optimizer"], lr=case.get("lr", 0.01),
                        momentum=case.get("momentum", 0.9) or 0.9)
    p = profile_train(model, opts, backends=[case["framework"]], input_shapes={"input": shape},
                      params={case["framework"]: {"parties": case["parties"]}})
    rep = p.backends[case["framework"]]
    assert all(u.op_type.endswith("(backward)") for u in rep.unsupported)  # only autograd cuts (resnet, CrypTen)
    ours = {k: (t.online.bytes, t.online.rounds) for k, t in rep.phases.items()}
    ours["loss+backward"] = tuple(a + b for a, b in zip(ours["loss"], ours["backward"], strict=True))
    ours["total"] = (rep.total.online.bytes, rep.total.online.rounds)
    return ours


@pytest.mark.parametrize("case", CASES, ids=[f"{c['framework']}-{c['model']}-{c['optimizer']}" for c in CASES])
def test_training_ground_truth_exact(case: dict) -> None:
    """shared/ground-truth/vectors.json, mode training (real CrypTen 0.4.1 and SPU 0.9.5): every phase."""
    ours = _phases(case)
    for name, want in case["phases"].items():
        assert ours[name] == (want["bytes"], want["rounds"]), name
    assert ours["total"] == (case["bytes"], case["rounds"])


def test_training_vectors_present() -> None:
    assert {c["framework"] for c in CASES} >= {"crypten", "semi2k"}


def _measured(name: str) -> list[dict]:
    return json.loads((ROOT / "validation" / "measured" / "training" / name).read_text())["cases"]


MEASURED = _measured("crypten.json") + _measured("semi2k.json")


def _case_id(c: dict) -> str:
    batch = c["inputs"]["input"][0]
    return f"{c['framework']}-{c['model'][7:-5]}-p{c['parties']}-b{batch}-{c['loss']}-{c['optimizer']}"


#: measured cases whose record still carries a `known_gap` that the expander now models, with what is left
#: (relative bytes, rounds) per phase. transformer_block (SPU): softmax and LayerNorm backward follow XLA's
#: graph (pphlo dump of the grad program: softmax as u / sum, rsqrt differentiated with a division per row);
#: left: loss+backward 256 B and 1 round short of 1,688,456 B / 256 (XLA folds the MSE scale 2/size into the
#: last LayerNorm's scale, 32 elements, where the expander scales the loss gradient; not decomposed further).
RESIDUAL = {"semi2k-transformer_block-p2-b1-mse-sgd": (0.0002, 1)}


@pytest.mark.parametrize("case", MEASURED, ids=[_case_id(c) for c in MEASURED])
def test_training_measured(case: dict) -> None:
    """Our own runs of the real frameworks (validation/*/measure_train.py): CrypTen exact; SPU exact except
    Adam's update (XLA folds one public product per element: within 1% bytes, 5% rounds). A record with a
    `known_gap` documents a difference not modelled yet (reported as xfail with its explanation)."""
    residual = RESIDUAL.get(_case_id(case))
    if residual:
        ours = _phases(case)
        for name, want in case["phases"].items():
            got = ours[name]
            assert abs(got[0] - want["bytes"]) <= residual[0] * want["bytes"], (name, got, want)
            assert abs(got[1] - want["rounds"]) <= residual[1], (name, got, want)
        return
    if case.get("known_gap"):
        pytest.xfail(case["known_gap"])
    ours = _phases(case)
    for name, want in case["phases"].items():
        got = ours[name]
        tol = case.get("tolerance")
        if tol:
            assert abs(got[0] - want["bytes"]) <= tol["bytes"] * want["bytes"] and got[1] == want["rounds"], name
        elif case["framework"] == "semi2k" and case["optimizer"] == "adam" and name == "update":
            assert abs(got[0] - want["bytes"]) <= 0.01 * want["bytes"]
            assert abs(got[1] - want["rounds"]) <= 0.05 * want["rounds"]
        else:
            assert got == (want["bytes"], want["rounds"]), name


#: scikit-learn exports: coefficients live in ai.onnx.ml attributes (logreg: no weight to train) and the
#: outputs are labels/ZipMap maps, so there is no differentiable graph to expand; the expander must say so.
NOT_TRAINABLE = {"sklearn_logreg", "sklearn_mlp"}
#: one output (a sigmoid probability): softmax cross-entropy is constant there, the expander asks for MSE
ONE_CLASS = {"logreg_sigmoid"}


def test_cross_entropy_over_one_class_is_refused() -> None:
    with pytest.raises(ParamError, match="--loss mse"):
        expand(load(MODELS / "logreg_sigmoid.onnx", batch=2).model, TrainOptions())


@pytest.mark.parametrize("path", sorted(p for p in MODELS.glob("*.onnx") if p.stem in NOT_TRAINABLE),
                         ids=lambda p: p.stem)
def test_untrainable_models_get_a_clean_error(path) -> None:
    loaded = load(path, batch=2)
    with pytest.raises(ModelError):
        expand(loaded.model, TrainOptions())


@pytest.mark.parametrize("path", sorted(p for p in MODELS.glob("*.onnx") if p.stem not in NOT_TRAINABLE),
                         ids=lambda p: p.stem)
def test_every_model_expands_to_a_valid_graph(path) -> None:
    """check_model(full_check=True) passes and shape inference gives every tensor a static shape."""
    loaded = load(path, batch=2)
    loss = "mse" if path.stem in ONE_CLASS else "cross-entropy"
    for opts in (TrainOptions(loss=loss), TrainOptions(loss="mse", optimizer="adam", style="crypten"),
                 TrainOptions(loss=loss, optimizer="momentum", style="jax")):
        train, phases = expand(loaded.model, opts)
        inferred = check(train)
        assert missing_shapes(inferred) == []
        names = [n.name for n in train.graph.node]
        lo, hi = phases["backward"]
        assert all("_Grad/" in n for n in names[lo:hi])
        lo, hi = phases["update"]
        assert all(n.startswith("/optimizer/") for n in names[lo:hi])
        lo, hi = phases["loss"]
        assert all(n.startswith("/loss/") for n in names[lo:hi])


def _run_reference(model: onnx.ModelProto, feeds: dict) -> dict:
    from onnx.reference import ReferenceEvaluator

    sess = ReferenceEvaluator(model)
    outs = sess.run(None, feeds)
    return dict(zip([o.name for o in model.graph.output], outs, strict=True))


def _tiny_bn() -> onnx.ModelProto:
    """Conv (stride 2, pads) -> BatchNormalization -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 2, 7, 7])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 3])
    z = np.zeros
    inits = [numpy_helper.from_array(z(s, np.float32), n) for n, s in (
        ("conv.weight", (4, 2, 3, 3)), ("conv.bias", (4,)), ("bn.weight", (4,)), ("bn.bias", (4,)),
        ("bn.running_mean", (4,)), ("bn.running_var", (4,)), ("fc.weight", (3, 4)), ("fc.bias", (3,)))]
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="/conv/Conv", strides=[2, 2],
                         pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                         ["b"], name="/bn/BatchNormalization"),
        helper.make_node("Relu", ["b"], ["r"], name="/Relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["output"], name="/fc/Gemm", transB=1),
    ]
    return helper.make_model(helper.make_graph(nodes, "tiny_bn", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)])


def _tiny_pad() -> onnx.ModelProto:
    """Gemm -> Pad (constant, uneven) -> Cast -> Tanh -> Gemm: the Pad and Cast gradients."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 5])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 3])
    inits = [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in (
        ("a.weight", (4, 5)), ("b.weight", (3, 7)))]
    inits.append(numpy_helper.from_array(np.array([0, 1, 0, 2], np.int64), "pads"))
    nodes = [
        helper.make_node("Gemm", ["input", "a.weight"], ["h"], name="/a/Gemm", transB=1),
        helper.make_node("Pad", ["h", "pads"], ["p"], name="/Pad"),
        helper.make_node("Cast", ["p"], ["c"], name="/Cast", to=TensorProto.FLOAT),
        helper.make_node("Tanh", ["c"], ["t"], name="/Tanh"),
        helper.make_node("Gemm", ["t", "b.weight"], ["output"], name="/b/Gemm", transB=1),
    ]
    return helper.make_model(helper.make_graph(nodes, "tiny_pad", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)])


def _tiny_gaps() -> onnx.ModelProto:
    """Gather (repeated ids) -> Gemm -> HardSwish -> Split -> Where -> strided Slice -> + Expand -> HardSigmoid -> Gemm:
    the gradients the zoo needed (embeddings, GPT-2's causal mask, resnet32's shortcut, MobileNetV3)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 6])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 3])
    inits = [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in (
        ("emb.weight", (5, 6)), ("a.weight", (8, 6)), ("e.bias", (1, 2)), ("b.weight", (3, 2)))]
    i64 = np.int64
    inits += [numpy_helper.from_array(np.array(v, dt), n) for n, v, dt in (
        ("ids", [3, 3], i64), ("split", [4, 4], i64), ("st", [1], i64), ("en", [4], i64), ("ax", [1], i64),
        ("step", [2], i64), ("eshape", [2, 2], i64),
        ("cond", [[True, False, True, True], [False, True, False, True]], np.bool_))]
    nodes = [
        helper.make_node("Gather", ["emb.weight", "ids"], ["e"], name="/emb/Gather"),
        helper.make_node("Add", ["input", "e"], ["h0"], name="/Add"),
        helper.make_node("Gemm", ["h0", "a.weight"], ["h1"], name="/a/Gemm", transB=1),
        helper.make_node("HardSwish", ["h1"], ["h2"], name="/HardSwish"),
        helper.make_node("Split", ["h2", "split"], ["s0", "s1"], name="/Split", axis=1),
        helper.make_node("Where", ["cond", "s0", "s1"], ["w"], name="/Where"),
        helper.make_node("Slice", ["w", "st", "en", "ax", "step"], ["sl"], name="/Slice"),
        helper.make_node("Expand", ["e.bias", "eshape"], ["eb"], name="/Expand"),
        helper.make_node("Add", ["sl", "eb"], ["h3"], name="/Add_1"),
        helper.make_node("HardSigmoid", ["h3"], ["h4"], name="/HardSigmoid", alpha=0.3, beta=0.4),
        helper.make_node("Gemm", ["h4", "b.weight"], ["output"], name="/b/Gemm", transB=1),
    ]
    return helper.make_model(helper.make_graph(nodes, "tiny_gaps", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)])


def _with_weights(path, batch: int, seed: int = 0) -> onnx.ModelProto:
    m = path if isinstance(path, onnx.ModelProto) else onnx.load(str(path))
    rng = np.random.default_rng(seed)
    for i, init in enumerate(m.graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            arr = rng.normal(0, 0.05, size=tuple(init.dims)).astype(np.float32)
            if "running_var" in init.name or init.name.endswith("var"):
                arr = np.abs(arr) + 0.5
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, init.name))
    return m


@pytest.mark.parametrize(("name", "loss"), [("mlp", "cross-entropy"), ("lenet5", "cross-entropy"),
                                           ("mlp_tanh_softmax", "cross-entropy"), ("logreg_sigmoid", "mse"),
                                           ("tiny_bn", "cross-entropy"), ("transformer_block", "mse"),
                                           ("tiny_pad", "mse"), ("tiny_gaps", "mse"),
                                           ("transformer_block@jax", "mse")])
def test_gradients_match_finite_differences(name: str, loss: str) -> None:
    """The expanded graph's SGD step (lr 1) equals w - dL/dw, dL/dw by central differences of the loss the
    graph computes (onnx.reference). ReLU and max-pool kinks make a few differences disagree: 80% must match."""
    name, _, style = name.partition("@")  # `@jax`: the JAX-style graph (LayerNormGrad, SoftmaxQuotientGrad)
    tiny = {"tiny_bn": _tiny_bn, "tiny_pad": _tiny_pad, "tiny_gaps": _tiny_gaps}
    model = _with_weights(tiny[name]() if name in tiny else MODELS / f"{name}.onnx", 2)
    loaded = load(model, batch=None if name.startswith("transformer") else 2)
    train, _ = expand(loaded.model, TrainOptions(loss=loss, lr=1.0, style=style or "onnx"))
    rng = np.random.default_rng(1)
    x = rng.normal(size=loaded.input_shapes["input"]).astype(np.float32)
    out_shape = [d.dim_value for d in train.graph.input[-1].type.tensor_type.shape.dim]
    label = np.zeros(out_shape, dtype=np.float32)
    label.reshape(-1, out_shape[-1])[:, 0] = 1.0
    feeds = {"input": x, "label": label}
    res = _run_reference(train, feeds)
    params = json.loads(next(p.value for p in train.metadata_props if p.key == "hawkeye.training"))["parameters"]
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    results = []
    for p in params[:: max(1, len(params) // 4)]:
        grad = weights[p] - res[_updated_name(train, p)]
        for idx in np.argsort(-np.abs(grad).reshape(-1))[:2]:
            eps = 3e-3
            vals = []
            for sign in (1, -1):
                m2 = onnx.ModelProto()
                m2.CopyFrom(train)
                w = weights[p].copy().reshape(-1)
                w[idx] += sign * eps
                j = next(j for j, init in enumerate(m2.graph.initializer) if init.name == p)
                m2.graph.initializer[j].CopyFrom(numpy_helper.from_array(w.reshape(weights[p].shape), p))
                vals.append(float(_run_reference(m2, feeds)[train.graph.output[0].name]))
            numeric = (vals[0] - vals[1]) / (2 * eps)
            results.append(numeric == pytest.approx(float(grad.reshape(-1)[idx]), rel=0.05, abs=2e-3))
    assert len(results) >= 3 and sum(results) >= 0.8 * len(results), results


def _updated_name(train: onnx.ModelProto, p: str) -> str:
    """The graph output that holds parameter `p` after the step (the last output of its optimizer scope)."""
    scope = f"/optimizer/{p}/"
    for n in reversed(train.graph.node):
        if n.name.startswith(scope) and n.op_type == "Sub":
            return n.output[0]
    raise AssertionError(p)


def test_crypten_global_average_pool_cuts_the_gradient() -> None:
    """crypten.nn GlobalAveragePool detaches (shallow_copy): CrypTen trains nothing before it (measured on
    resnet_cifar, validation/measured/training/crypten.json); we price that and say so."""
    p = profile_train(MODELS / "resnet_cifar.onnx", TrainOptions(loss="mse"), backends=["crypten", "semi2k"],
                      input_shapes={"input": (1, 3, 32, 32)})
    cut = p.backends["crypten"].unsupported
    assert [u.op_type for u in cut] == ["GlobalAveragePool (backward)"] and "shallow_copy" in cut[0].reason
    assert p.backends["semi2k"].unsupported == ()
    spu, cr = (p.backends[b].phases["backward"].online.rounds for b in ("semi2k", "crypten"))
    assert spu > 5 * cr


def test_crypten_cannot_train_an_inference_batchnorm() -> None:
    """Measured: crypten.nn BatchNormalization returns a tuple in training mode (resnet_cifar_bn fails)."""
    p = profile_train(MODELS / "resnet_cifar_bn.onnx", TrainOptions(), backends=["crypten"],
                      input_shapes={"input": (2, 3, 32, 32)})
    ops = {u.op_type: u for u in p.backends["crypten"].unsupported}
    assert "train::BatchNormalization" in ops and len(ops["train::BatchNormalization"].nodes) == 6


def test_spu_max_pool_gradient_needs_tiling_windows() -> None:
    """Measured: SPU's select_and_scatter rejects cnn_avgpool's 3x3/2 pad-1 pool on 8x8; LeNet's 2x2/2 runs."""
    bad = profile_train(MODELS / "cnn_avgpool.onnx", TrainOptions(loss="mse"), backends=["semi2k"],
                        input_shapes={"input": (2, 3, 16, 16)}).backends["semi2k"].unsupported
    assert [u.nodes for u in bad] == [("/maxpool/MaxPool_Grad/MaxPoolGrad_0",)]
    assert "select_and_scatter" in bad[0].reason
    ok = profile_train(MODELS / "lenet5.onnx", TrainOptions(), backends=["semi2k"], batch=1)
    assert ok.backends["semi2k"].unsupported == ()


def test_op_without_gradient_rule_is_named() -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 4])
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["input", "w"], ["h"], name="/fc/MatMul"),
             helper.make_node("Cos", ["h"], ["output"], name="/act/Cos")]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match=r"no gradient rule for Cos \(node '/act/Cos'\)"):
        expand(load(m).model, TrainOptions())


def test_cli_train_json_phases_and_optimizer_comparison(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(MODELS / "mlp.onnx"), "--mode", "train",
                           "--optimizer", "sgd,adam", "--loss", "cross-entropy", "--lr", "0.01", "--batch", "1",
                           "-b", "crypten,semi2k", "-f", "json"], capture_output=True, text=True, check=True, cwd=ROOT)
    data = json.loads(proc.stdout)
    assert data["mode"] == "train" and data["schema"] == "hawkeye-onnx/1"
    cr = data["backends"]["crypten"]
    assert set(cr["phases"]) == {"forward", "loss", "backward", "update"}
    # 3,986,752 B: real CrypTen 0.4.1, mlp 1x784, CE, SGD (shared/ground-truth/README.md "Training step",
    # vectors.json training case crypten models/mlp.onnx)
    assert sum(p["online"]["bytes"] for p in cr["phases"].values()) == cr["total"]["online"]["bytes"] == 3986752
    runs = {r["optimizer"]: r for r in data["training"]["runs"]}
    assert set(runs) == {"sgd", "adam"}
    # Adam pays a secret sqrt and division per parameter: its update dwarfs SGD's
    assert runs["adam"]["backends"]["semi2k"]["phases"]["update"]["online"]["bytes"] > \
        50 * runs["sgd"]["backends"]["semi2k"]["phases"]["update"]["online"]["bytes"]
    # forward and backward of fc1 aggregate under the same module
    fc1 = next(c for c in cr["tree"]["children"] if c["name"] == "fc1")
    names = [c["name"] for c in fc1["children"]]
    assert "/fc1/Gemm" in names and any(n.startswith("/fc1/Gemm_Grad/") for n in names)


def test_cli_expand_writes_a_valid_model(tmp_path) -> None:
    out = tmp_path / "train.onnx"
    subprocess.run([sys.executable, "-m", "hawkeye_onnx", "expand", str(MODELS / "lenet5.onnx"), "-o", str(out),
                    "--optimizer", "momentum", "--loss", "mse"], capture_output=True, text=True, check=True, cwd=ROOT)
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert any(n.name.endswith("_Grad/ConvTranspose_0") for n in m.graph.node)
    bad = subprocess.run([sys.executable, "-m", "hawkeye_onnx", "expand", str(MODELS / "mlp.onnx"), "-o", str(out),
                          "--loss", "hinge"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith("hawkeye-onnx: error: --loss 'hinge'")


ORT = json.loads((ROOT / "validation" / "measured" / "training" / "ort_grads.json").read_text())["models"]


@pytest.mark.parametrize("name", sorted(ORT), ids=lambda n: n.removesuffix(".onnx"))
def test_backward_matches_onnxruntime_training(name: str) -> None:
    """onnxruntime-training 1.19.2 generate_artifacts (validation/ort_training.py): the same forward nodes get
    a `<name>_Grad/` scope, and each Gemm the same number of Gemm gradient nodes (no dX for the data input)."""
    loss = "mse" if name.removesuffix(".onnx") in ONE_CLASS else "cross-entropy"
    train, _ = expand(load(MODELS / name, batch=1).model, TrainOptions(loss=loss))
    ours: dict[str, list[str]] = {}
    for n in train.graph.node:
        if "_Grad/" in n.name and not n.name.startswith("/loss/"):
            ours.setdefault(n.name.split("_Grad/")[0], []).append(n.op_type)
    theirs: dict[str, list[str]] = {}
    for node_name, op, _domain in ORT[name]:
        if not node_name.startswith("onnx::"):  # ORT's loss node has no scope
            theirs.setdefault(node_name.split("_Grad/")[0], []).append(op)
    assert set(ours) == set(theirs)
    for fwd, ops in theirs.items():
        if fwd.endswith("/Gemm"):
            assert ops.count("Gemm") == ours[fwd].count("Gemm"), fwd


def _gemm_act_gemm(act: str, **attrs: object) -> onnx.ModelProto:
    """input 2x16 -> Gemm 32 -> act -> Gemm 10 (opset 17), the models measured below."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 16])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 10])
    inits = [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in (("a.weight", (32, 16)),
                                                                             ("b.weight", (10, 32)))]
    nodes = [helper.make_node("Gemm", ["input", "a.weight"], ["h"], name="/a/Gemm", transB=1),
             helper.make_node(act, ["h"], ["r"], name=f"/{act}", **attrs),
             helper.make_node("Gemm", ["r", "b.weight"], ["output"], name="/b/Gemm", transB=1)]
    return helper.make_model(helper.make_graph(nodes, "t", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)])


def _built_measured(name: str) -> dict:
    """The SPU run of a model built in this file: `built_by_tests` of validation/measured/training/semi2k.json
    (each record names the builder call, the measure_train.py command, SPU version, parties and date)."""
    doc = json.loads((ROOT / "validation" / "measured" / "training" / "semi2k.json").read_text())
    return next(c for c in doc["built_by_tests"] if c["name"] == name)


def _assert_phases_equal_record(p, record: dict) -> None:
    ph = {k: (t.online.bytes, t.online.rounds) for k, t in p.backends["semi2k"].phases.items()}
    ph["loss+backward"] = tuple(a + b for a, b in zip(ph["loss"], ph["backward"], strict=True))
    for name, want in record["phases"].items():
        assert ph[name] == (want["bytes"], want["rounds"]), name


@pytest.mark.parametrize(("act", "attrs"), [("HardSwish", {}), ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5})])
def test_spu_hard_activation_gradients_measured(act: str, attrs: dict) -> None:
    """Real SPU 0.9.5 SEMI2K, 2 parties, on the model above (validation/spu/measure_train.py MODEL --input
    input=2x16 --loss mse; record gemm_<act>_gemm in validation/measured/training/semi2k.json): forward,
    loss+backward and update bytes/rounds. The backward shares x > 0 with the forward's maximum (one fresh
    comparison, an AndBB, a select)."""
    p = profile_train(_gemm_act_gemm(act, **attrs), TrainOptions(loss="mse"), backends=["semi2k"],
                      input_shapes={"input": (2, 16)}, params={"semi2k": {"parties": 2}})
    _assert_phases_equal_record(p, _built_measured(f"gemm_{act.lower()}_gemm"))


def test_spu_embedding_split_strided_slice_gradients_measured() -> None:
    """Real SPU 0.9.5 SEMI2K, 2 parties (validation/spu/measure_train.py --input input=2x6 --loss mse --classes 3;
    record tiny_gaps_spu in validation/measured/training/semi2k.json) on tiny_gaps with HardSwish/HardSigmoid as
    Identity and the Where as an Add (the harness feeds no boolean constant): the embedding's scatter-add,
    Split, Expand and the strided Slice's gradient are local, every phase exact."""
    m = _tiny_gaps()
    for n in m.graph.node:
        if n.op_type in ("HardSwish", "HardSigmoid"):
            n.op_type = "Identity"
            del n.attribute[:]
        if n.op_type == "Where":
            n.op_type = "Add"
            del n.input[0]
    p = profile_train(m, TrainOptions(loss="mse"), backends=["semi2k"], input_shapes={"input": (2, 6)},
                      params={"semi2k": {"parties": 2}})
    _assert_phases_equal_record(p, _built_measured("tiny_gaps_spu"))
