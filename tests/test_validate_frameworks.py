"""The real frameworks against the static profile: every model in models/ and shared/ground-truth/models,
CrypTen 0.4.1 and SPU 0.9.5 SEMI2K, inference, 2 and 3 parties, through `hawkeye_onnx.validate` (the API of
`hawkeye-onnx validate`). Exact agreement, online and (CrypTen) offline.

Slow and needs the framework environments (`bash validation/setup_envs.sh`), so it runs only when asked:

    python -m pytest -q -m frameworks

It also pins the recorded measurements the README table is made from (validation/measured/*_models.json):
a fresh run must reproduce them, so the table cannot go stale.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hawkeye_onnx.validate import Case, Validation, validate

pytestmark = pytest.mark.frameworks

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "ground-truth" / "models"
BACKENDS = ("crypten", "semi2k")
PARTIES = (2, 3)


def _cases() -> dict[str, Case]:
    out = {}
    for m in json.loads((ROOT / "models" / "index.json").read_text()):
        out[m["file"].removesuffix(".onnx")] = Case(ROOT / "models" / m["file"],
                                                     {k: tuple(v) for k, v in m["inputs"].items()})
    # shared/ground-truth/README.md: mlp.onnx measured at 1x784, lenet5.onnx at 1x1x28x28
    gt_shapes = {"mlp": (1, 784), "lenet5": (1, 1, 28, 28)}
    for name, shape in gt_shapes.items():
        if (SHARED_MODELS / f"{name}.onnx").exists():
            out[f"gt_{name}"] = Case(SHARED_MODELS / f"{name}.onnx", {"input": shape})
    return out


CASES = _cases()

#: shared/ground-truth/README.md "Whole models" (2 parties): (rounds, bytes) measured on the real frameworks
GROUND_TRUTH = {
    ("crypten", "gt_mlp"): (21, 2_023_680),
    ("crypten", "gt_lenet5"): (133, 9_544_544),
    ("semi2k", "gt_mlp"): (22, 1_943_888),
    ("semi2k", "gt_lenet5"): (74, 2_294_288),
}


def _recorded() -> dict[tuple[str, str, int], dict]:
    """Online records of validation/measured/*_models.json (the README table's source), TFP / split runs."""
    out: dict[tuple[str, str, int], dict] = {}
    for path in sorted((ROOT / "validation" / "measured").glob("*_models*.json")):
        for r in json.loads(path.read_text()):
            if r.get("provider") == "TTP":
                continue
            key = (r["framework"], r["case"], r["parties"])
            if key not in out or "bytes" in r:  # SPU's grouped-conv split run replaces the refused direct run
                out[key] = r
    return out


RECORDED = _recorded()
_RUNS: dict[tuple[str, int], dict[str, Validation]] = {}


@pytest.fixture(scope="module")
def run() -> Callable[[str, int], dict[str, Validation]]:
    """All cases on one backend at one party count, in one framework start (cached for the module)."""

    def get(backend: str, parties: int) -> dict[str, Validation]:
        if (backend, parties) not in _RUNS:
            results = validate(list(CASES.values()), backend, parties=parties)
            _RUNS[backend, parties] = dict(zip(CASES, results, strict=True))
        return _RUNS[backend, parties]

    return get


@pytest.mark.parametrize("parties", PARTIES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_static_equals_measured(run: Callable, backend: str, parties: int, name: str) -> None:
    v = run(backend, parties)[name]
    detail = json.dumps(v.to_dict())[:600]
    assert v.agrees(0.0), detail
    if v.online is not None:
        assert v.check.startswith("output vs onnx reference") and "MISMATCH" not in v.check, detail
    if backend == "crypten" and v.online is not None:
        assert v.offline is not None, f"no offline measurement: {v.offline_note}"


@pytest.mark.parametrize("key", sorted(GROUND_TRUTH))
def test_measured_equals_shared_ground_truth(run: Callable, key: tuple[str, str]) -> None:
    backend, name = key
    if name not in CASES:
        pytest.skip("shared/ground-truth is not beside the project")
    v = run(backend, 2)[name]
    assert v.online is not None, v.framework_error
    assert (v.online.measured_rounds, v.online.measured_bytes) == GROUND_TRUTH[key]


@pytest.mark.parametrize("parties", PARTIES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fresh_runs_reproduce_the_recorded_table(run: Callable, backend: str, parties: int) -> None:
    """The README table is printed from validation/measured; a fresh run must give the same numbers."""
    fresh = run(backend, parties)
    compared = 0
    for name, v in fresh.items():
        rec = RECORDED.get((backend, name, parties))
        if rec is None:
            continue
        compared += 1
        if rec.get("bytes") is None:
            assert v.online is None, f"{name}: recorded as refused ({rec.get('error')}), now runs"
        else:
            assert v.online is not None, f"{name}: recorded {rec['bytes']} B, now refused: {v.framework_error}"
            assert (v.online.measured_bytes, v.online.measured_rounds) == (rec["bytes"], rec["rounds"]), name
    assert compared >= 10
