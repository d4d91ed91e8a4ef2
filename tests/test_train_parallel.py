"""On a big model the training profiler prices its autodiff styles side by side: every style but the first
in a forked child, which sends each backend's report with its tree as JSON text (training/profile.py).
HAWKEYE_ONNX_OVERLAP_NODES=0 forces that path on the small models here; the reference is the in-process
path (the default below 20k nodes). It must give the very same report, the same one-line errors, and leave
no child process behind; a child that dies is replaced by the same work in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import counting, first_then_killed, no_children

from hawkeye_onnx import background
from hawkeye_onnx.result import SpilledTree
from hawkeye_onnx.training import profile as tp
from hawkeye_onnx.training import profile_train
from hawkeye_onnx.training.expand import TrainOptions
from tests.corpus.build import CASES, GOOD_CASES, Case

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["resnet_cifar_bn", "transformer_block", "mlp", "lenet5_dynamo", "mobilenet_block", "keras_cnn_tf2onnx"]
RUNS = [TrainOptions(optimizer="sgd"), TrainOptions(optimizer="adam", loss="mse")]

pytestmark = pytest.mark.skipif(not background.AVAILABLE, reason="no os.fork here: the styles run in-process")


@pytest.mark.parametrize("name", MODELS)
def test_styles_side_by_side_give_the_same_report(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = ROOT / "models" / f"{name}.onnx"
    reference = profile_train(model, RUNS, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    result = profile_train(model, RUNS, batch=2)
    assert any(isinstance(r.__dict__["_tree"], SpilledTree) for r in result.backends.values())  # sent by a child
    assert result.to_json() == reference
    # the records read back from a sent tree's text are the tree the in-process path builds
    assert json.dumps(result.to_dict(), ensure_ascii=False) + "\n" == reference
    assert no_children()


@pytest.mark.parametrize("name", ["logreg_sigmoid", "sklearn_logreg", "sklearn_mlp"])
def test_untrainable_models_get_the_same_answer(name: str) -> None:
    def run(overlap: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(ROOT / "models" / f"{name}.onnx"),
                               "--mode", "train", "--batch", "2", "-f", "json", "-q"], capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, "HAWKEYE_ONNX_OVERLAP_NODES": overlap})

    parallel, reference = run("0"), run("1000000000")
    assert reference.returncode != 0 and reference.stderr.count("\n") == 1
    assert (parallel.returncode, parallel.stderr, parallel.stdout) == \
        (reference.returncode, reference.stderr, reference.stdout)


def test_a_killed_style_child_is_replaced_by_the_work_done_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child of the three-backend style (cryptflow2, cheetah, delphi) sends one report, then dies: the
    parent prices that style itself."""
    model = ROOT / "models" / "resnet_cifar_bn.onnx"
    reference = profile_train(model, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    here: list = []
    monkeypatch.setattr(tp, "_style_reports_sent", first_then_killed(tp._style_reports_sent))
    monkeypatch.setattr(tp, "_style_reports", counting(tp._style_reports, here))
    assert profile_train(model, batch=2).to_json() == reference
    assert [args[1].style for args in here] == ["crypten", "onnx"]  # the first style, then the lost one
    assert no_children()


@pytest.mark.parametrize("workers", [1, 2])
def test_fewer_workers_than_styles_give_the_same_report(workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With memory for fewer styles at once: one child prices two styles one after the other (2), or every
    style runs here in turn, its trees made text at once (1)."""
    model = ROOT / "models" / "transformer_block.onnx"
    reference = profile_train(model, RUNS, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    monkeypatch.setattr(tp, "style_workers", lambda styles, nodes: min(styles, workers))
    here: list = []
    monkeypatch.setattr(tp, "_style_reports", counting(tp._style_reports, here))
    result = profile_train(model, RUNS, batch=2)
    assert all(isinstance(r.__dict__["_tree"], SpilledTree) for r in result.backends.values())
    assert result.to_json() == reference
    assert len(here) == (3 if workers == 1 else 1) * len(RUNS)  # the styles priced here, per run
    assert no_children()


def test_a_child_killed_after_its_first_style_leaves_the_second_to_the_parent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One child prices the jax style (semi2k), sends it, and dies in the onnx style: the parent prices that."""
    model = ROOT / "models" / "resnet_cifar_bn.onnx"
    reference = profile_train(model, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    monkeypatch.setattr(tp, "style_workers", lambda styles, nodes: 2)
    here: list = []
    monkeypatch.setattr(tp, "_style_reports_sent", first_then_killed(tp._style_reports_sent))
    monkeypatch.setattr(tp, "_style_reports", counting(tp._style_reports, here))
    assert profile_train(model, batch=2).to_json() == reference
    assert [args[1].style for args in here] == ["crypten", "onnx"]
    assert no_children()


def test_style_workers_follow_the_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    per_style = tp.STYLE_BYTES_PER_NODE * 1_000_000
    for avail, expected in [(None, 3), (100 * per_style, 3), (2.6 * per_style, 2), (1.3 * per_style, 1),
                            (0.1 * per_style, 1)]:
        monkeypatch.setattr(tp, "_available_memory", lambda a=avail: None if a is None else int(a))
        assert tp.style_workers(3, 1_000_000) == expected, avail


def test_available_memory_is_read_from_meminfo() -> None:
    avail = tp._available_memory()
    assert avail is not None and 0 < avail <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@pytest.mark.parametrize("overlap", ["0", "1000000000"])
def test_training_reports_its_stages(overlap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading, then each run's autodiff styles, each once, counted up to the last: the CLI's progress bar has
    something to show for the minutes a big model's styles take."""
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", overlap)
    calls: list[tuple[str, int, int]] = []
    profile_train(ROOT / "models" / "mlp.onnx", RUNS, batch=2, progress=lambda *a: calls.append(a))
    assert calls[0][:2] == ("reading the model and inferring shapes", 0)
    styles = calls[1:]
    assert [done for _, done, _ in styles] == list(range(1, 1 + 3 * len(RUNS)))
    assert {total for _, _, total in styles} == {1 + 3 * len(RUNS)}
    for style in ("crypten", "jax", "onnx"):
        assert sum(f", {style} autodiff" in stage for stage, _, _ in styles) == len(RUNS)
    assert any("background" in stage for stage, _, _ in styles) == (overlap == "0")


def test_the_cli_writes_spilled_trees_as_the_report_has_them(tmp_path: Path) -> None:
    """From a big model (here: forced), the trees are in spill files and the CLI copies them into its output:
    the file equals the in-process report's JSON, and so does stdout."""
    model = ROOT / "models" / "transformer_block.onnx"
    reference = profile_train(model, TrainOptions(), batch=2).to_json()
    out = tmp_path / "train.json"
    for target in (["-o", str(out)], []):
        run = subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(model), "--mode", "train",
                              "--batch", "2", "-f", "json", "-q", *target], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "HAWKEYE_ONNX_OVERLAP_NODES": "0"})
        assert run.returncode == 0, run.stderr
        assert (out.read_text(encoding="utf-8") if target else run.stdout) == reference


def test_a_model_too_big_for_the_free_memory_gets_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When even one autodiff style may not fit in the free memory, the user hears it before the kernel's
    out-of-memory killer stops the run with nothing but exit code 137: one warning line, and the run goes on."""
    from typer.testing import CliRunner

    from hawkeye_onnx.cli import app
    from hawkeye_onnx.errors import HawkeyeWarning

    model = ROOT / "models" / "mlp.onnx"
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    out = tmp_path / "train.json"
    args = ["report", str(model), "--mode", "train", "--batch", "2", "-b", "crypten", "-f", "json", "-q",
            "-o", str(out)]
    monkeypatch.setattr(tp, "_available_memory", lambda: 1000)
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0 and json.loads(out.read_text(encoding="utf-8"))["mode"] == "train"
    warned = [line for line in run.output.splitlines() if line.startswith("hawkeye-onnx: warning: ")]
    assert len(warned) == 1 and "exit code 137" in warned[0] and "0.0 GiB is available" in warned[0]
    with pytest.warns(HawkeyeWarning, match="free memory"):
        profile_train(model, TrainOptions(), backends=["crypten"], batch=2)
    monkeypatch.setattr(tp, "_available_memory", lambda: 1 << 40)
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0 and "warning" not in run.output


@pytest.mark.parametrize("case", CASES + GOOD_CASES, ids=[c.name for c in CASES + GOOD_CASES])
def test_bad_inputs_read_alongside_shape_inference_get_the_same_answer(case: Case, tmp_path: Path) -> None:
    """A big model is checked and read while a child infers its shapes (`_load_alongside`): every bad input
    must get the answer it gets in-process, exit code and one line."""
    path = case.make(tmp_path)

    def run(overlap: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(path), *case.args, "--mode", "train",
                               "-f", "json", "-q"], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "HAWKEYE_ONNX_OVERLAP_NODES": overlap})

    overlapped, reference = run("0"), run("1000000000")
    assert (overlapped.returncode, overlapped.stderr, overlapped.stdout) == \
        (reference.returncode, reference.stderr, reference.stdout)


def test_a_killed_shape_inference_child_leaves_the_inference_to_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ROOT / "models" / "resnet_cifar_bn.onnx"
    reference = profile_train(model, RUNS, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    monkeypatch.setattr(tp, "child_bound", lambda *a: os.kill(os.getpid(), 9))  # the child dies before inferring
    assert profile_train(model, RUNS, batch=2).to_json() == reference
    assert no_children()
