"""The training profiler's shortcuts give what the plain pipeline gives (issue 8: train mode on big graphs).

Each shortcut is checked against the slow path it replaces, computed in the test by the core pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import onnx
import pytest
from conftest import MODELS, no_children
from onnx import helper

from hawkeye_onnx import background
from hawkeye_onnx.errors import HawkeyeError
from hawkeye_onnx.ir import ColumnNodes, Columns, Graph, Node, build_graph, node_attrs, op_key, op_keys, with_domains
from hawkeye_onnx.load import load, read_model
from hawkeye_onnx.rules import load_backends
from hawkeye_onnx.scope import scope_index
from hawkeye_onnx.training import profile as tp
from hawkeye_onnx.training import replay
from hawkeye_onnx.training.builder import Builder
from hawkeye_onnx.training.expand import (
    TrainOptions,
    expand,
    expand_typed,
    expand_with_builder,
    model_facts,
    static_shapes,
)
from hawkeye_onnx.training.graph import build, forward_ir
from hawkeye_onnx.training.profile import BACKWARD, TRAIN, _context, _parameters, _training_mode, infer_shapes


@pytest.mark.parametrize("name", ["resnet_cifar_bn.onnx", "transformer_block.onnx"])
def test_context_groups_equal_a_rebuild(name: str) -> None:
    """`_context` regroups only the moved nodes; `ir` recomputing the columns from the nodes must agree."""
    loaded = load(MODELS / name, batch=2)
    moved = 0
    for style in ("onnx", "crypten"):
        train, phases = expand(loaded.model, TrainOptions(style=style))
        graph = build_graph(infer_shapes(train))
        for backend in load_backends(None, {}):
            ctx = _context(graph, backend, phases["backward"], BACKWARD)
            ctx = _context(ctx, backend, phases["forward"], TRAIN, _training_mode)
            fresh = dataclasses.replace(ctx)  # a new instance: `columns` computed from its nodes
            assert "columns" not in fresh.__dict__
            ours, want = ctx.columns.groups, fresh.columns.groups
            assert list(ours) == list(want)  # pricing walks the groups in this order
            for key in want:
                assert np.array_equal(ours[key], want[key]), key
            moved += sum(k.startswith((f"{BACKWARD}::", f"{TRAIN}::")) for k in ours)
    assert moved > 0  # some backend has a backward:: or train:: rule for these graphs


@pytest.mark.parametrize("name", ["resnet_cifar_bn.onnx", "mlp.onnx", "transformer_block_dynamo.onnx"])
def test_header_parameters_as_the_ir_counts_them(name: str) -> None:
    model = load(MODELS / name, batch=2).model
    assert _parameters(model.graph) == build_graph(model).parameters > 0


def test_builder_attribute_cache_keeps_types() -> None:
    """Equal Python values of different types (1, 1.0, True) are different ONNX attributes."""
    model = load(MODELS / "mlp.onnx", batch=2).model
    b = Builder(model, {})
    values = [1, 1.0, True, [1, 2], [1.0, 2.0], (1, 2.0), "a", 1, [1, 2]]
    for v in values:
        b.op("/t", "Foo", [], None, k=v)
    got = [n.attribute[0] for n in b.nodes]
    assert got == [helper.make_attribute("k", v) for v in values]
    assert [a.type for a in got[:3]] == [onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.INT]
    assert list(b.graph.node) == b.nodes  # the nodes live in the builder's graph


def test_builder_constants_keep_their_values() -> None:
    """Constants share one attribute per distinct value; -0.0 and 0.0, 2 and 2.0 (int64 / float) stay apart."""
    model = load(MODELS / "mlp.onnx", batch=2).model
    b = Builder(model, {})
    cases = [(0.0, np.float32), (-0.0, np.float32), (2, np.int64), (2.0, np.float32), ([1, 2], np.int64),
             (0.0, np.float32), ([3], np.int64)]
    outs = [b.const("/t", v, d) for v, d in cases]
    for node, out, (v, d) in zip(b.nodes, outs, cases, strict=True):
        arr = onnx.numpy_helper.to_array(node.attribute[0].t)
        want = np.asarray(v, dtype=d)
        assert arr.dtype == want.dtype and arr.shape == want.shape and arr.tobytes() == want.tobytes()
        assert b.shape(out) == want.shape


def _same_ir(a: Graph, b: Graph) -> None:
    assert list(a.nodes) == list(b.nodes) and a.inputs == b.inputs and a.outputs == b.outputs
    assert (a.initializers, a.opset, a.parameters) == (b.initializers, b.opset, b.parameters)
    assert list(a.tensors) == list(b.tensors)
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (t.shape, t.dtype, t.secret) == (u.shape, u.dtype, u.secret), name
        assert (t.value is None) == (u.value is None) and (t.value is None or np.array_equal(t.value, u.value)), name
    for f in dataclasses.fields(Columns):
        x, y = getattr(a.columns, f.name), getattr(b.columns, f.name)
        if f.name == "groups":
            assert list(x) == list(y) and all(np.array_equal(x[k], y[k]) for k in x)
        else:
            assert np.array_equal(x, y), f.name


_TYPED = [(m.name, s) for m in sorted(MODELS.glob("*.onnx")) for s in ("onnx", "jax", "crypten")]


@pytest.mark.parametrize(("name", "style"), _TYPED, ids=[f"{m}-{s}" for m, s in _TYPED])
def test_typed_expansion_needs_no_shape_inference(name: str, style: str) -> None:
    """The expander's own shapes, declared as value_info, give the IR that onnx shape inference gives; so does
    the IR built from the builder's records on the shared forward IR."""
    try:
        loaded = load(MODELS / name, batch=2)
        opts = TrainOptions(style=style, optimizer="adam", loss="mse" if "logreg" in name else "cross-entropy")
        train, _, typed = expand_typed(loaded.model, opts)
    except HawkeyeError:
        pytest.skip("not trainable (checked in test_training.py)")
    plain, _ = expand(loaded.model, opts)
    want = build_graph(infer_shapes(plain))
    assert typed  # every model here: the expander knows every shape
    _same_ir(build_graph(train), want)
    forward = forward_ir(loaded.model, static_shapes(loaded.model))
    assert forward is not None
    for defer in (False, True):  # replayed nodes as records, and as blocks (as the profiler runs it)
        train, _, b = expand_with_builder(loaded.model, opts, protos=False, defer=defer)
        built = build(forward, train, b)
        assert built is not None
        graph, scopes = built
        _same_tensor_reads(graph, want)
        _same_ir(graph, want)
        (got_list, got_index), (want_list, want_index) = scopes, scope_index(plain.graph.node)
        assert [got_list[k] for k in got_index] == [want_list[k] for k in want_index]  # every node's module path
        _same_node_columns(graph.nodes, want.nodes)


def _same_tensor_reads(got: Graph, want: Graph) -> None:
    """Tensors read by name before anything reads the whole map (a training graph's table gets its blocks'
    internal tensors only when asked, `ir.TensorTable`): every n-th tensor, from the last one back."""
    names = list(want.tensors)
    for name in names[::-97]:
        assert got.tensor_id(name) == want.tensor_ids[name] and name in got.tensors, name
        t, u = got.tensors[name], want.tensors[name]
        assert got.tensors.shape_of(name) == u.shape and (t.shape, t.dtype, t.secret) == (u.shape, u.dtype, u.secret)
    assert len(got.tensors) == len(names) and got.tensor_id("") == -1 and "" not in got.tensors
    assert got.tensor_id("no such tensor") == -1 and got.tensors.get("no such tensor") is None


def _same_node_columns(got: Sequence[Node], want: Sequence[Node]) -> None:
    """What is read of many nodes as a list (`ir.ColumnNodes`: the training graph's blocks' nodes are made when
    read) is what the records say; so are slices and negative indices, and nodes moved to another domain."""
    n = len(want)
    assert isinstance(got, ColumnNodes) and len(got) == n
    assert op_keys(got) == [op_key(x) for x in want]
    assert op_keys(got, n // 3, n // 2) == [op_key(x) for x in want[n // 3:n // 2]]
    assert got.names(range(n)) == [x.name for x in want]
    some = [n - 1, 0, n // 2, n // 3, n // 2, 1, n - 2, *range(n - 1, 0, -5)]  # any order, repeats
    assert got.names(some) == [want[i].name for i in some] and got.names([]) == []
    picks = [0, n // 2, n - 1]  # a forward node, a node of the middle, the last update node
    assert node_attrs(got, picks) == [want[i].attrs for i in picks]
    assert got[-1] == want[-1] and list(got[::-7]) == list(want[::-7]) and list(got[:5]) == list(want[:5])
    moved = with_domains(got, dict.fromkeys(picks, "backward"))
    assert [moved[i].domain for i in picks] == ["backward"] * 3 and got[n // 2] == want[n // 2]
    assert moved[0] == want[0]._replace(domain="backward") and list(moved[:1]) == [moved[0]]
    keys = [op_key(x) for x in want]
    for i in picks:
        keys[i] = f"backward::{want[i].op_type}"
    assert op_keys(moved) == keys and op_keys(got) == [op_key(x) for x in want]
    for far in (n, -n - 1):
        with pytest.raises(IndexError):
            got[far]


@pytest.mark.parametrize("name", ["resnet_cifar_bn.onnx", "transformer_block_dynamo.onnx"])
def test_every_ir_path_gives_the_same_report(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records on the shared forward IR, declared shapes, onnx shape inference: one JSON report."""
    from hawkeye_onnx.training import profile as tp

    def run() -> str:
        opts = [TrainOptions(optimizer="sgd"), TrainOptions(optimizer="adam")]
        return tp.profile_train(MODELS / name, opts, batch=2).to_json()

    fast = run()
    monkeypatch.setattr(tp, "build", lambda *a: None)
    declined = run()
    monkeypatch.setattr(tp, "forward_ir", lambda *a: None)
    declared = run()
    monkeypatch.setattr(tp, "declare_shapes", lambda *a: False)
    inferred = run()
    assert fast == declined == declared == inferred


def test_facts_shared_by_the_expansions_stay_as_they_were() -> None:
    """A profile reads `model_facts` once (before the styles fork) and expands the model once per style from
    them: no expansion, records-only or with protos, may change them, and one from shared facts equals one
    from fresh facts."""
    model = load(MODELS / "transformer_block.onnx", batch=2).model
    facts = model_facts(model)

    def state() -> tuple:
        base = facts.base
        return (dict(facts.shapes), list(facts.fields), set(base.used),
                {k: len(v) for k, v in base.producers.items()}, sorted(base.initial_values))

    before = state()
    for style in ("crypten", "jax", "onnx"):
        for protos in (True, False):
            opts = TrainOptions(style=style, optimizer="adam")
            expand_with_builder(model, opts, protos=protos, facts=facts, defer=not protos)
    assert state() == before
    opts = TrainOptions(style="crypten", optimizer="momentum")
    shared = replay.records(expand_with_builder(model, opts, protos=False, facts=facts, defer=True)[2])[0]
    fresh = replay.records(expand_with_builder(model, opts, protos=False, defer=True)[2])[0]
    assert [r[:6] for r in shared] == [r[:6] for r in fresh] and len(shared) > 100


_ALL = [m.name for m in sorted(MODELS.glob("*.onnx"))]


@pytest.mark.parametrize("alongside", [False, True], ids=["in-process", "alongside"])
@pytest.mark.parametrize("name", _ALL)
def test_the_facts_and_forward_ir_from_one_read_equal_those_of_the_inferred_model(name: str, alongside: bool) -> None:
    """The profiler reads a model's nodes once, for its facts and its forward IR, and its shapes as a table (from a
    child inferring the bound model's shapes alongside, or inferred in-process: `training.profile._load`); they
    must be what the facts and the forward IR of the inferred model are."""
    if alongside and not background.AVAILABLE:
        pytest.skip("no os.fork here")
    loaded = load(MODELS / name, batch=2)
    want = model_facts(loaded.model)
    got_loaded, got, forward = tp._load(read_model(MODELS / name), None, 2, alongside)
    assert (got_loaded.input_shapes, got_loaded.sha256, got_loaded.path) == \
        (loaded.input_shapes, loaded.sha256, loaded.path)
    assert got.shapes == want.shapes and got.fields == want.fields
    assert got.base.used == want.base.used
    assert {k: [n.name for n in v] for k, v in got.base.producers.items()} == \
        {k: [n.name for n in v] for k, v in want.base.producers.items()}
    assert list(got.base.initial_values) == list(want.base.initial_values)
    assert all(np.array_equal(got.base.initial_values[k], v) for k, v in want.base.initial_values.items())
    want_forward = forward_ir(loaded.model, want.shapes)
    assert (forward is None) == (want_forward is None)
    if forward is not None and want_forward is not None:
        _same_ir(forward.graph, want_forward.graph)
        assert (forward.scope_number, forward.head, forward.prefixes) == \
            (want_forward.scope_number, want_forward.head, want_forward.prefixes)
        assert np.array_equal(forward.node_scope, want_forward.node_scope)
    assert no_children()
