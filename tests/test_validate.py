"""`hawkeye-onnx validate` without the frameworks: interpreter discovery, the harness protocol, verdicts and
exit codes. A stand-in interpreter (a shell script) answers for the framework with canned counters; the
real runs are in test_validate_frameworks.py (marker `frameworks`)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hawkeye_onnx import validate as V
from hawkeye_onnx.cli import app

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "mlp.onnx"
# shared/ground-truth/README.md, "Whole models": mlp.onnx 1x784, 2 parties
CRYPTEN_MLP = {"bytes": 2023680, "rounds": 21}
SPU_MLP = {"bytes": 1943888, "rounds": 22}


def fake_python(tmp_path: Path, answer: dict) -> Path:
    """An 'interpreter' that keeps the job spec it got (argv[3]) as jobs_seen.json and writes `answer` where
    the harness would write its results (argv[4])."""
    data = tmp_path / "answer.json"
    data.write_text(json.dumps(answer))
    exe = tmp_path / "python"
    exe.write_text(f'#!/bin/sh\ncp "$3" "{tmp_path}/jobs_seen.json"\ncp "{data}" "$4"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for fw in V.FRAMEWORKS.values():
        monkeypatch.delenv(fw.env_var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(V, "PROJECT", tmp_path / "nowhere")


def test_missing_framework_exit_6_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(V.importlib.util, "find_spec", lambda name: None)
    r = CliRunner().invoke(app, ["validate", str(MLP), "--backend", "crypten"])
    assert r.exit_code == 6
    assert "setup_envs.sh crypten" in r.output and "HAWKEYE_CRYPTEN_PYTHON" in r.output


def test_framework_that_does_not_import_is_missing(tmp_path: Path) -> None:
    py = fake_python(tmp_path, {"missing": "ModuleNotFoundError: No module named 'spu'"})
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "semi2k", "--python", str(py)])
    assert r.exit_code == 6 and "No module named 'spu'" in r.output


def test_env_var_and_default_venv_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_py = tmp_path / ".venv-spu" / "bin" / "python"
    venv_py.parent.mkdir(parents=True)
    venv_py.write_text("")
    assert V.framework_python("semi2k") == venv_py
    assert V.framework_python("semi2k", ".venv-spu/bin/python") == venv_py  # relative: made absolute
    monkeypatch.setenv("HAWKEYE_SPU_PYTHON", sys.executable)
    assert V.framework_python("semi2k") == Path(sys.executable)


def test_exact_agreement_exits_0(tmp_path: Path) -> None:
    py = fake_python(tmp_path, {"results": [{**SPU_MLP, "max_abs_err": 1e-5, "matches_reference": True}]})
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "semi2k", "--python", str(py)])
    assert r.exit_code == 0, r.output
    assert "1,943,888" in r.output and "agree" in r.output and "not measurable" in r.output


def test_one_byte_off_exits_1_and_tolerance_accepts_it(tmp_path: Path) -> None:
    off = {**SPU_MLP, "bytes": SPU_MLP["bytes"] + 1}
    py = fake_python(tmp_path, {"results": [off]})
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "semi2k", "--python", str(py)])
    assert r.exit_code == 1 and "DIFFER" in r.output
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "semi2k", "--python", str(py), "--tolerance", "1e-6"])
    assert r.exit_code == 0


def test_crypten_offline_from_the_ttp_meter(tmp_path: Path) -> None:
    # validation/crypten/NOTES.md: mlp P=2 under TTP, 21 requests of 4,106 elements -> 32,848 B, 63 logged rounds
    ttp = {"requests": 21, "elements": 4106, "logged_rounds": 63}
    py = fake_python(tmp_path, {"results": [{**CRYPTEN_MLP, "ttp": ttp}]})
    [v] = V.validate(MLP, "crypten", python=py)
    assert v.offline is not None and (v.offline.measured_bytes, v.offline.measured_rounds) == (32848, 63)
    assert v.agrees()


def test_a_refusal_agrees_only_with_an_unsupported_profile(tmp_path: Path) -> None:
    py = fake_python(tmp_path, {"results": [{"error": "crypten.nn.from_onnx: ValueError: no Gemm"}]})
    [v] = V.validate(MLP, "crypten", python=py, offline=False)
    assert v.framework_error and not v.unsupported and not v.agrees()
    tanh = ROOT / "models" / "mlp_tanh_softmax.onnx"  # CrypTen cannot load Tanh; the profile says so
    [v] = V.validate(tanh, "crypten", python=py, offline=False)
    assert v.unsupported == ("Tanh",) and v.agrees()


def test_unknown_mode_and_backend_are_bad_options(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "crypten", "--mode", "nope"])
    assert r.exit_code == 2 and "infer" in r.output
    r = CliRunner().invoke(app, ["validate", str(MLP), "-b", "cheetah"])
    assert r.exit_code == 2 and "crypten or semi2k" in r.output


def test_a_registered_mode_is_dispatched(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setitem(V.MODES, "probe", lambda req: seen.append(req) or [])
    assert V.validate(MLP, "semi2k", mode="probe", parties=3) == []
    assert seen[0].parties == 3 and seen[0].backend == "semi2k" and seen[0].cases == (V.Case(MLP),)


def test_free_batch_dim_binds_to_1_unless_batch_binds_it() -> None:
    assert V.bind_free_dims(MLP, None, None) == {"input": (1, 784)}
    assert V.bind_free_dims(MLP, None, 4) is None  # --batch binds dim 0 in profile()
    assert V.bind_free_dims(MLP, {"input": (2, 784)}, None) == {"input": (2, 784)}
