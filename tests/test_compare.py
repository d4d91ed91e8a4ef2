"""`hawkeye-onnx compare A B`: B - A per backend, module and op type, in json, md, html and table."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser_util import open_page
from test_report_html import HOSTILE, Page, hostile_model
from test_report_md import tables

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
A, B = str(MODELS / "resnet_cifar.onnx"), str(MODELS / "resnet_cifar_bn.onnx")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hawkeye_onnx", "compare", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def ok(*args: str) -> str:
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def cmp_json() -> dict:
    return json.loads(ok(A, B, "-f", "json", "-b", "crypten,semi2k"))


def test_totals_and_difference_match_measurements(cmp_json: dict) -> None:
    """2 parties, measured (README validation table, validation/measured/): CrypTen resnet_cifar 15,925,376 B /
    52 rounds, resnet_cifar_bn 17,133,824 B / 166 rounds; SPU SEMI2K 8,814,928 / 55 and 11,825,824 / 235."""
    assert cmp_json["schema"] == "hawkeye-onnx-compare/1"
    assert cmp_json["a"]["model"]["name"] == "resnet_cifar" and cmp_json["b"]["model"]["name"] == "resnet_cifar_bn"
    want = {"crypten": ((15_925_376, 52), (17_133_824, 166)), "semi2k": ((8_814_928, 55), (11_825_824, 235))}
    for name, ((ab, ar), (bb, br)) in want.items():
        t = cmp_json["backends"][name]["total"]
        assert (t["a"]["online_bytes"], t["a"]["online_rounds"]) == (ab, ar)
        assert (t["b"]["online_bytes"], t["b"]["online_rounds"]) == (bb, br)
        assert (t["diff"]["online_bytes"], t["diff"]["online_rounds"]) == (bb - ab, br - ar)


def test_modules_and_ops_difference(cmp_json: dict) -> None:
    crypten = cmp_json["backends"]["crypten"]
    mods = {r["module"]: r for r in crypten["modules"]}
    assert mods["bn1"]["a"] is None and mods["bn1"]["b"]["online_bytes"] > 0  # BatchNorm only in B
    for r in crypten["modules"] + crypten["ops"]:
        za = r["a"] or dict.fromkeys(r["diff"], 0)
        zb = r["b"] or dict.fromkeys(r["diff"], 0)
        assert all(r["diff"][q] == zb[q] - za[q] for q in r["diff"])
    ops = {r["op_type"]: r for r in crypten["ops"]}
    assert ops["Relu"]["diff"]["online_bytes"] == 0  # same ReLUs in both
    assert ops["BatchNormalization"]["a"] is None
    assert sum(r["diff"]["online_bytes"] for r in crypten["ops"]) == crypten["total"]["diff"]["online_bytes"]


def test_markdown_tables() -> None:
    md = ok(A, B, "-f", "md", "-b", "crypten,semi2k")
    found = tables(md)
    assert len(found) == 2 + 2 * 2  # totals, time, then modules and ops per backend
    totals = {r[0]: r for r in found[0][1:]}
    assert totals["crypten"][1:5] == ["15.19 MiB", "16.34 MiB", "+1.15 MiB", "+7.6%"]


def test_table_format_and_errors() -> None:
    out = ok(A, B, "-b", "crypten")
    assert "resnet_cifar_bn" in out and "bn1" in out and "+7.6%" in out
    bad = run(A, B, "-f", "xml")
    assert bad.returncode == 2 and bad.stderr.startswith("hawkeye-onnx: error: --format")
    missing = run(A, str(MODELS / "nope.onnx"))
    assert missing.returncode == 2 and "nope.onnx" in missing.stderr and "Traceback" not in missing.stderr


def test_html_is_self_contained_and_hostile_names_inert(tmp_path: Path) -> None:
    hostile = hostile_model(tmp_path / "hostile.onnx")
    out = tmp_path / "c.html"
    ok(str(hostile), str(hostile), "-f", "html", "-o", str(out), "--depth", "3")
    page = Page(out.read_text(encoding="utf-8"))
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    assert not any(t in ("img", "iframe") for t, _ in page.tags)
    assert sum(t == "script" for t, _ in page.tags) == 1
    assert any(HOSTILE in s for s in page.text)


@pytest.mark.browser
def test_compare_html_in_browser(tmp_path: Path, cmp_json: dict) -> None:
    out = tmp_path / "c.html"
    ok(A, B, "-f", "html", "-o", str(out), "-b", "crypten,semi2k")
    html = out.read_text(encoding="utf-8")
    for name, row in re.findall(r'<tr data-backend="([^"]+)">(.*?)</tr>', html):
        t = cmp_json["backends"][name]["total"]
        exact = [int(v) for v in re.findall(r'data-exact="(-?\d+)"', row)]
        assert exact[:3] == [t["a"]["online_bytes"], t["b"]["online_bytes"], t["diff"]["online_bytes"]]
    with open_page(out) as (page, console, requests):
        assert not [m for m in console if m[0] in ("error", "warning", "dialog")], console
        assert requests == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        assert page.locator('#compare-totals tr[data-backend="crypten"] td').nth(3).inner_text() == "+1.15 MiB"


def test_training_phases_compared() -> None:
    from hawkeye_onnx.compare import compare_dicts, render_compare_html, render_compare_md

    a = json.loads(ok(A, A, "-f", "json", "-b", "crypten"))  # any two profiles' dicts will do
    pa = json.loads(subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", A, "-f", "json", "-b", "crypten"],
                                   capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
    assert a["backends"]["crypten"]["total"]["diff"]["online_bytes"] == 0
    pb = json.loads(json.dumps(pa))
    for d, scale in ((pa, 1), (pb, 3)):
        d["mode"] = "train"
        d["backends"]["crypten"]["phases"] = {
            "backward": {"online": {"bytes": 2048 * scale, "rounds": 4}, "offline": {"bytes": 0, "rounds": 0}},
            "forward": {"online": {"bytes": 1024 * scale, "rounds": 2}, "offline": {"bytes": 0, "rounds": 0}}}
    c = compare_dicts(pa, pb)
    ph = c["backends"]["crypten"]["phases"]
    assert list(ph) == ["forward", "backward"]
    assert ph["backward"]["diff"]["online_bytes"] == 4096 and ph["forward"]["diff"]["online_rounds"] == 0
    rows = next(t for t in tables(render_compare_md(c)) if t[0][0] == "phase")
    assert rows[1] == ["forward", "1.00 KiB / 2", "3.00 KiB / 2", "+2.00 KiB / ±0", "+200.0%"]
    assert 'data-table="phases"' in render_compare_html(c)
