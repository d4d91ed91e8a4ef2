"""Shared fixtures: paths to the ground truth and the repo's models, and a CLI runner."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # validation.opzoo builds the single-op models

SHARED = Path(os.environ.get("HAWKEYE_SHARED", ROOT.parent / "shared"))
GROUND_TRUTH = SHARED / "ground-truth"
MODELS = ROOT / "models"


def ground_truth_cases(mode: str) -> list[dict]:
    """Cases of shared/ground-truth/vectors.json (measured on the real frameworks)."""
    path = GROUND_TRUTH / "vectors.json"
    if not path.exists():
        return []
    return [c for c in json.loads(path.read_text())["cases"] if c["mode"] == mode]


@pytest.fixture
def gt_dir() -> Path:
    if not GROUND_TRUTH.exists():
        pytest.skip("shared/ground-truth is not beside the project")
    return GROUND_TRUTH
