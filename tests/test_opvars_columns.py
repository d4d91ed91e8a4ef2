"""Some ops' shape variables are computed for a whole op group at once (opvars `register_columns`), others
node by node. The two forms must agree exactly: checked on every shipped model, on training graphs (their
backward MatMul/Gemm take transposed and batched operands) and on odd ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hawkeye_onnx.ir import build_graph
from hawkeye_onnx.load import load
from hawkeye_onnx.opvars import REGISTRY
from hawkeye_onnx.training.expand import TrainOptions, expand

MODELS = sorted((Path(__file__).resolve().parent.parent / "models").glob("*.onnx"))
GROUPED = sorted(k for k, v in REGISTRY.items() if v.columns is not None and "::" not in k)


def _check(graph) -> int:
    checked = 0
    for key, idx in graph.columns.groups.items():
        extra = REGISTRY.get(key)
        if extra is None or extra.columns is None:
            continue
        found = extra.columns(graph, idx)
        assert found is not None, key
        rows = np.asarray([extra.compute(graph.nodes[i], graph) for i in idx.tolist()], dtype=np.int64)
        for j, name in enumerate(extra.names):
            assert found[name].tolist() == rows[:, j].tolist(), (key, name)
        checked += len(idx)
    return checked


def test_some_op_has_a_group_form() -> None:
    assert {"MatMul", "Gemm", "Conv", "ConvTranspose", "Mul"} <= set(GROUPED)


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_group_form_equals_node_form(model: Path) -> None:
    loaded = load(model, batch=2)
    graph = build_graph(loaded.model)
    _check(graph)
    # the IR also sets the initializer flags from its tensor order (initializers first): as the names give them
    assert graph.is_initializer.tolist() == [name in graph.initializers for name in graph.tensors]
    if model.stem in ("mlp", "transformer_block", "lenet5"):
        train, _ = expand(loaded.model, TrainOptions())
        assert _check(build_graph(load(train).model)) > 0


@pytest.mark.parametrize(("a", "b"), [((5,), (5, 3)), ((4, 5), (5,)), ((2, 3, 4, 5), (5, 6)),
                                      ((7, 1, 4, 5), (3, 5, 2))])
def test_matmul_odd_ranks(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"], name="/mm/MatMul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, a),
                                           helper.make_tensor_value_info("b", TensorProto.FLOAT, b)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inferred = onnx.shape_inference.infer_shapes(model)
    assert _check(build_graph(inferred)) == 1
