"""`hawkeye-onnx validate --mode train` without the frameworks: the job the harness receives, the per-phase
comparison (CrypTen's four phases, SPU's loss+backward), verdicts and exit codes. A stand-in interpreter
answers with canned counters; the real runs are in test_validate_train_frameworks.py (marker `frameworks`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_validate import _no_env, fake_python  # noqa: F401 - the stand-in interpreter and its env
from typer.testing import CliRunner

from hawkeye_onnx import validate as V
from hawkeye_onnx.cli import app

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "mlp.onnx"

# validation/measured/training/crypten.json: real CrypTen 0.4.1, mlp 1x784, cross-entropy, SGD, 2 parties
CRYPTEN_MLP_SGD = {"forward": {"bytes": 2023680, "rounds": 21}, "loss": {"bytes": 24272, "rounds": 127},
                   "backward": {"bytes": 1938800, "rounds": 15}, "update": {"bytes": 0, "rounds": 0}}
# validation/measured/training/semi2k.json: real SPU 0.9.5, same step
SPU_MLP_SGD = {"forward": {"bytes": 1943888, "rounds": 22}, "loss+backward": {"bytes": 1266630, "rounds": 146},
               "update": {"bytes": 946256, "rounds": 6}}


def _record(phases: dict, **more: object) -> dict:
    return {"phases": phases, "bytes": sum(p["bytes"] for p in phases.values()),
            "rounds": sum(p["rounds"] for p in phases.values()), **more}


def test_train_is_a_registered_mode() -> None:
    assert "train" in V.MODES


def test_crypten_exact_phases_exit_0_and_the_job_is_a_train_job(tmp_path: Path) -> None:
    rec = _record(CRYPTEN_MLP_SGD, first_loss=0.2273, reference_loss=0.2260)
    py = fake_python(tmp_path, {"results": [rec]})
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "crypten", "--mode", "train", "--python", str(py)])
    assert r.exit_code == 0, r.output
    assert "1,938,800" in r.output and "backward" in r.output and "agree" in r.output
    spec = json.loads((tmp_path / "jobs_seen.json").read_text())
    assert spec["kind"] == "train" and spec["parties"] == 2
    [job] = spec["jobs"]
    assert (job["loss"], job["optimizer"], job["lr"]) == ("cross_entropy", "sgd", 0.01)
    assert job["target_shape"] == [1, 10] and job["inputs"] == {"input": [1, 784]}


def test_options_reach_the_harness(tmp_path: Path) -> None:
    py = fake_python(tmp_path, {"results": [{"error": "stop here"}]})
    CliRunner().invoke(app, ["validate", str(MLP), "-b", "crypten", "--mode", "train", "--python", str(py),
                             "--optimizer", "adam", "--loss", "mse", "--lr", "0.05", "--batch", "4",
                             "--parties", "3"])
    spec = json.loads((tmp_path / "jobs_seen.json").read_text())
    [job] = spec["jobs"]
    assert spec["parties"] == 3 and job["target_shape"] == [4, 10] and job["inputs"] == {"input": [4, 784]}
    assert (job["loss"], job["optimizer"], job["lr"]) == ("mse", "adam", 0.05)


def test_a_byte_moved_between_phases_differs_though_the_total_agrees(tmp_path: Path) -> None:
    phases = json.loads(json.dumps(CRYPTEN_MLP_SGD))
    phases["loss"]["bytes"] += 8
    phases["backward"]["bytes"] -= 8
    py = fake_python(tmp_path, {"results": [_record(phases)]})
    [v] = V.validate(MLP, "crypten", mode="train", python=py)
    assert v.online is not None and v.online.within(0.0)  # the step's total is still exact
    assert not v.agrees(0.0) and not v.agrees(1e-4) and v.agrees(1e-3)  # 8 B of 24,272: 0.033%
    assert v.phases["loss"].measured_bytes == 24280 and v.phases["loss"].static_bytes == 24272
    args = ["validate", str(MLP), "-b", "crypten", "--mode", "train", "--python", str(py)]
    assert CliRunner().invoke(app, args).exit_code == 1
    assert CliRunner().invoke(app, [*args, "--tolerance", "1e-3"]).exit_code == 0


def test_spu_measures_loss_and_backward_together(tmp_path: Path) -> None:
    rec = _record(SPU_MLP_SGD, loss_value=2.17, reference_loss=2.169)
    py = fake_python(tmp_path, {"results": [rec]})
    [v] = V.validate(MLP, "semi2k", mode="train", python=py)
    assert list(v.phases) == ["forward", "loss+backward", "update"]
    assert v.agrees(0.0), v.to_dict()
    assert "vs plain" in v.check and "MISMATCH" not in v.check
    assert v.to_dict()["phases"]["loss+backward"]["measured"] == {"bytes": 1266630, "rounds": 146}


def test_a_wrong_loss_value_is_flagged(tmp_path: Path) -> None:
    py = fake_python(tmp_path, {"results": [_record(SPU_MLP_SGD, loss_value=0.2, reference_loss=2.169)]})
    [v] = V.validate(MLP, "semi2k", mode="train", python=py)
    assert "MISMATCH" in v.check


def test_a_refused_training_step_differs(tmp_path: Path) -> None:
    py = fake_python(tmp_path, {"results": [{"error": "backward: RuntimeError: no grad"}]})
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "crypten", "--mode", "train", "--python", str(py)])
    assert r.exit_code == 1 and "no grad" in r.output


@pytest.mark.parametrize("bad", [["--optimizer", "lamb"], ["--loss", "hinge"], ["--lr", "0"]])
def test_bad_training_options_are_bad_input(tmp_path: Path, bad: list[str]) -> None:
    py = fake_python(tmp_path, {"results": []})
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "crypten", "--mode", "train", "--python", str(py),
                                 *bad])
    assert r.exit_code == 2, r.output


def test_json_output_has_every_phase(tmp_path: Path) -> None:
    py = fake_python(tmp_path, {"results": [_record(CRYPTEN_MLP_SGD)]})
    out = tmp_path / "v.json"
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "crypten", "--mode", "train", "--python", str(py),
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    [d] = json.loads(out.read_text())
    assert d["mode"] == "train" and d["agrees"] and set(d["phases"]) == {"forward", "loss", "backward", "update"}
    assert d["phases"]["backward"]["static"] == {"bytes": 1938800, "rounds": 15}


def test_every_job_kind_has_a_harness_module() -> None:
    """run.py maps (backend, kind) to a module shipped beside it (an installed package can run it)."""
    from hawkeye_onnx.harness import run

    for (backend, kind), (module, _) in run.MODULES.items():
        assert (Path(run.__file__).parent / f"{module}.py").exists(), (backend, kind)
    assert {k for _, k in run.MODULES} == set(V.MODES)
