"""Property tests (hypothesis), bounded for CI (a few seconds each, derandomized so CI is reproducible):

* mutated protobuf bytes of real models: profiling either works or raises the clean `HawkeyeError`
  (the CLI's one-line error with a documented exit code), never anything else;
* random small graphs under every backend: every cost is a non-negative integer, the module tree and
  the per-op table add up to the totals, and more elements (a bigger batch) never cost fewer bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from hawkeye_onnx import profile
from hawkeye_onnx.errors import HawkeyeError, RuleError
from hawkeye_onnx.training import profile_train
from hawkeye_onnx.training.expand import TrainOptions

MODELS = Path(__file__).resolve().parent.parent / "models"
SEEDS = [(MODELS / name).read_bytes() for name in ("logreg_sigmoid.onnx", "mlp_tanh_softmax.onnx", "lenet5.onnx")]
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


@FAST
@given(data=mutated())
def test_mutated_models_fail_cleanly(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "mutant.onnx"
    path.write_bytes(data)
    try:
        result = profile(path, batch=2)
    except HawkeyeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for report in result.backends.values():
        assert report.total.online.bytes >= 0 and report.total.offline.bytes >= 0


TRAIN = settings(FAST, max_examples=30)


@contextmanager
def _big_model_path(on: bool) -> Iterator[None]:
    """HAWKEYE_ONNX_OVERLAP_NODES=0 (`on`: every model takes a big model's path, its shapes inferred in a child
    and its styles priced in forked children) or a huge threshold (in-process), for the block (a hypothesis
    test cannot take pytest's per-example monkeypatch)."""
    old = os.environ.get("HAWKEYE_ONNX_OVERLAP_NODES")
    os.environ["HAWKEYE_ONNX_OVERLAP_NODES"] = "0" if on else "1000000000"
    try:
        yield
    finally:
        if old is None:
            del os.environ["HAWKEYE_ONNX_OVERLAP_NODES"]
        else:
            os.environ["HAWKEYE_ONNX_OVERLAP_NODES"] = old


@TRAIN
@given(data=mutated(), alongside=st.booleans())
def test_mutated_models_fail_cleanly_in_training(tmp_path: Path, data: bytes, alongside: bool) -> None:
    """The same for a training step, read in-process or, as a big model is, alongside a child inferring its shapes
    (HAWKEYE_ONNX_OVERLAP_NODES=0 forces that path; the styles then run in forked children too)."""
    path = tmp_path / "mutant.onnx"
    path.write_bytes(data)
    try:
        with _big_model_path(alongside):
            result = profile_train(path, TrainOptions(loss="mse"), batch=2)
    except HawkeyeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for report in result.backends.values():
        assert report.total.online.bytes >= 0 and report.total.offline.bytes >= 0
        assert sum(t.online.bytes for t in (report.phases or {}).values()) == report.total.online.bytes


UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Softmax", "Identity"]
BINARY = ["Add", "Sub", "Mul", "MatMulW", "GemmW", "AddW", "MulW"]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[onnx.ModelProto, int]:  # (model, batch)
    """A chain of 1-6 ops on a [batch, width] tensor, with weights of its width."""
    width = draw(st.integers(1, 16))
    nodes, inits = [], []
    cur = "x"
    for i in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(UNARY + BINARY))
        out = f"t{i}"
        name = f"/block{i % 3}/layer{i}/{op}"
        if op.endswith("W"):
            w = f"w{i}"
            if op in ("MatMulW", "GemmW"):
                out_w = draw(st.integers(1, 16))
                inits.append(helper.make_tensor(w, TensorProto.FLOAT, [width, out_w], np.ones(width * out_w)))
                nodes.append(helper.make_node(op[:-1], [cur, w], [out], name=name))
                width = out_w
            else:
                inits.append(helper.make_tensor(w, TensorProto.FLOAT, [width], np.ones(width)))
                nodes.append(helper.make_node(op[:-1], [cur, w], [out], name=name))
        elif op in BINARY:
            nodes.append(helper.make_node(op, [cur, cur], [out], name=name))
        else:
            nodes.append(helper.make_node(op, [cur], [out], name=name, **({"axis": -1} if op == "Softmax" else {})))
        cur = out
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", None])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, draw(st.integers(1, 4))


def _input_width(model: onnx.ModelProto) -> int:
    """The width the first weight expects, else any."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        for x in node.input:
            if x in inits:
                return int(inits[x].dims[0])
    return 5


#: Backends whose bytes are not monotone in the element count, with the case found. CrypTFlow2 splits a
#: LinearOT product's inner dimension over its threads (rules/cryptflow2.toml matmul_ot, fn_cryptflow2.py
#: matmul_bytes): a secret x secret Mul of x[2, 2] by w[2] prices 87,420 B, of x[3, 2] 79,668 B. Whether SCI
#: really sends less for more elements there is not established; until it is, only this backend is exempt.
NOT_MONOTONE = {"cryptflow2"}


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=graphs())
def test_random_graphs_cost_non_negative_consistent_and_monotone(case) -> None:
    model, batch = case
    width = _input_width(model)
    small = profile(model, input_shapes={"x": (batch, width)})
    big = profile(model, input_shapes={"x": (batch + 1, width)})
    for name, report in small.backends.items():
        ops_bytes = 0
        for summary in report.ops.values():
            for cost in (summary.totals.online, summary.totals.offline):
                assert cost.bytes >= 0 and cost.rounds >= 0
            ops_bytes += summary.totals.online.bytes
        assert ops_bytes == report.total.online.bytes, name
        tree = report.tree
        assert tree.totals == report.total
        assert sum(c.totals.online.bytes for c in tree.children) == tree.totals.online.bytes
        if name in NOT_MONOTONE:
            continue
        more = big.backends[name].total
        assert more.online.bytes >= report.total.online.bytes, (name, batch)
        assert more.offline.bytes >= report.total.offline.bytes, (name, batch)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=graphs(), loss=st.sampled_from(["mse", "cross-entropy"]),
       optimizer=st.sampled_from(["sgd", "momentum", "adam"]), alongside=st.booleans())
def test_random_graphs_train_cleanly_and_consistently(case, loss: str, optimizer: str, alongside: bool) -> None:
    """A training step of a random chain: a clean one-line error (an untrainable graph: no weight on the path,
    one class for cross-entropy) or costs that are non-negative and add up: phases to the total, operators and
    the module tree to the total. Read in-process or alongside a shape-inference child (the big-model path)."""
    model, batch = case
    try:
        with _big_model_path(alongside):
            result = profile_train(model, TrainOptions(loss=loss, optimizer=optimizer),
                                   input_shapes={"x": (batch, _input_width(model))})
    except HawkeyeError as exc:
        # a shipped rule must price every graph it accepts (a Softmax over one class once gave CrypTen's
        # pairwise max a negative size: RuleError "bytes is negative")
        assert not isinstance(exc, RuleError), exc
        assert str(exc) and "\n" not in str(exc)
        return
    for name, report in result.backends.items():
        total = report.total
        phases = list((report.phases or {}).values())
        assert len(phases) == 4, name
        for part in ("online", "offline"):
            assert sum(getattr(p, part).bytes for p in phases) == getattr(total, part).bytes, (name, part)
            assert sum(getattr(p, part).rounds for p in phases) == getattr(total, part).rounds, (name, part)
            assert all(getattr(p, part).bytes >= 0 and getattr(p, part).rounds >= 0 for p in phases), name
        assert sum(s.totals.online.bytes for s in report.ops.values()) == total.online.bytes, name
        assert report.tree.totals == total, name
