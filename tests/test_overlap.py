"""Big models infer their shapes in a forked child while the IR's structure is read (profile.py,
background.py). The overlapped path must give the very same report, the same one-line errors (raised in
the child or in the parent), and leave no child process behind. HAWKEYE_ONNX_OVERLAP_NODES=0 forces it
on the small models here; the reference is the in-process path (the default below 20k nodes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import counting, first_then_killed, no_children

from hawkeye_onnx import background, profile
from tests.corpus.build import CASES, GOOD_CASES, Case

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.onnx"))

pytestmark = pytest.mark.skipif(not background.AVAILABLE, reason="no os.fork here: the pipeline runs in-process")


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_overlapped_report_equals_in_process(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = profile(model, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    assert profile(model, batch=2).to_json() == reference
    assert no_children()


def _run(path: Path, args: tuple[str, ...], overlap: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HAWKEYE_ONNX_OVERLAP_NODES": overlap}
    return subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(path), *args, "-f", "json", "-q"],
                          capture_output=True, text=True, cwd=ROOT, env=env)


@pytest.mark.parametrize("case", CASES + GOOD_CASES, ids=[c.name for c in CASES + GOOD_CASES])
def test_overlapped_bad_inputs_get_the_same_answer(case: Case, tmp_path: Path) -> None:
    path = case.make(tmp_path)
    overlapped = _run(path, case.args, "0")
    reference = _run(path, case.args, "1000000000")
    assert (overlapped.returncode, overlapped.stderr, overlapped.stdout) == \
        (reference.returncode, reference.stderr, reference.stdout)


def test_a_bad_setting_is_a_one_line_error() -> None:
    proc = _run(MODELS[0], ("--batch", "1"), "many")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "HAWKEYE_ONNX_OVERLAP_NODES" in proc.stderr


def test_a_killed_worker_is_replaced_by_the_work_done_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel may kill the forked child (out of memory): the parent then infers the shapes itself."""
    model = MODELS[0]
    reference = profile(model, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    real = background.Pending.__init__

    def killed(self: background.Pending, fn: object) -> None:
        real(self, lambda: os.kill(os.getpid(), 9))

    monkeypatch.setattr(background.Pending, "__init__", killed)
    result = profile(model, batch=2)
    assert result.to_json() == reference
    assert no_children()


def test_a_worker_killed_after_the_shapes_leaves_the_module_index_to_the_parent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The child sends the shapes, then dies before the module index: the parent makes the index itself."""
    pipeline = sys.modules["hawkeye_onnx.profile"]  # the module (the package exports the function by its name)
    model = MODELS[0]
    reference = profile(model, batch=2).to_json()
    monkeypatch.setenv("HAWKEYE_ONNX_OVERLAP_NODES", "0")
    made_here: list = []
    monkeypatch.setattr(pipeline, "_background_work", first_then_killed(pipeline._background_work))
    monkeypatch.setattr(pipeline, "_module_index", counting(pipeline._module_index, made_here))
    assert profile(model, batch=2).to_json() == reference
    assert len(made_here) == 1 and no_children()
