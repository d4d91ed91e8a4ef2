"""`hawkeye-onnx compare A.onnx B.onnx`: two models side by side, per backend, per module and per op type.

The daily loop of designing an MPC-friendly model (ReLU vs a polynomial activation, MaxPool vs
AvgPool): profile both with the same backends and options and show B - A. Built, like the reports,
from the two profiles' JSON dicts only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import jinja2
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hawkeye_onnx.network import DEFAULT_NETWORKS, Network, human_seconds
from hawkeye_onnx.report_data import cost_of, exact, human_bytes, modules_at_depth, phases_of

SCHEMA = "hawkeye-onnx-compare/1"
_Q = ("online_bytes", "online_rounds", "offline_bytes", "offline_rounds")


def _four(t: Mapping[str, Any] | None) -> list[int] | None:
    if t is None:
        return None
    return [*cost_of(t, "online"), *cost_of(t, "offline")]


def _pair(a: list[int] | None, b: list[int] | None) -> dict[str, Any]:
    """A, B and B - A for the four quantities; a side missing counts as zero in the difference."""
    za, zb = a or [0, 0, 0, 0], b or [0, 0, 0, 0]
    return {"a": dict(zip(_Q, a, strict=True)) if a else None, "b": dict(zip(_Q, b, strict=True)) if b else None,
            "diff": {q: y - x for q, x, y in zip(_Q, za, zb, strict=True)}}


def compare_dicts(a: Mapping[str, Any], b: Mapping[str, Any], depth: int = 1, top: int | None = None,
                  nets: Sequence[Network] = DEFAULT_NETWORKS) -> dict[str, Any]:
    """The comparison of two profiles' JSON dicts (the `--format json` of `compare`)."""
    names = [n for n in a["backends"] if n in b["backends"]]
    out: dict[str, Any] = {"schema": SCHEMA, "depth": depth,
                           "a": {"model": a["model"], "mode": a.get("mode")},
                           "b": {"model": b["model"], "mode": b.get("mode")},
                           "networks": [{"name": n.name, "bandwidth_bps": n.bandwidth_bps, "rtt_s": n.rtt_s}
                                        for n in nets],
                           "backends": {}}
    for n in names:
        ba, bb = a["backends"][n], b["backends"][n]
        mods: dict[tuple[str, ...], list[Any]] = {}
        for side, bk in enumerate((ba, bb)):
            for path, sub in modules_at_depth(bk.get("tree", {}), depth):
                mods.setdefault(path, [None, None])[side] = _four(sub)
        mod_rows = [{"module": "/".join(p), **_pair(*v)} for p, v in mods.items()]
        mod_rows.sort(key=lambda r: (-abs(r["diff"]["online_bytes"]), r["module"]))
        ops = sorted(set(ba.get("ops", {})) | set(bb.get("ops", {})))
        op_rows = [{"op_type": o, **_pair(_four(ba["ops"].get(o)), _four(bb["ops"].get(o)))} for o in ops]
        op_rows.sort(key=lambda r: (-abs(r["diff"]["online_bytes"]), r["op_type"]))
        total = _pair(_four(ba["total"]), _four(bb["total"]))
        times = []
        for net in nets:
            ta = net.seconds(total["a"]["online_bytes"], total["a"]["online_rounds"])
            tb = net.seconds(total["b"]["online_bytes"], total["b"]["online_rounds"])
            times.append({"network": net.name, "a_online_s": ta, "b_online_s": tb})
        pa, pb = ba.get("phases") or {}, bb.get("phases") or {}
        phases = phases_of({"a": ba, "b": bb})
        extra = {"phases": {ph: _pair(_four(pa.get(ph)), _four(pb.get(ph))) for ph in phases}} if phases else {}
        out["backends"][n] = {
            "title": ba.get("title"), "version": ba.get("version"),
            "total": total, "online_time": times,
            "modules": mod_rows[:top] if top else mod_rows,
            "ops": op_rows,
            "unsupported": {"a": [u["op_type"] for u in ba.get("unsupported", ())],
                            "b": [u["op_type"] for u in bb.get("unsupported", ())]},
            **extra,
        }
    return out


def signed_bytes(n: int) -> str:
    return "±0 B" if n == 0 else ("+" if n > 0 else "") + human_bytes(n)


def signed_int(n: int) -> str:
    return "±0" if n == 0 else f"{n:+,}"


def change(a: int | None, b: int | None) -> str:
    """Relative change B vs A, e.g. '-37.5%'; 'new'/'gone' when a side is missing or zero."""
    if not a:
        return "±0%" if not b else "new"
    if b is None:
        return "gone"
    pct = 100 * (b - a) / a
    return "±0%" if pct == 0 else f"{pct:+.1f}%"


def _env(autoescape: bool) -> jinja2.Environment:
    from hawkeye_onnx.report_data import templates_dir

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=autoescape,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    from hawkeye_onnx.render import _md_escape

    env.filters.update(hb=human_bytes, ex=exact, hs=human_seconds, sb=signed_bytes, si=signed_int, md=_md_escape)
    env.globals["change"] = change
    return env


def render_compare_md(c: Mapping[str, Any], top: int = 15) -> str:
    return _env(False).get_template("compare.md.j2").render(c=c, top=top)


def render_compare_html(c: Mapping[str, Any], top: int = 15) -> str:
    from hawkeye_onnx.html_report import page_assets

    return _env(True).get_template("compare.html.j2").render(c=c, top=top, **page_assets())


def render_compare_table(c: Mapping[str, Any], console: Console, top: int = 15) -> None:
    ma, mb = c["a"]["model"], c["b"]["model"]
    console.print(Text(f"A = {ma['name']} ({ma['nodes']} nodes), B = {mb['name']} ({mb['nodes']} nodes)"))
    t = Table(title="Totals per backend: A -> B (B - A)", title_justify="left")
    for col in ("backend", "online bytes", "change", "online rounds", "offline bytes", "change"):
        t.add_column(col, justify="left" if col == "backend" else "right")
    for n, bk in c["backends"].items():
        x, y, d = bk["total"]["a"], bk["total"]["b"], bk["total"]["diff"]
        t.add_row(n, f"{human_bytes(x['online_bytes'])} -> {human_bytes(y['online_bytes'])}",
                  change(x["online_bytes"], y["online_bytes"]),
                  f"{x['online_rounds']:,} -> {y['online_rounds']:,} ({signed_int(d['online_rounds'])})",
                  f"{human_bytes(x['offline_bytes'])} -> {human_bytes(y['offline_bytes'])}",
                  change(x["offline_bytes"], y["offline_bytes"]))
    console.print(t)
    for n, bk in c["backends"].items():
        m = Table(title=f"{n}: modules (depth {c['depth']}), online bytes / rounds, largest differences first",
                  title_justify="left")
        for col in ("module", "A", "B", "B - A", "change"):
            m.add_column(col, justify="left" if col == "module" else "right")
        for r in bk["modules"][:top]:
            a, b = r["a"], r["b"]
            m.add_row(Text(r["module"]), f"{human_bytes(a['online_bytes'])} / {a['online_rounds']}" if a else "-",
                      f"{human_bytes(b['online_bytes'])} / {b['online_rounds']}" if b else "-",
                      f"{signed_bytes(r['diff']['online_bytes'])} / {signed_int(r['diff']['online_rounds'])}",
                      change(a and a["online_bytes"], b and b["online_bytes"]))
        console.print(m)


def compare(
    model_a: Annotated[Path, typer.Argument(help="Baseline ONNX model (A).")],
    model_b: Annotated[Path, typer.Argument(help="Variant ONNX model (B); differences are B - A.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="Comma-separated backends, or 'all'.")] = "all",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (terminal), md, html or json.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", "-i", help="Bind an input's shape in both models, e.g. input=1x3x32x32.")] = None,
    batch: Annotated[int | None, typer.Option(help="Set dim 0 of every input of both models.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Override a backend parameter, e.g. crypten.parties=3 (repeatable).")] = None,
    depth: Annotated[int, typer.Option(help="Module level compared (1 = top-level modules).")] = 1,
    public_weights: Annotated[bool, typer.Option(help="Treat weights (float initializers) as public.")] = False,
    top: Annotated[int, typer.Option(help="Module rows per backend (largest differences first).")] = 15,
    network: Annotated[list[str] | None, typer.Option(
        "--network", help="Network profile NAME=BANDWIDTH,RTT for time estimates (repeatable).")] = None,
    debug: Annotated[bool, typer.Option(help="Show a traceback on errors.")] = False,
) -> None:
    """Compare two models' communication side by side, per backend and per module, with B - A.

    Example: hawkeye-onnx compare models/resnet_cifar.onnx models/cnn_avgpool.onnx -f html -o diff.html
    """
    from hawkeye_onnx.cli import _check_output, _parse_backends, _parse_params, _run
    from hawkeye_onnx.errors import ParamError
    from hawkeye_onnx.load import parse_shape
    from hawkeye_onnx.network import networks
    from hawkeye_onnx.profile import profile

    def go() -> None:
        _check_output(output, "compare.html")
        if fmt not in ("table", "md", "json", "html"):
            raise ParamError(f"--format {fmt!r}: choose table, md, html or json")
        if depth < 1:
            raise ParamError("--depth must be >= 1")
        nets = networks(network)
        shapes = dict(parse_shape(s) for s in (input_shape or []))
        kw = {"backends": _parse_backends(backend), "params": _parse_params(param or []), "input_shapes": shapes,
              "batch": batch, "public_weights": public_weights}
        c = compare_dicts(profile(model_a, **kw).to_dict(), profile(model_b, **kw).to_dict(), depth, None, nets)
        if fmt == "table":
            if output:
                with output.open("w", encoding="utf-8") as fh:
                    render_compare_table(c, Console(file=fh, width=160), top)
            else:
                render_compare_table(c, Console(), top)
            return
        text = {"json": lambda: json.dumps(c, ensure_ascii=False) + "\n",
                "md": lambda: render_compare_md(c, top),
                "html": lambda: render_compare_html(c, top)}[fmt]()
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)

    _run(debug, go)
