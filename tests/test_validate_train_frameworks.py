"""One real training step on CrypTen 0.4.1 and SPU 0.9.5 SEMI2K against `profile_train`, per phase, through
`hawkeye_onnx.validate` (the API of `hawkeye-onnx validate --mode train`).

Tolerances are the training issue's: CrypTen exact in every phase; SPU exact except Adam's update (within
1% bytes, 5% rounds; the 3-party loss+backward gap is pinned in tests/test_training.py from its record).
Each fresh measurement must also equal the run recorded in validation/measured/training/, so those records
(which tests/test_training.py prices) cannot go stale.

Slow and needs the framework environments (`bash validation/setup_envs.sh`):

    python -m pytest -q -m frameworks tests/test_validate_train_frameworks.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest

from hawkeye_onnx.validate import Case, Validation, validate

pytestmark = pytest.mark.frameworks

ROOT = Path(__file__).resolve().parent.parent
MLP = Case(ROOT / "models" / "mlp.onnx", {"input": (1, 784)})
MLP_B2 = Case(ROOT / "models" / "mlp.onnx", {"input": (2, 784)})
MLP_B4 = Case(ROOT / "models" / "mlp.onnx", {"input": (4, 784)})
LENET5 = Case(ROOT / "models" / "lenet5.onnx", {"input": (1, 1, 28, 28)})


class Run(NamedTuple):
    """One framework start: a backend, a party count, one training setup, its models."""

    backend: str
    parties: int
    optimizer: str
    loss: str
    cases: tuple[Case, ...]
    tolerance: float = 0.0


RUNS = {
    "crypten-p2-sgd": Run("crypten", 2, "sgd", "cross-entropy", (MLP, LENET5)),
    "crypten-p2-adam": Run("crypten", 2, "adam", "cross-entropy", (MLP,)),
    "crypten-p3-sgd": Run("crypten", 3, "sgd", "cross-entropy", (MLP,)),
    "crypten-p2-momentum": Run("crypten", 2, "momentum", "mse", (MLP_B4,)),  # step 2 (the buffer exists)
    "semi2k-p2-sgd": Run("semi2k", 2, "sgd", "cross-entropy", (MLP, LENET5)),
    "semi2k-p2-momentum": Run("semi2k", 2, "momentum", "mse", (MLP_B2,)),
    # the training issue's known SPU gap: XLA folds one public product per element of Adam's update
    "semi2k-p2-adam": Run("semi2k", 2, "adam", "mse", (MLP_B4,), tolerance=0.05),
}
_DONE: dict[str, list[Validation]] = {}


def _run(name: str) -> list[Validation]:
    if name not in _DONE:
        r = RUNS[name]
        _DONE[name] = validate(list(r.cases), r.backend, mode="train", parties=r.parties,
                               options={"optimizer": r.optimizer, "loss": r.loss})
    return _DONE[name]


def _recorded(run: Run, case: Case) -> dict | None:
    """The record of this step in validation/measured/training/<backend>.json, if one was filed."""
    doc = json.loads((ROOT / "validation" / "measured" / "training" / f"{run.backend}.json").read_text())
    want = {"model": f"models/{case.model.name}", "inputs": {k: list(v) for k, v in (case.input_shapes or {}).items()},
            "parties": run.parties, "loss": run.loss.replace("-", "_"), "optimizer": run.optimizer}
    return next((c for c in doc["cases"] if all(c.get(k) == v for k, v in want.items())), None)


PARAMS = [(name, i) for name, r in RUNS.items() for i in range(len(r.cases))]


@pytest.mark.parametrize(("name", "index"), PARAMS,
                         ids=[f"{n}-{RUNS[n].cases[i].model.stem}" for n, i in PARAMS])
def test_training_step_static_equals_measured(name: str, index: int) -> None:
    run = RUNS[name]
    v = _run(name)[index]
    detail = json.dumps(v.to_dict())[:800]
    assert v.framework_error is None, detail
    assert v.agrees(run.tolerance), detail
    if run.tolerance:  # only the update is off, and only as much as the issue allows
        assert not v.agrees(0.0)
        assert all(p.within(0.0) for k, p in v.phases.items() if k != "update"), detail
        assert v.phases["update"].bytes_error <= 0.01 and v.phases["update"].rounds_error <= 0.05, detail
    assert "MISMATCH" not in v.check and "vs plain" in v.check, v.check
    phases = {"crypten": ["forward", "loss", "backward", "update"],
              "semi2k": ["forward", "loss+backward", "update"]}[run.backend]
    assert list(v.phases) == phases
    rec = _recorded(run, run.cases[index])
    if rec is not None:
        got = {k: {"bytes": p.measured_bytes, "rounds": p.measured_rounds} for k, p in v.phases.items()}
        assert got == rec["phases"], f"fresh run differs from validation/measured/training: {got}"


def test_the_recorded_runs_were_compared() -> None:
    """At least the mlp SGD steps of both frameworks have a record (otherwise the pin above is vacuous)."""
    assert _recorded(RUNS["crypten-p2-sgd"], MLP) is not None
    assert _recorded(RUNS["semi2k-p2-sgd"], MLP) is not None
    assert _recorded(RUNS["crypten-p3-sgd"], MLP) is not None
    assert _recorded(RUNS["crypten-p2-momentum"], MLP_B4) is not None
