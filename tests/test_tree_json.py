"""The JSON writer lays out each backend's module tree from arrays (aggregate.TreeSource.json); the Python
API builds the same tree as TreeNode records (TreeSource.build). Two independent implementations of one
contract: their texts must be equal, at every depth, on every shipped model and on hostile names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hawkeye_onnx import profile

MODELS = sorted((Path(__file__).resolve().parent.parent / "models").glob("*.onnx"))


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_array_written_json_equals_the_record_tree(model: Path) -> None:
    for depth in (None, 0, 1, 2, 3):
        result = profile(model, batch=2, depth=depth)
        assert result.to_json() == json.dumps(result.to_dict(), ensure_ascii=False) + "\n", depth
