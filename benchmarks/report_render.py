"""Rendering benchmark: the HTML and Markdown reports of a 200k-node model, and the HTML page in Chromium.

The reports cut the module tree at 500 rows (`templates/report.html.j2`), so their size and the time to make
and show them should not grow with the model. Goals (issue 5): both reports rendered in under 10 s, and
Chromium loading the page and expanding every row in under 3 s. This script prints the times against them;
tests/test_report_html.py checks the sizes and that the page opens and expands without errors, not the
times (a shared machine's timings are no test).

    python benchmarks/report_render.py                 # 200k nodes, two backends
    python benchmarks/report_render.py --nodes 20000

The browser part runs where Python playwright and Chromium are installed (`.ci/run` installs both;
HAWKEYE_CHROMIUM names another binary).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import onnx
from onnx import TensorProto, helper

RENDER_GOAL_S = 10.0
BROWSER_GOAL_S = 3.0


def chain_model(path: Path, n: int = 200_000) -> Path:
    """n nodes in blocks of 2,000 x layers of 100 (the shape of a deep network's name scopes), built directly."""
    nodes = []
    prev = "x"
    for i in range(n):
        op = "Relu" if i % 2 == 0 else "Sigmoid"
        nodes.append(helper.make_node(op, [prev], [f"t{i}"], name=f"/block{i // 2000}/layer{(i // 100) % 20}/{op}_{i}"))
        prev = f"t{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 16])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _browser_seconds(page_path: Path) -> float | None:
    """Seconds for Chromium to load the page and expand every row; None where playwright or Chromium is missing."""
    chromium = os.environ.get("HAWKEYE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(chromium).exists():
        return None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            start = time.perf_counter()
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            page.click("#expand-all")
            return time.perf_counter() - start
        finally:
            browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=200_000, help="nodes of the chain model (default 200000)")
    args = ap.parse_args()

    import hawkeye_onnx
    from hawkeye_onnx.html_report import render_html
    from hawkeye_onnx.render import render_markdown

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = hawkeye_onnx.profile(chain_model(folder / "big.onnx", args.nodes),
                                    backends=["crypten", "semi2k"]).to_dict()
        html, md = folder / "big.html", folder / "big.md"
        start = time.perf_counter()
        html.write_text(render_html(data), encoding="utf-8")
        md.write_text(render_markdown(data), encoding="utf-8")
        render = time.perf_counter() - start
        print(f"{args.nodes:,} nodes: HTML {html.stat().st_size:,} B, Markdown {md.stat().st_size:,} B")
        print(f"render both: {render:.2f} s (goal < {RENDER_GOAL_S:g} s)")
        browser = _browser_seconds(html)
        if browser is None:
            print("browser: skipped (Python playwright or Chromium missing)")
        else:
            print(f"Chromium load + expand all: {browser:.2f} s (goal < {BROWSER_GOAL_S:g} s)")


if __name__ == "__main__":
    main()
