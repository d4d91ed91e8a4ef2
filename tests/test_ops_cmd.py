"""`hawkeye-onnx ops` (op coverage per backend, per model), the generated docs/coverage.md, and `hawkeye-onnx zoo`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from test_zoo import PUBLISHED_PARAMETERS

import hawkeye_onnx
from hawkeye_onnx.cli_ops import coverage, coverage_markdown
from hawkeye_onnx.rules import load_backend

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"

RULES = '''
[backend]
name = "toy"
title = "Toy"
unknown_op = "toy cannot load this op"

[primitives.mul]
args = ["n"]
online = { bytes = "8 * n", rounds = "1" }

[free]
ops = ["Reshape"]
source = "local"

[ops.Relu]
source = "toy relu"
steps = [{ prim = "mul", n = "n" }]

[ops.Softmax]
source = "toy"
unsupported = "toy has no exponential"

[ops.ReduceMean]
source = "toy mean"
variants = [{ when = "not axes_input", steps = [{ prim = "mul", n = "n" }] }]

[ops.Conv]
source = "toy conv"
variants = [
  { when = "groups == 1", steps = [{ prim = "mul", n = "n" }] },
  { unsupported = "toy has no grouped convolution" },
]
'''


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hawkeye_onnx", *args], capture_output=True, text=True, cwd=ROOT)


def test_coverage_status_from_a_rule_file(tmp_path: Path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(RULES)
    toy = load_backend(path)
    assert coverage(toy, "Relu").status == "priced"
    assert coverage(toy, "Reshape").status == "free"
    assert coverage(toy, "Softmax") == ("unsupported", ("toy has no exponential",))
    assert coverage(toy, "Conv") == ("partial", ("toy has no grouped convolution",))
    mean = coverage(toy, "ReduceMean")
    assert mean.status == "partial" and "not axes_input" in mean.reasons[0]
    assert coverage(toy, "Gelu") == ("no rule", ("toy cannot load this op",))
    ml = coverage(toy, "ai.onnx.ml::ZipMap")
    assert ml.status == "unsupported" and "ai.onnx.ml domain" in ml.reasons[0] and "Toy" in ml.reasons[0]


def test_committed_coverage_doc_is_up_to_date() -> None:
    """docs/coverage.md is generated: regenerate it with `hawkeye-onnx ops --format md -o docs/coverage.md`."""
    assert (ROOT / "docs" / "coverage.md").read_text(encoding="utf-8") == coverage_markdown()


def test_coverage_doc_names_every_unsupported_case_with_a_reason() -> None:
    text = (ROOT / "docs" / "coverage.md").read_text(encoding="utf-8")
    assert "| models/sklearn\\_logreg.onnx |" in text and "| zoo bert\\_base |" in text
    assert "ai.onnx.ml::ZipMap ×1" in text
    assert "- **LayerNormalization** (unsupported): crypten.nn.from\\_onnx cannot load" in text


def test_ops_lists_every_backend() -> None:
    proc = run("ops")
    assert proc.returncode == 0, proc.stderr
    for name in ("crypten", "semi2k", "Conv", "LayerNormalization", "priced", "free"):
        assert name in proc.stdout


def test_ops_on_a_model_names_the_unsupported_nodes() -> None:
    proc = run("ops", "models/sklearn_mlp.onnx", "--batch", "4", "-b", "crypten,semi2k")
    assert proc.returncode == 0, proc.stderr
    assert "unsupported on semi2k: ai.onnx.ml::ZipMap (1 nodes)" in " ".join(proc.stdout.split())
    assert "MatMul" in proc.stdout and "priced" in proc.stdout


@pytest.mark.parametrize(("args", "code", "needle"), [
    (("ops", "models/mlp.onnx", "-f", "md"), 2, "drop MODEL"),
    (("ops", "-f", "html"), 2, "--format"),
    (("ops", "models/mlp.onnx"), 5, "--batch"),
    (("zoo", "alexnet", "-o", "x.onnx"), 2, "unknown zoo model"),
    (("zoo", "resnet50", "--seq", "128", "-o", "x.onnx"), 2, "not a sequence model"),
    (("zoo", "resnet50"), 2, "-o resnet50.onnx"),
    (("zoo", "bert_base", "--seq", "513", "-o", "x.onnx"), 2, "outside 1..512"),
])
def test_bad_arguments_give_one_line_errors(args: tuple[str, ...], code: int, needle: str) -> None:
    proc = run(*args)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hawkeye-onnx: error: ") and needle in lines[0], proc.stderr


def test_zoo_lists_the_architectures() -> None:
    proc = subprocess.run([sys.executable, "-m", "hawkeye_onnx", "zoo"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    # parameter counts as published (torchvision's ResNet-50, Hugging Face's BertModel; test_zoo.py)
    for name in ("resnet50", "bert_base", "gpt2_small", "densenet121"):
        assert name in proc.stdout
    for name in ("resnet50", "bert_base"):
        assert f"{PUBLISHED_PARAMETERS[name]:,}" in proc.stdout, name


def test_zoo_writes_bert_at_seq_512(tmp_path: Path) -> None:
    out = tmp_path / "bert512.onnx"
    proc = run("zoo", "bert_base", "--seq", "512", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and (tmp_path / "bert512.onnx.data").exists()
    model = onnx.load(str(out), load_external_data=False)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 512]
    prof = hawkeye_onnx.profile(out, backends=["semi2k"])
    assert prof.model.parameters > 100_000_000
    assert prof.backends["semi2k"].total.online.bytes > 0
