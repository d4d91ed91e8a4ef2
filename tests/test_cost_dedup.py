"""The cost stage evaluates a rule once per distinct row of node variables and spreads the results back
(`cost.DEDUP_MIN`, `cost._row_classes`): every profile must equal the one evaluated node by node."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hawkeye_onnx import cost, profile, zoo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench  # noqa: E402  (benchmarks/bench.py: the synthetic big model, here at 2,000 nodes)

MODELS = ROOT / "models"


def _both(model: object, monkeypatch: pytest.MonkeyPatch, **kw: object) -> tuple[str, str]:
    """The profile's JSON with every group of 2+ nodes deduplicated, and with none."""
    monkeypatch.setattr(cost, "DEDUP_MIN", 2)
    fast = profile(model, **kw).to_json()
    monkeypatch.setattr(cost, "DEDUP_MIN", 1 << 62)
    slow = profile(model, **kw).to_json()
    return fast, slow


@pytest.mark.parametrize("name", ["resnet_cifar_bn.onnx", "transformer_block_dynamo.onnx", "keras_cnn_tf2onnx.onnx",
                                  "mobilenet_block.onnx"])
def test_models_price_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = _both(MODELS / name, monkeypatch, batch=2)
    assert fast == slow and '"bytes": ' in fast


def test_zoo_and_synthetic_models_price_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many repeated blocks (the case dedup is for), with a node set that picks some of them (Delphi's
    quadratic ReLUs: a per-backend variable that splits classes)."""
    params = {"delphi": {"approx_relu": "/layer1/*,/stage0/block1/*"}}
    fast, slow = _both(zoo.build("resnet32_cifar"), monkeypatch, params=params)
    assert fast == slow
    big = bench.build(2000, tmp_path)
    fast, slow = _both(big, monkeypatch, params=params)
    assert fast == slow


def test_row_classes_are_exact_when_the_hash_collides(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every multiplier 1 the hash is the row sum: (1, 2) and (2, 1) collide; the rows are then compared."""
    monkeypatch.setattr(cost, "_HASH", np.ones(256, dtype=np.int64))
    env = {"a": np.array([1, 2, 1, 3]), "b": np.array([2.0, 1.0, 2.0, 0.0]), "k": 7}
    classes = cost._row_classes(env, 4)
    assert classes is not None
    assert classes[0] == classes[2] and len({int(classes[0]), int(classes[1]), int(classes[3])}) == 3


def test_row_classes_tell_floats_apart_by_value() -> None:
    env = {"x": np.array([1.5, 1.7, 1.5], dtype=np.float32), "n": np.array([True, True, True])}
    classes = cost._row_classes(env, 3)
    assert classes is not None and classes[0] == classes[2] != classes[1]
    assert cost._row_classes({"o": np.array(["a", "b"], dtype=object)}, 2) is None  # not numbers: no dedup
