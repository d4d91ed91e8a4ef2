"""A node that reads one tensor in two input slots, and SPU's reduce over dim 0 (the batch-1 softmax head).

Golden facts: CrypTen 0.4.1 refuses Mul(x, x), Concat(f, f) and models/keras_cnn_tf2onnx.onnx (the Slice
`.../flatten_1/strided_slice` reads `const_axes__28` twice) with "nn.Graph.forward() failed. Is graph
unconnected?" (validation/measured/crypten_ops_gaps.json, crypten_ops.json plumbing_2x3x4); SPU 0.9.5 runs
Mul(x, x) (semi2k_ops_gaps.json repeated_mul_xx_2x10) and compares a softmax row with the reduce's -inf init
when the row max reduces dim 0 (semi2k_ops_gaps.json softmax_after_matmul_1x64x10: 25,428 B / 105 rounds at
2 parties; softmax_after_matmul_2x64x10 and softmax_after_relu_1x10: init dropped).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import helper

from hawkeye_onnx.cost import repeated_input_nodes
from hawkeye_onnx.ir import build_graph
from hawkeye_onnx.opvars import REGISTRY
from hawkeye_onnx.profile import profile
from hawkeye_onnx.rules import load_backends
from validation import opzoo

ROOT = Path(__file__).resolve().parent.parent
KERAS = ROOT / "models" / "keras_cnn_tf2onnx.onnx"
CASES = {c.name: c for c in opzoo.cases()}


def _measured(file: str, case: str, parties: int) -> dict:
    """The record of `case` at `parties` in validation/measured/`file` (a real framework run)."""
    records = json.loads((ROOT / "validation" / "measured" / file).read_text())
    return next(r for r in records if r["case"] == case and r["parties"] == parties and "bytes" in r)


def _graph(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]]):
    return build_graph(opzoo.model("t", nodes, inputs).model)


def test_repeated_input_nodes_finds_a_tensor_read_twice() -> None:
    g = _graph([helper.make_node("Mul", ["x", "x"], ["m"], name="sq"),
                helper.make_node("Add", ["m", "x"], ["out"], name="add")], {"x": (2, 3)})
    assert [g.nodes[i].name for i in repeated_input_nodes(g)] == ["sq"]


def test_an_identity_output_counts_as_its_source() -> None:
    g = _graph([helper.make_node("Identity", ["x"], ["y"], name="id"),
                helper.make_node("Concat", ["x", "y"], ["out"], name="cat", axis=0)], {"x": (2, 3)})
    assert [g.nodes[i].name for i in repeated_input_nodes(g)] == ["cat"]


def test_crypten_refuses_every_node_that_reads_a_tensor_twice_semi2k_prices_it() -> None:
    model = CASES["repeated_mul_xx_2x10"].model
    r = profile(model, backends=["crypten", "semi2k"])
    [u] = r.backends["crypten"].unsupported
    assert (u.op_type, u.nodes) == ("Mul", ("/sq/Mul",)) and "Is graph unconnected" in u.reason
    assert r.backends["semi2k"].unsupported == ()
    rec = _measured("semi2k_ops_gaps.json", "repeated_mul_xx_2x10", 2)  # SPU 0.9.5, 2 parties
    assert (r.backends["semi2k"].total.online.bytes, r.backends["semi2k"].total.online.rounds) == \
        (rec["bytes"], rec["rounds"])


def test_keras_tf2onnx_public_slice_is_what_crypten_cannot_run() -> None:
    """The Slice reads only public shape values: refused all the same (the check precedes the secrecy one)."""
    r = profile(KERAS, backends=["crypten", "semi2k"], batch=1)
    [u] = r.backends["crypten"].unsupported
    assert u.op_type == "Slice"
    assert u.nodes == ("StatefulPartitionedCall/keras_cnn_1/flatten_1/strided_slice",)
    assert r.backends["semi2k"].unsupported == ()
    # measured on SPU 0.9.5, 2 parties (validation/measured/semi2k_models.json; the softmax head reduces dim 0)
    rec = _measured("semi2k_models.json", "keras_cnn_tf2onnx", 2)
    assert (r.backends["semi2k"].total.online.bytes, r.backends["semi2k"].total.online.rounds) == \
        (rec["bytes"], rec["rounds"])


def test_with_params_keeps_the_backend_option() -> None:
    [b] = load_backends(["crypten"])
    assert b.repeated_input and b.with_params({"parties": "3"}).repeated_input == b.repeated_input


def test_softmax_reduce_dim0_flag() -> None:
    softmax = REGISTRY["Softmax"]

    def flag(case: str) -> int:
        g = build_graph(CASES[case].model)
        node = next(n for n in g.nodes if n.op_type == "Softmax")
        return int(softmax.compute(node, g)[softmax.names.index("reduce_dim0")])

    assert flag("softmax_after_matmul_1x64x10") == 1
    assert flag("softmax_after_gemm_relu_1x16x8") == 1
    assert flag("softmax_axis0_10x3") == 1
    assert flag("softmax_after_matmul_2x64x10") == 0
    assert flag("softmax_after_relu_1x10") == 0
