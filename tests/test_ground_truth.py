"""Whole-model totals measured on the real CrypTen 0.4.1 and SPU 0.9.5 (shared/ground-truth), exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import GROUND_TRUTH, ground_truth_cases

CASES = ground_truth_cases("inference")


@pytest.mark.parametrize("case", CASES, ids=[f"{c['framework']}-{c['model']}" for c in CASES])
def test_inference_vectors_exact_via_cli(case: dict) -> None:
    shape = "x".join(str(d) for d in case["input_shape"])
    proc = subprocess.run(
        [sys.executable, "-m", "hawkeye_onnx", "report", str(GROUND_TRUTH / case["model"]), "--backend",
         case["framework"], "--format", "json", "--input-shape", f"input={shape}",
         "--param", f"{case['framework']}.parties={case['parties']}"],
        capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout)
    total = data["backends"][case["framework"]]["total"]["online"]
    assert (total["bytes"], total["rounds"]) == (case["bytes"], case["rounds"])
    assert data["backends"][case["framework"]]["unsupported"] == []


def test_vectors_present() -> None:
    assert len(CASES) >= 4, "shared/ground-truth/vectors.json should list the inference cases"
