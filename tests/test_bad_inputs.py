"""Every kind of bad input (tests/corpus/build.py) gets a documented exit code and a one-line error that
names the problem and the fix, never a traceback; `--debug` shows the traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from hawkeye_onnx import profile
from tests.corpus.build import CASES, GOOD_CASES, Case, model_file, relu_model

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, needles: tuple[str, ...]) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hawkeye-onnx: error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    path = case.make(tmp_path)
    assert_one_line_error(run(str(path), *case.args, "-f", "json", "-q"), case.code, case.needles)


@pytest.mark.parametrize("case", GOOD_CASES, ids=[c.name for c in GOOD_CASES])
def test_odd_but_fine_input(case: Case, tmp_path: Path) -> None:
    proc = run(str(case.make(tmp_path)), *case.args, "-f", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "dangling_input")
    proc = run(str(case.make(tmp_path)), "--debug")
    assert proc.returncode == case.code
    assert "Traceback" in proc.stderr and "hawkeye-onnx: error: " in proc.stderr


TOY = '''[backend]
name = "toy"

[params.ring_bits]
default = 64

[primitives.open]
args = ["n"]
online = { bytes = "ring_bits // 8 * n", rounds = "1" }

[ops.Relu]
source = "toy.py relu"
steps = [{ prim = "open", n = "n" }]
'''

RULE_CASES = {
    "syntax_error": ('"ring_bits // 8 * n"', '"ring_bits // * n"', 9, "syntax error"),
    "unknown_variable": ('"ring_bits // 8 * n"', '"ring_bitz // 8 * n"', 9, "unknown variable 'ring_bitz'"),
    "division_by_zero": ('"ring_bits // 8 * n"', '"n // 0"', 9, "division by zero"),
    "attribute_access": ('"ring_bits // 8 * n"', '"n.__class__"', 9, "attribute access"),
    "call_outside_whitelist": ('"ring_bits // 8 * n"', '"__import__(\'os\')"', 9, "call of '__import__'"),
    "toml_syntax": ('[ops.Relu]', '[ops.Relu', 11, "TOML syntax error"),
}


@pytest.mark.parametrize("kind", list(RULE_CASES))
def test_broken_rule_file_is_refused_at_load_with_file_and_line(kind: str, tmp_path: Path) -> None:
    old, new, line, needle = RULE_CASES[kind]
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "toy.toml").write_text(TOY.replace(old, new))
    model = next(c for c in GOOD_CASES if c.name == "custom_domain_listed").make(tmp_path)
    proc = run(str(model), "-q", env={"HAWKEYE_ONNX_RULES": str(rules)})
    assert_one_line_error(proc, 4, (f"{rules / 'toy.toml'}:{line}:", needle))


def test_good_rule_folder_prices_the_model(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "toy.toml").write_text(TOY)
    model = model_file("relu.onnx", relu_model)(tmp_path)
    proc = run(str(model), "-f", "json", "-q", env={"HAWKEYE_ONNX_RULES": str(rules)})
    assert proc.returncode == 0, proc.stderr
    assert '"toy"' in proc.stdout and '"bytes": 32' in proc.stdout  # open of 4 elements: 64 // 8 * 4


def test_missing_rules_folder() -> None:
    proc = run("models/lenet5.onnx", env={"HAWKEYE_ONNX_RULES": "/nonexistent/rules"})
    assert_one_line_error(proc, 2, ("HAWKEYE_ONNX_RULES", "no such directory"))


def test_unknown_shapes_leave_no_files_in_the_working_directory(tmp_path: Path) -> None:
    """onnxruntime's shape inference, our fallback, saves `sym_shape_infer_temp.onnx` (and `<uuid>.data`)
    into the working directory when it cannot finish; a user's folder must not fill with them."""
    nodes = [helper.make_node("FancyOp", ["x"], ["f"], name="/c/FancyOp", domain="com.example"),
             helper.make_node("Relu", ["f"], ["y"], name="/act/Relu")]  # f: no shape from onnx nor onnxruntime
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = tmp_path / "models" / "custom.onnx"
    model.parent.mkdir()
    model.write_bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(model), "-q"], capture_output=True,
                          text=True, cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert_one_line_error(proc, 5, ("'f'", "no static shape"))
    assert list(work.iterdir()) == []


def test_json_is_exact_whatever_the_node_names(tmp_path: Path) -> None:
    """The JSON writer splices each backend's tree text in at a marker; a hostile node name that spells the
    marker (or quotes, or non-ASCII) must not corrupt the document."""
    names = ["\x00tree0\x00", '"},{"x": 1', "ünïcode/∑", "\\"]
    nodes = [helper.make_node("FancyOp", ["x"], ["a"], name=names[0], domain="com.example")]
    cur = "x"
    for i, name in enumerate(names):
        nodes.append(helper.make_node("Relu", [cur], [f"r{i}"], name=f"/{name}/Relu"))
        cur = f"r{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    result = profile(model)
    text = result.to_json()
    assert json.loads(text) == json.loads(json.dumps(result.to_dict()))
    assert text == json.dumps(result.to_dict(), ensure_ascii=False) + "\n"
