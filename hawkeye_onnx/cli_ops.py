"""`hawkeye-onnx ops [MODEL]`: which ONNX op types each backend prices, and the coverage matrix.

Everything comes from the rule files that exist (`rules/*.toml`, whatever backends are installed), so the
matrix follows the rules as they grow. An op type's status under a backend is one of:

* `priced`: a rule prices it (every case);
* `free`: local, no communication;
* `partial`: some cases priced, others unsupported (the rule's variants say which and why);
* `unsupported`: the rule says the framework cannot run it, and why;
* `no rule`: the backend has no rule; the backend's default reason applies (`unknown_op`).

With MODEL, the model is profiled and its op types are listed with, per backend, how many of their
nodes are unsupported and why. `--format md` writes the Markdown matrix kept in `docs/coverage.md`,
which also lists, for every model in `models/` and every zoo architecture, what is unsupported where.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, NamedTuple

import onnx
import typer
from rich.console import Console
from rich.table import Table

from hawkeye_onnx import zoo
from hawkeye_onnx.domains import non_default_reason
from hawkeye_onnx.errors import ParamError
from hawkeye_onnx.ir import key_of
from hawkeye_onnx.profile import profile
from hawkeye_onnx.render import _md_escape
from hawkeye_onnx.rules import Backend, OpRule, load_backends, rules_dir


class Coverage(NamedTuple):
    """One op type under one backend: its status and the reasons of its unsupported cases."""

    status: str
    reasons: tuple[str, ...] = ()


def coverage(backend: Backend, op: str) -> Coverage:
    """Status of `op` (an op key, `domain::Op` outside the default domain) under `backend`."""
    rule: OpRule | None = backend.ops.get(op)
    if rule is None:
        if "::" in op:
            domain = op.split("::", 1)[0]
            return Coverage("unsupported", (non_default_reason(domain, op, backend.title),))
        return Coverage("no rule", (backend.unknown_op or f"no {backend.name} rule for {op}",))
    if rule.free:
        return Coverage("free")
    if rule.unsupported is not None:
        return Coverage("unsupported", (rule.unsupported,))
    reasons = tuple(v.unsupported for v in rule.variants if v.unsupported is not None)
    catch_all = any(v.when is None for v in rule.variants)
    if not catch_all:
        conds = " or ".join(v.when.text for v in rule.variants if v.when is not None and v.unsupported is None)
        reasons += (f"priced only when {conds}; other cases have no rule",)
    if not reasons:
        return Coverage("priced")
    if all(v.unsupported is not None for v in rule.variants):
        return Coverage("unsupported", reasons)
    return Coverage("partial", reasons)


#: How a status reads for a model's op that was not reported unsupported.
_SEEN_AS = {"partial": "priced", "unsupported": "public", "no rule": "public"}


def all_ops(backends: list[Backend]) -> list[str]:
    """Every op type some rule file names, sorted."""
    return sorted({op for b in backends for op in b.ops}, key=str.lower)


def matrix_table(backends: list[Backend]) -> Table:
    """The op type x backend status matrix for the terminal."""
    table = Table(title="ONNX op types per backend (from the rule files)", title_justify="left")
    table.add_column("op type", no_wrap=True)
    for b in backends:
        table.add_column(b.name)
    for op in all_ops(backends):
        table.add_row(op, *(coverage(b, op).status for b in backends))
    return table


def _model_rows(model: Path, backends: list[str] | None, shapes: dict, batch: int | None):
    """Op types of `model` with their node counts and, per backend, the unsupported nodes and reasons."""
    prof = profile(model, backends=backends, input_shapes=shapes, batch=batch)
    proto = onnx.load(str(model), load_external_data=False)
    counts = Counter(key_of(n.op_type, n.domain) for n in proto.graph.node)
    unsupported = {b: {u.op_type: u for u in r.unsupported} for b, r in prof.backends.items()}
    return prof, counts, unsupported


def _md(text: str) -> str:
    return _md_escape(text)


def _model_cases(backends: list[Backend]) -> list[tuple[str, dict[str, list[tuple[str, int]]]]]:
    """(label, {backend: [(op, nodes)]}) for every model in models/index.json and every zoo architecture."""
    names = [b.name for b in backends]
    out = []
    index = rules_dir().parent / "models" / "index.json"
    entries = json.loads(index.read_text()) if index.exists() else []
    for e in entries:
        path = index.parent / e["file"]
        if not path.exists():
            continue
        prof = profile(path, backends=names, input_shapes={k: tuple(v) for k, v in e["inputs"].items()})
        out.append((f"models/{e['file']}", {b: [(u.op_type, len(u.nodes)) for u in r.unsupported]
                                            for b, r in prof.backends.items()}))
    for name in zoo.NAMES:
        prof = profile(zoo.build(name), backends=names)
        out.append((f"zoo {name}", {b: [(u.op_type, len(u.nodes)) for u in r.unsupported]
                                    for b, r in prof.backends.items()}))
    return out


def coverage_markdown(backends: list[Backend] | None = None, models: bool = True) -> str:
    """The coverage matrix as Markdown (docs/coverage.md)."""
    backends = backends if backends is not None else load_backends()
    names = [b.name for b in backends]
    lines = [
        "# Operator coverage",
        "",
        "Generated from the rule files by `hawkeye-onnx ops --format md -o docs/coverage.md`; do not edit by hand "
        "(`tests/test_ops_cmd.py` checks it is up to date).",
        "",
        "Status of each ONNX op type under each backend: **priced** (a rule prices every case), **free** (local, "
        "no communication), **partial** (some cases priced, the others unsupported, see below), **unsupported** "
        "(the framework cannot run it; the rule says why), **no rule** (hawkeye-onnx has no rule for it: the "
        "backend's default reason applies). A node whose inputs are all public costs nothing under every "
        "backend, whatever its status. Ops outside the default ONNX domain (`ai.onnx.ml` from skl2onnx) are "
        "unsupported everywhere: no framework here imports them.",
        "",
        "| backend | framework | rule file |",
        "|---|---|---|",
    ]
    lines += [f"| `{b.name}` | {_md(b.title)} {_md(b.version)} | `rules/{Path(b.path).name}` |" for b in backends]
    lines += ["", "## Matrix", "", "| op type | " + " | ".join(f"`{n}`" for n in names) + " |",
              "|---|" + "---|" * len(names)]
    for op in all_ops(backends):
        lines.append(f"| {_md(op)} | " + " | ".join(coverage(b, op).status for b in backends) + " |")
    lines += ["", "## Unsupported and partial cases, with the reasons", ""]
    for b in backends:
        lines += [f"### {_md(b.title)} (`{b.name}`)", ""]
        any_case = False
        for op in all_ops(backends):
            c = coverage(b, op)
            if c.status in ("unsupported", "partial"):
                any_case = True
                for reason in c.reasons:
                    lines.append(f"- **{_md(op)}** ({c.status}): {_md(reason)}")
        if not any_case:
            lines.append("- none among the op types of the rule files")
        default = b.unknown_op or f"no {b.name} rule"
        ml = non_default_reason("ai.onnx.ml", "ai.onnx.ml::Op", b.title)
        lines += [f"- **any other op type** (no rule): {_md(default)}",
                  f"- **ai.onnx.ml ops** (e.g. ZipMap): {_md(ml)}", ""]
    if models:
        cases = _model_cases(backends)
        lines += ["## Models", "",
                  "Every model in `models/` (at the input shape `models/index.json` gives) and every "
                  "`hawkeye-onnx zoo` architecture (default batch and sequence length), profiled for inference: "
                  "the op types left unsupported under each backend (node count), with the reasons above. "
                  "`ok`: every node priced.", "",
                  "| model | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
        for label, per in cases:
            cells = [", ".join(f"{_md(op)} ×{k}" for op, k in per.get(n, [])) or "ok" for n in names]
            lines.append(f"| {_md(label)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def ops_command(
    model: Annotated[Path | None, typer.Argument(help="ONNX model: list its op types and what is unsupported "
                                                 "where. Omit for the op types of every backend.")] = None,
    backend: Annotated[str, typer.Option("--backend", "-b", help="Comma-separated backends, or 'all'.")] = "all",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, or md (the coverage matrix, without "
                                     "MODEL).")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
    input_shape: Annotated[list[str] | None, typer.Option("--input-shape", "-i", help="Bind an input's shape, "
                                                          "e.g. input=1x3x32x32 (repeatable).")] = None,
    batch: Annotated[int | None, typer.Option(help="Set dim 0 of every input.")] = None,
    debug: Annotated[bool, typer.Option(help="Show a traceback on errors.")] = False,
) -> None:
    """Which ONNX op types each backend prices; with MODEL, which of the model's ops are unsupported where.

    Examples:

      hawkeye-onnx ops

      hawkeye-onnx ops models/sklearn_mlp.onnx --batch 4

      hawkeye-onnx ops --format md -o docs/coverage.md
    """
    from hawkeye_onnx.cli import _check_output, _parse_backends, _run
    from hawkeye_onnx.load import parse_shape

    def go() -> None:
        _check_output(output, "ops.md")
        if fmt not in ("table", "md"):
            raise ParamError(f"--format {fmt!r}: choose table or md")
        selected = _parse_backends(backend)
        backends = load_backends(selected)
        if fmt == "md":
            if model is not None:
                raise ParamError("--format md writes the coverage matrix of the backends; drop MODEL "
                                 "(use `hawkeye-onnx report MODEL -f md` for a model)")
            text = coverage_markdown(backends)
            if output:
                output.write_text(text, encoding="utf-8")
            else:
                typer.echo(text, nl=False)
            return
        fh = output.open("w", encoding="utf-8") if output else None
        try:
            # a pipe or a file gets the full width (rich would fall back to 80 columns and crop backends)
            console = Console(file=fh, width=160) if fh else Console(width=None if sys.stdout.isatty() else 160)
            if model is None:
                console.print(matrix_table(backends))
                return
            shapes = dict(parse_shape(s) for s in (input_shape or []))
            prof, counts, unsupported = _model_rows(model, selected, shapes, batch)
            by_name = {x.name: x for x in backends}
            table = Table(title=f"{prof.model.name}: op types and unsupported nodes per backend",
                          title_justify="left")
            table.add_column("op type", no_wrap=True)
            table.add_column("nodes", justify="right")
            for b in prof.backends:
                table.add_column(b)
            for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                cells = []
                for b in prof.backends:
                    u = unsupported[b].get(op)
                    status = coverage(by_name[b], op).status
                    # not reported unsupported: priced, free, or every input public (computed locally)
                    cells.append(f"unsupported ({len(u.nodes)})" if u else _SEEN_AS.get(status, status))
                table.add_row(op, str(n), *cells)
            console.print(table)
            for b, ops in unsupported.items():
                for op, u in ops.items():
                    console.print(f"unsupported on {b}: {op} ({len(u.nodes)} nodes): {u.reason}", markup=False)
        finally:
            if fh:
                fh.close()

    _run(debug, go)


def register(app: typer.Typer) -> None:
    """Add the `ops` command to the CLI."""
    app.command("ops")(ops_command)
