"""The HTML report: self-contained, deterministic, inert on hostile names, small on huge models, and the
numbers a person sees in Chromium are the JSON's (tests marked `browser` drive the real browser)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import onnx
import pytest
from browser_util import open_page
from onnx import TensorProto, helper

from hawkeye_onnx.html_report import render_html
from hawkeye_onnx.render import render_markdown
from hawkeye_onnx.report_data import human_bytes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from report_render import chain_model  # noqa: E402  (benchmarks/report_render.py: the 200k-node chain model)

MODELS = ROOT / "models"
HOSTILE = "<img src=x onerror=alert(1)>"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "hawkeye_onnx", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return proc


class Page(HTMLParser):
    """Every tag with its attributes, and the page's text (entities decoded), for static checks."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report")
    data = json.loads(cli("report", str(MODELS / "resnet_cifar.onnx"), "-f", "json").stdout)
    html = out / "resnet_cifar.html"
    cli("report", str(MODELS / "resnet_cifar.onnx"), "-f", "html", "-o", str(html))
    return html, data


def hostile_model(path: Path) -> Path:
    """A model whose node names, module names, input name and producer all try to inject markup."""
    x = "<script>alert('in')</script>"
    nodes = [helper.make_node("Relu", [x], ["a"], name=HOSTILE),
             helper.make_node("Relu", ["a"], ["b"], name="/<b onmouseover=alert(2)>evil</b>/|pipe`tick/Relu"),
             helper.make_node("Sigmoid", ["b"], ["y"], name="/x\"><svg onload=alert(3)>/Sigmoid")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="\"><iframe src=https://example.com>")
    onnx.save(model, path)
    return path


def test_self_contained_and_no_script_but_ours(resnet: tuple[Path, dict]) -> None:
    html = resnet[0].read_text(encoding="utf-8")
    page = Page(html)
    scripts = [a for t, a in page.tags if t == "script"]
    assert len(scripts) == 1 and "src" not in scripts[0]
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith(("#", "data:")), (tag, key, value)
        assert tag not in ("link", "iframe", "img", "object", "embed") or attrs.get("href", "").startswith("data:")
    assert "@import" not in html and "url(" not in html
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def test_report_shows_model_and_every_backend(resnet: tuple[Path, dict]) -> None:
    html, data = resnet
    text = " ".join(Page(html.read_text(encoding="utf-8")).text)
    assert data["model"]["sha256"] in text
    for name, b in data["backends"].items():
        assert name in text and b["title"] in text
        for op, source in b["sources"].items():
            if op in b["ops"]:
                assert source in text  # every rule that priced the model cites its source
        for k in b["params"]:
            assert f"{name}.{k}" in text
    assert "time = rounds × RTT + bytes × 8 / bandwidth" in text
    assert "1 Gbit/s" in text and "100 Mbit/s" in text


def test_totals_table_equals_json(resnet: tuple[Path, dict]) -> None:
    html, data = resnet
    rows = re.findall(r'<tr data-backend="([^"]+)">(.*?)</tr>', html.read_text(encoding="utf-8"))
    totals = {n: row for n, row in rows if "data-exact" in row and "data-seconds" not in row}
    assert list(totals) == list(data["backends"])
    for name, row in totals.items():
        t = data["backends"][name]["total"]
        want = [t["online"]["bytes"], t["online"]["rounds"], t["offline"]["bytes"], t["offline"]["rounds"]]
        assert [int(v) for v in re.findall(r'data-exact="(\d+)"', row)] == want


def test_time_estimate_follows_the_stated_formula(tmp_path: Path) -> None:
    """LeNet-5 under CrypTen, 2 parties: 9,544,544 bytes in 133 rounds, measured on CrypTen 0.4.1 (README's
    validation table). LAN 1 Gbit/s, 0.5 ms: 133 * 0.0005 + 9544544 * 8 / 1e9 = 0.142856352 s;
    with --network WAN=10Mbit,100ms: 133 * 0.1 + 9544544 * 8 / 1e7 = 20.9356352 s."""
    out = tmp_path / "l.html"
    cli("report", str(MODELS / "lenet5.onnx"), "-b", "crypten", "-f", "html", "-o", str(out),
        "--network", "WAN=10Mbit,100ms", "--network", "sat=50Mbit,600ms")
    html = out.read_text(encoding="utf-8")
    row = re.search(r'<tr data-backend="crypten"><td><b>crypten</b></td>(<td class="num" title="[^"]+" '
                    r'data-seconds.*?)</tr>', html).group(1)
    seconds = [float(s) for s in re.findall(r'data-seconds="([^"]+)"', row)]
    assert len(seconds) == 9  # three networks x (online, offline, total)
    assert seconds[0] == pytest.approx(0.142856352, rel=1e-8)
    assert seconds[3] == pytest.approx(20.9356352, rel=1e-8)
    assert "143 ms" in row and "20.9 s" in row
    assert "sat" in html and "10 Mbit/s" in html


def test_deterministic_byte_identical(tmp_path: Path) -> None:
    outs = []
    for seed in ("1", "2"):
        for fmt in ("html", "md"):
            out = tmp_path / f"{seed}.{fmt}"
            cli("report", str(MODELS / "transformer_block.onnx"), "-f", fmt, "-o", str(out),
                env={"PYTHONHASHSEED": seed})
            outs.append(out.read_bytes())
    assert outs[0] == outs[2] and outs[1] == outs[3]


def test_hostile_names_are_inert_text(tmp_path: Path) -> None:
    path = hostile_model(tmp_path / "hostile.onnx")
    out = tmp_path / "hostile.html"
    cli("report", str(path), "-f", "html", "-o", str(out))
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    assert not any(t in ("img", "iframe") for t, _ in page.tags)
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    assert sum(t == "script" for t, _ in page.tags) == 1
    text = "".join(page.text)
    assert HOSTILE in text and "<script>alert('in')</script>" in text and "<iframe src=https://example.com>" in text


def _with_phases(data: dict) -> dict:
    """The training contract (issue 4): backends.<b>.phases.<phase>.{online,offline}, mode "train"."""
    d = copy.deepcopy(data)
    d["mode"] = "train"
    for i, b in enumerate(d["backends"].values()):
        b["phases"] = {ph: {"online": {"bytes": 1000 * (i + 1) * (k + 1) + 7, "rounds": 10 * k + i},
                            "offline": {"bytes": 5 * k, "rounds": k}}
                       for k, ph in enumerate(("forward", "loss", "backward", "update"))}
    return d


def test_training_phases_render_when_present(resnet: tuple[Path, dict]) -> None:
    d = _with_phases(resnet[1])
    html = render_html(d)
    rows = re.findall(r'<tr data-backend="([^"]+)" data-phase="([^"]+)">(.*?)</tr>', html)
    assert len(rows) == 4 * len(d["backends"])
    for name, phase, row in rows:
        c = d["backends"][name]["phases"][phase]
        exact = [int(v) for v in re.findall(r'data-exact="(\d+)"', row)]
        assert exact == [c["online"]["bytes"], c["online"]["rounds"], c["offline"]["bytes"], c["offline"]["rounds"]]
    assert 'id="phases"' not in render_html(resnet[1])
    md = render_markdown(d)
    assert "## Training phases" in md and "| crypten | backward | 2.94 KiB | 20 |" in md


@pytest.mark.browser
def test_browser_no_errors_no_network_tree_numbers_equal_json(resnet: tuple[Path, dict], tmp_path: Path) -> None:
    html, data = resnet
    names = list(data["backends"])
    with open_page(html) as (page, console, requests):
        assert not [m for m in console if m[0] in ("error", "warning", "dialog")], console
        assert requests == []
        # Reads at 1280 px: nothing wider than the window.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        # Totals as shown: human units, exact bytes on hover.
        for n in names:
            cells = page.locator(f'#totals-table tr[data-backend="{n}"] td.num')
            online = data["backends"][n]["total"]["online"]["bytes"]
            assert cells.nth(0).inner_text() == human_bytes(online)
            assert cells.nth(0).get_attribute("title") == f"{online:,} bytes"
        # Expand layer1: its children appear, and its cells show the JSON's numbers.
        layer1 = page.locator('#tree details[data-path="layer1"]')
        child = page.locator('#tree [data-path="layer1/conv1"]')
        assert not child.is_visible()
        layer1.locator("> summary").click()
        assert child.is_visible()
        cells = layer1.locator("> summary > div.c")
        assert cells.count() == len(names)
        for i, n in enumerate(names):
            node = next(c for c in data["backends"][n]["tree"]["children"] if c["name"] == "layer1")
            on, off = node["online"], node["offline"]
            title = cells.nth(i).get_attribute("title")
            assert title == (f"online {on['bytes']:,} B, {on['rounds']:,} rounds; "
                             f"offline {off['bytes']:,} B, {off['rounds']:,} rounds")
            assert cells.nth(i).inner_text().split() == [*human_bytes(on["bytes"]).split(), f"{on['rounds']:,}"]
        page.click('button[data-phase="offline"]')
        for i, n in enumerate(names):
            off = next(c for c in data["backends"][n]["tree"]["children"] if c["name"] == "layer1")["offline"]
            assert cells.nth(i).inner_text().split() == [*human_bytes(off["bytes"]).split(), f"{off['rounds']:,}"]
        page.click("#expand-all")
        assert page.locator("#tree details:not([open])").count() == 0
        shots = Path(os.environ.get("HAWKEYE_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "report-1280.png"), full_page=True)
        assert not [m for m in console if m[0] in ("error", "warning", "dialog")], console


@pytest.mark.browser
def test_browser_hostile_name_is_text(tmp_path: Path) -> None:
    path = hostile_model(tmp_path / "hostile.onnx")
    out = tmp_path / "hostile.html"
    cli("report", str(path), "-f", "html", "-o", str(out))
    with open_page(out) as (page, console, requests):
        page.click("#expand-all")
        page.hover(f'#tree [title="{HOSTILE}"]')
        assert page.locator("img, iframe, svg[onload]").count() == 0
        assert page.get_by_text(HOSTILE).first.is_visible()
        assert not [m for m in console if m[0] in ("error", "dialog")], console
        assert requests == []


@pytest.fixture(scope="module")
def big_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """HTML and Markdown of a 200k-node model (two backends). How long they take to make and to show is
    benchmarks/report_render.py's concern, not a test's."""
    import hawkeye_onnx

    tmp = tmp_path_factory.mktemp("big")
    data = hawkeye_onnx.profile(chain_model(tmp / "big.onnx"), backends=["crypten", "semi2k"]).to_dict()
    out, md = tmp / "big.html", tmp / "big.md"
    out.write_text(render_html(data), encoding="utf-8")
    md.write_text(render_markdown(data), encoding="utf-8")
    return out, md


@pytest.mark.slow
def test_200k_node_report_stays_small(big_report: tuple[Path, Path]) -> None:
    out, md = big_report
    # The tree is cut at 500 rows (under 1 KiB each with two backends): far from one row per node.
    assert out.stat().st_size < 600_000, out.stat().st_size
    assert md.stat().st_size < 10_000
    html = out.read_text(encoding="utf-8")
    assert html.count('class="row') + html.count("<details data-path") <= 502  # 500 rows, the header, "N more"
    assert html.count("Relu_") < 50


@pytest.mark.slow
@pytest.mark.browser
def test_200k_node_report_opens_and_expands_every_row(big_report: tuple[Path, Path]) -> None:
    with open_page(big_report[0]) as (page, console, requests):
        closed = page.eval_on_selector_all("#tree details", "els => els.filter(e => !e.open).length")
        page.click("#expand-all")
        assert closed > 0 and page.eval_on_selector_all("#tree details", "els => els.every(e => e.open)")
        assert not [m for m in console if m[0] == "error"] and requests == []


def test_depth_limits_the_html_tree(tmp_path: Path) -> None:
    out = tmp_path / "d.html"
    cli("report", str(MODELS / "resnet_cifar.onnx"), "-f", "html", "-o", str(out), "--depth", "1")
    html = out.read_text(encoding="utf-8")
    paths = re.findall(r'data-path="([^"]*)"', html)
    assert "layer1" in paths and not any(p.startswith(("layer1/", "layer2/", "conv1/")) for p in paths)
    assert "+ deeper in JSON" in html
