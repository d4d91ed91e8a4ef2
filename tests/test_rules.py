"""Rule files: the formula whitelist (never eval) and `file:line` errors for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hawkeye_onnx.errors import RuleError
from hawkeye_onnx.expr import compile_expr
from hawkeye_onnx.rules import load_backend, load_backends, rules_dir

GOOD = '''
[backend]
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


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text(text)
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    b = load_backend(write(tmp_path, GOOD))
    assert b.name == "toy" and "Relu" in b.ops and b.param_values["ring_bits"] == 64


@pytest.mark.parametrize("bad,line,needle", [
    (GOOD.replace('rounds = "1"', 'rounds = "1 +"'), 10, "syntax error"),
    (GOOD.replace('"ring_bits // 8 * n"', '"ring_bitz // 8 * n"'), 10, "unknown variable 'ring_bitz'"),
    (GOOD.replace('"ring_bits // 8 * n"', '"n / 0"'), 10, "division by zero"),
    (GOOD.replace('"ring_bits // 8 * n"', '"n.__class__"'), 10, "attribute access"),
    (GOOD.replace('"ring_bits // 8 * n"', '"__import__(\'os\')"'), 10, "call of '__import__'"),
    (GOOD.replace('"ring_bits // 8 * n"', '"(lambda: 1)()"'), 10, "not allowed"),
    (GOOD.replace('"ring_bits // 8 * n"', '"n[0]"'), 10, "subscript"),
    (GOOD.replace('"ring_bits // 8 * n"', '"open"'), 10, "unknown variable 'open'"),
    (GOOD.replace('n = "n" }]', 'n = "width" }]'), 14, "unknown variable 'width'"),
    (GOOD.replace('prim = "open"', 'prim = "close"'), 14, "unknown primitive 'close'"),
    (GOOD.replace('n = "n" }]', 'm = "n" }]'), 14, "missing argument 'n'"),
    (GOOD.replace('source = "toy.py relu"\n', ''), 12, "must cite its source"),
    (GOOD.replace("[params.ring_bits]\ndefault = 64", "[params.ring_bits]\ndefault = [1]"), 5, "default"),
    (GOOD.replace('[ops.Relu]', '[ops.Relu'), 12, "TOML syntax error"),
])
def test_broken_rule_file_names_file_and_line(tmp_path: Path, bad: str, line: int, needle: str) -> None:
    path = write(tmp_path, bad)
    with pytest.raises(RuleError) as err:
        load_backend(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}:"), msg
    assert needle in msg, msg
    assert "\n" not in msg


def test_cycle_between_primitives(tmp_path: Path) -> None:
    text = GOOD + '''
[primitives.a]
args = ["n"]
steps = [{ prim = "b", n = "n" }]

[primitives.b]
args = ["n"]
steps = [{ prim = "a", n = "n" }]
'''
    with pytest.raises(RuleError, match="defined in terms of itself"):
        load_backend(write(tmp_path, text))


def test_formulas_are_vectorised_and_integer() -> None:
    e = compile_expr("ceil_div(n, 4) + max(n, 3) * 2 + where(n > 5, 1, 0)")
    out = e({"n": np.array([1, 4, 9], dtype=np.int64)})
    assert out.tolist() == [1 + 6 + 0, 1 + 8 + 0, 3 + 18 + 1]
    assert out.dtype == np.int64


@pytest.mark.parametrize("x,want", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (64, 6), (65, 7), (2**40, 40)])
def test_ceil_log2_exact(x: int, want: int) -> None:
    assert compile_expr("ceil_log2(x)")({"x": np.array([x])}).tolist() == [want]


def test_shipped_rule_files_load_and_cite_sources() -> None:
    backends = load_backends()
    assert [b.name for b in backends][:2] == ["crypten", "semi2k"]
    for b in backends:
        for op, rule in b.ops.items():
            assert rule.source, f"{b.name}: {op} has no source"
        for name, prim in b.primitives.items():
            assert prim.source, f"{b.name}: primitive {name} has no source"
    assert (rules_dir() / "crypten.toml").exists()
