"""The Markdown report parses as real tables (markdown-it, GFM tables), with the JSON's numbers, and
text from the model stays text: no HTML, no links, no broken cells."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from markdown_it import MarkdownIt
from test_report_html import hostile_model

from hawkeye_onnx.render import render_markdown

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "hawkeye_onnx", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tables(md: str) -> list[list[list[str]]]:
    """Every table as rows of cell texts (header first), checking that each row has the header's width.

    A cell's text is what a reader sees: inline tokens' content with escapes and entities resolved.
    """
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    assert not [t for t in tokens if t.type in ("html_block", "html_inline")]
    out: list[list[list[str]]] = []
    rows: list[list[str]] = []
    cells: list[str] | None = None
    for t in tokens:
        if t.type == "table_open":
            rows = []
        elif t.type == "tr_open":
            cells = []
        elif t.type == "inline" and cells is not None:
            kinds = {c.type for c in t.children or []}
            assert not kinds & {"html_inline", "link_open", "image"}, kinds
            cells.append("".join(c.content for c in t.children or [] if c.type in ("text", "code_inline")))
        elif t.type == "tr_close":
            rows.append(cells)
            cells = None
        elif t.type == "table_close":
            assert all(len(r) == len(rows[0]) for r in rows), rows
            out.append(rows)
    return out


def test_every_table_is_valid_and_totals_equal_measurements() -> None:
    """resnet_cifar, 2 parties, measured on CrypTen 0.4.1 (15,925,376 B, 52 rounds) and SPU 0.9.5 SEMI2K
    (8,814,928 B, 55 rounds): README's validation table, `validation/measured/`."""
    md = cli("report", str(MODELS / "resnet_cifar.onnx"), "-f", "md", "-b", "crypten,semi2k")
    found = tables(md)
    assert len(found) == 4  # totals, time, modules, operators
    totals = {r[0]: r for r in found[0][1:]}
    assert totals["crypten"][2] == "15.19 MiB (15,925,376)" and totals["crypten"][3] == "52"
    assert totals["semi2k"][2] == "8.41 MiB (8,814,928)" and totals["semi2k"][3] == "55"
    assert found[1][0] == ["backend", "LAN online", "LAN offline", "WAN online", "WAN offline"]
    # crypten LAN online: 52 * 0.5 ms + 15925376 * 8 / 1e9 s = 153.4 ms
    assert found[1][1][:2] == ["crypten", "153 ms"]
    modules = [r[0] for r in found[2][1:]]
    assert {"layer1", "layer2", "conv1", "fc"} <= set(modules)


def test_depth_two_shows_submodules() -> None:
    md = cli("report", str(MODELS / "resnet_cifar.onnx"), "-f", "md", "--depth", "2", "-b", "crypten")
    modules = [r[0] for r in tables(md)[2][1:]]
    assert "layer1/conv1" in modules and "layer2/downsample" in modules and "layer1" not in modules


def test_network_option_adds_columns() -> None:
    md = cli("report", str(MODELS / "lenet5.onnx"), "-f", "md", "-b", "crypten", "--network", "LAN=10Gbit,0.1ms",
             "--network", "3G=2Mbit,300ms")
    head = tables(md)[1][0]
    assert head == ["backend", "LAN online", "LAN offline", "WAN online", "WAN offline", "3G online", "3G offline"]
    assert "LAN: 10 Gbit/s, RTT 0.1 ms" in md


def test_bad_network_is_a_one_line_error() -> None:
    for bad in ("LAN=fast,1ms", "LAN=1Gbit", "=1Gbit,1ms", "LAN=1Gbit,40"):
        proc = subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(MODELS / "lenet5.onnx"),
                               "-f", "md", "--network", bad], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--network" in proc.stderr, proc.stderr


def test_hostile_names_are_text_in_cells(tmp_path: Path) -> None:
    path = hostile_model(tmp_path / "hostile.onnx")
    md = cli("report", str(path), "-f", "md", "--depth", "3")
    found = tables(md)
    modules = [r[0] for r in found[2][1:]]
    assert "<b onmouseover=alert(2)>evil</b>/|pipe`tick" in modules
    assert any(m.endswith("<img src=x onerror=alert(1)>") for m in modules)
    assert "<script>alert('in')</script>" in MarkdownIt("commonmark").render(md).replace("&lt;", "<").replace(
        "&gt;", ">").replace("&quot;", '"').replace("&#39;", "'")
    assert "<img" not in MarkdownIt("commonmark").enable("table").render(md)


def test_phases_table(tmp_path: Path) -> None:
    data = json.loads(cli("report", str(MODELS / "lenet5.onnx"), "-f", "json", "-b", "crypten,semi2k"))
    d = copy.deepcopy(data)
    d["mode"] = "train"
    d["backends"]["semi2k"]["phases"] = {"update": {"online": {"bytes": 4096, "rounds": 1},
                                                    "offline": {"bytes": 0, "rounds": 0}},
                                         "forward": {"online": {"bytes": 1 << 20, "rounds": 74},
                                                     "offline": {"bytes": 0, "rounds": 0}}}
    found = tables(render_markdown(d))
    phases = next(t for t in found if t[0][:2] == ["backend", "phase"])
    assert phases[1:] == [["semi2k", "forward", "1.00 MiB", "74", "0 B", "0"],
                          ["semi2k", "update", "4.00 KiB", "1", "0 B", "0"]]
