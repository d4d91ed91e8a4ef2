"""The JSON writer lays out each backend's module tree from arrays (aggregate.TreeSource.json); the Python
API builds the same tree as TreeNode records (TreeSource.build). Two independent implementations of one
contract: their texts must be equal, at every depth, on every shipped model and on hostile names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hawkeye_onnx import profile
from hawkeye_onnx.aggregate import ModuleIndex
from hawkeye_onnx.training import TrainOptions, profile_train

MODELS = sorted((Path(__file__).resolve().parent.parent / "models").glob("*.onnx"))


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_array_written_json_equals_the_record_tree(model: Path) -> None:
    for depth in (None, 0, 1, 2, 3):
        result = profile(model, batch=2, depth=depth)
        assert result.to_json() == json.dumps(result.to_dict(), ensure_ascii=False) + "\n", depth


@pytest.mark.parametrize("name", ["resnet_cifar_bn.onnx", "transformer_block_dynamo.onnx"])
def test_array_written_training_json_equals_the_record_tree(name: str) -> None:
    """A training graph's blocks' nodes are made when read (`training.graph.TrainNodes`): the text takes the names
    of the nodes that cost something a column at a time (`ColumnNodes.names`), the records one node at a time."""
    for depth in (None, 2):
        result = profile_train(MODELS[0].parent / name, TrainOptions(optimizer="adam"), batch=2, depth=depth)
        assert result.to_json() == json.dumps(result.to_dict(), ensure_ascii=False) + "\n", depth


def _walk(children: list[list[int]]) -> tuple[list[int], list[int]]:
    """Open and close positions of every module in a recursive depth-first walk."""
    opens, closes = [0] * len(children), [0] * len(children)
    pos = 0

    def visit(m: int) -> None:
        nonlocal pos
        opens[m] = pos
        pos += 1
        for c in children[m]:
            visit(c)
        closes[m] = pos
        pos += 1

    visit(0)
    return opens, closes


def test_module_walk_by_sorting_equals_a_recursive_walk() -> None:
    """Modules are numbered as nodes reach them, so a module's children need not be next to it (`a/x`,
    `b`, `a/z`); the sorted layout (`ModuleIndex.dfs`) must still open and close them as a recursive walk."""
    scopes = [("a", "x"), ("b", "y", "q"), ("a", "z"), (), ("b",), ("c",), ("a", "x", "k"), ("b", "y")]
    index = ModuleIndex((scopes, np.asarray([0, 1, 2, 3, 4, 5, 6, 7, 2, 0])), [None] * 10)  # type: ignore[list-item]
    assert [index.names[m] for m in range(len(index.names))] == ["model", "a", "x", "b", "y", "q", "z", "c", "k"]
    opens, closes = index.dfs
    assert (opens.tolist(), closes.tolist()) == _walk(index.children)
    assert index.children[1] == [2, 6] and index.children[2] == [8]  # `k` came late: its parent's last child
