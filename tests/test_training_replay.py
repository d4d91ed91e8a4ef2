"""Replayed backward nodes (training/replay.py) are the nodes the gradient rule would have emitted.

The reference is the same expansion with every template refused (`capture` keeps none), so that every node
runs its rule: the records (names, ops, inputs, outputs, attributes, constant values), the shapes and element
types the builder keeps, and the custom ops used must be identical."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import MODELS
from onnx import TensorProto, helper, numpy_helper

from hawkeye_onnx.errors import HawkeyeError
from hawkeye_onnx.load import load
from hawkeye_onnx.training import replay
from hawkeye_onnx.training.expand import TrainOptions, expand_with_builder

RUNS = [TrainOptions(style=s, optimizer=o, loss=loss) for s in ("onnx", "jax", "crypten")
        for o, loss in (("sgd", "cross-entropy"), ("adam", "mse"))]


def _value(v: object) -> object:
    """A small constant's value, comparable (an array by its type, shape and bytes)."""
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    return (type(v).__name__, v)


def _expanded(model: onnx.ModelProto, opts: TrainOptions, defer: bool = False) -> tuple:
    """The emitted nodes as records (deferred blocks written out by `replay.records`), shapes, element types,
    outputs, custom ops and phases."""
    _, phases, b = expand_with_builder(model, opts, protos=False, defer=defer)
    records, shapes, dtypes, outputs = replay.records(b)
    return [(*r[:6], _value(r[6])) for r in records], shapes, dtypes, outputs, b.custom, phases


def _both(model: onnx.ModelProto, opts: TrainOptions, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple, tuple, list]:
    """(with replay, every rule run, the templates made); raises what the expansion raises. Replayed nodes as
    records and as deferred blocks must be the same: the first is returned."""
    made: list = []
    capture = replay.capture

    def recording(*args: object) -> tuple:
        grads, template = capture(*args)  # type: ignore[arg-type]
        made.append(template)
        return grads, template

    with monkeypatch.context() as m:
        m.setattr(replay, "capture", recording)
        fast = _expanded(model, opts)
    assert _expanded(model, opts, defer=True) == fast
    with monkeypatch.context() as m:
        m.setattr(replay, "capture", lambda b, scope, env, run, numbered=True: (run(), None))
        reference = _expanded(model, opts)
    return fast, reference, made


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.glob("*.onnx")))
def test_replayed_nodes_equal_the_rules_own(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        model = load(MODELS / name, batch=2).model
        _expanded(model, RUNS[0])
    except HawkeyeError:
        pytest.skip("not trainable (checked in test_training.py)")
    for opts in RUNS:
        try:
            fast, reference, _ = _both(model, opts, monkeypatch)
        except HawkeyeError:
            continue  # e.g. a cross-entropy-only model under mse: the same error either way (test_training.py)
        assert fast == reference, (name, opts)


def _blocks(n: int, exponents: list[float] | None = None, collide: bool = False, taken: str | None = None,
            weight: str = "w{i}", taken_output: str | None = None) -> onnx.ModelProto:
    """`n` identical Gemm + Relu (+ Pow with the given exponents) layers on 1 x 8: every layer after the first
    has the first one's signature. `taken`: a node and its output named so; `weight`: the weights' names;
    `taken_output`: a tensor named so (its node named otherwise)."""
    nodes, inits, x = [], [], "x"
    for i in range(n):
        w, b = weight.format(i=i), f"b{i}"
        inits += [numpy_helper.from_array(np.ones((8, 8), np.float32), w),
                  numpy_helper.from_array(np.ones(8, np.float32), b)]
        nodes.append(helper.make_node("Gemm", [x, w, b], [f"/l{i}/g"], name=f"/l{i}/Gemm", transB=1))
        nodes.append(helper.make_node("Relu", [f"/l{i}/g"], [f"/l{i}/r"], name=f"/l{i}/Relu"))
        x = f"/l{i}/r"
        if exponents:
            inits.append(numpy_helper.from_array(np.array(exponents[i], np.float32), f"p{i}"))
            nodes.append(helper.make_node("Pow", [x, f"p{i}"], [f"/l{i}/p"], name=f"/l{i}/Pow"))
            x = f"/l{i}/p"
    if collide:  # named as the second layer's replayed backward Gemm and its output
        nodes.append(helper.make_node("Identity", [x], ["/l1/Gemm_Grad/Gemm_0_output_0"], name="/l1/Gemm_Grad/Gemm_0"))
        x = "/l1/Gemm_Grad/Gemm_0_output_0"
    if taken:
        nodes.append(helper.make_node("Identity", [x], [f"{taken}_output_0"], name=taken))
        x = f"{taken}_output_0"
    if taken_output:
        nodes.append(helper.make_node("Identity", [x], [taken_output], name="/taken/Identity"))
        x = taken_output
    nodes.append(helper.make_node("Identity", [x], ["y"], name="/out/Identity"))
    g = helper.make_graph(nodes, "blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def test_repeated_layers_are_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, reference, made = _both(_blocks(6), RUNS[0], monkeypatch)
    assert fast == reference
    # the loss, the output Identity, Relu, Gemm, and the first layer's Gemm (its input x needs no gradient):
    # the other layers are replayed
    assert len(made) == 5
    assert all(t is not None for t in made)


def test_a_rule_reading_a_constant_input_is_never_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pow's gradient reads its exponent's value (not in the signature): layers with exponents 2 and 3 must get
    their own backward nodes."""
    fast, reference, made = _both(_blocks(4, [2.0, 3.0, 2.0, 3.0]), RUNS[0], monkeypatch)
    assert fast == reference
    assert made.count(None) == 1  # Pow's signature keeps no template: every Pow runs its rule
    pows = {r[0].split("_Grad/")[0] for r in fast[0] if r[1] == "Pow"}  # x^(p-1) for p = 3 only
    assert pows == {"/l1/Pow", "/l3/Pow"}


def test_names_already_taken_are_made_unique_as_the_builder_does(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, reference, _ = _both(_blocks(3, collide=True), RUNS[0], monkeypatch)
    assert fast == reference
    names = [r[0] for r in fast[0]]
    assert "/l1/Gemm_Grad/Gemm_0_1" in names and len(set(names)) == len(names)


def test_deferred_blocks_fall_back_to_records_when_a_name_is_taken() -> None:
    """Deferred instances are named at the end (`replay.settle`); a name the model took already makes the
    expansion run again with the replay as records, which makes it unique."""
    _, _, b = expand_with_builder(_blocks(3), RUNS[0], protos=False, defer=True)
    assert b.instances and b.count() == len(b.records) + sum(len(i.template.steps) for i in b.instances)
    _, _, b = expand_with_builder(_blocks(3, collide=True), RUNS[0], protos=False, defer=True)
    assert not b.instances
    assert "/l1/Gemm_Grad/Gemm_0_1" in {r[0] for r in b.records}


@pytest.mark.parametrize("taken", ["/l1/Gemm_Grad/Gemm_1_output_0", "/optimizer/w2/Mul_output_0"])
def test_a_taken_output_name_alone_makes_the_blocks_records(taken: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tensor of the model named as a deferred block's output (of a backward block, of an update block), its
    node named otherwise: the blocks fall back to records, which the builder makes unique (`replay.settle` makes
    the names of the instances of the taken name's scope only)."""
    model = _blocks(3, taken_output=taken)
    _, _, b = expand_with_builder(model, RUNS[0], protos=False, defer=True)
    assert not b.instances
    fast, reference, _ = _both(model, RUNS[0], monkeypatch)
    assert fast == reference
    outputs = {o for r in fast[0] for o in r[4]}
    assert f"{taken}_1" in outputs and taken not in outputs
    _, _, b = expand_with_builder(_blocks(3, taken_output=taken.replace("_output_0", "_output_7")), RUNS[0],
                                  protos=False, defer=True)
    assert b.instances  # a name of that scope that no block takes


OPTIMIZERS = [TrainOptions(optimizer=o) for o in ("sgd", "momentum", "adam")]


@pytest.mark.parametrize("opts", OPTIMIZERS, ids=lambda o: o.optimizer)
def test_parameter_updates_are_deferred_as_blocks_named_as_the_builder_names_them(
        opts: TrainOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each parameter's update (its gradients' sum and the optimizer's step) is one block of a template made
    once per (shape, number of gradients), named `/optimizer/<parameter>/<Op>`, `<Op>_1`, ... as the builder
    names the records; equal to the records of every rule run."""
    model = _blocks(3)
    fast, reference, _ = _both(model, opts, monkeypatch)
    assert fast == reference
    _, phases, b = expand_with_builder(model, opts, protos=False, defer=True)
    lo, hi = phases["update"]
    assert hi - lo > 6 and not b.records[len(b.records) - 1][0].startswith("/optimizer/")
    updates = [inst for inst in b.instances if inst.scope.startswith("/optimizer/")]
    assert [inst.scope for inst in updates] == [f"/optimizer/{p}" for p in ("w0", "b0", "w1", "b1", "w2", "b2")]
    assert len({id(inst.template) for inst in updates}) == 2  # the weights' shape and the biases'
    names = [r[0] for r in fast[0] if r[0].startswith("/optimizer/w1/")]
    assert names[0] == "/optimizer/w1/Constant" and names[-1] == "/optimizer/w1/Sub"
    assert len(set(names)) == len(names)
    assert sum(len(inst.template.steps) for inst in updates) == hi - lo


@pytest.mark.parametrize("opts", OPTIMIZERS, ids=lambda o: o.optimizer)
def test_a_taken_update_name_and_a_parameter_named_like_a_backward_scope_give_the_builders_names(
        opts: TrainOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node of the model named as a parameter's last update node: the blocks fall back to records, which the
    builder makes unique. A parameter `w1_Grad`: its scope `/optimizer/w1_Grad` numbers its nodes as a backward
    scope does (`Builder._name`), so its update is emitted as records."""
    fast, reference, _ = _both(_blocks(3, taken="/optimizer/w1/Sub"), opts, monkeypatch)
    assert fast == reference
    assert "/optimizer/w1/Sub_1" in {r[0] for r in fast[0]}
    _, _, b = expand_with_builder(_blocks(3, taken="/optimizer/w1/Sub"), opts, protos=False, defer=True)
    assert not b.instances
    fast, reference, _ = _both(_blocks(3, weight="w{i}_Grad"), opts, monkeypatch)
    assert fast == reference
    assert "/optimizer/w1_Grad/Sub_" in " ".join(r[0] for r in fast[0])
