"""`hawkeye-onnx validate MODEL --backend crypten|semi2k`: the static profile against the real framework.

Registered in cli.py. Exit codes: 0 = static equals measured (within --tolerance), or both the profile
and the framework refuse the model; 1 = they differ; 2 = bad input; 6 = the framework is not installed
(the message says how to install it); 7 = the framework's harness crashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hawkeye_onnx.load import parse_shape
from hawkeye_onnx.validate import FRAMEWORKS, MODES, Phase, Validation, validate


def _pct(x: float) -> str:
    return "inf" if x == float("inf") else f"{100 * x:.4g}%"


def render(v: Validation, tolerance: float, console: Console) -> None:
    """Static vs measured, per phase, with the relative error."""
    fw = FRAMEWORKS[v.backend]
    shapes = ", ".join(f"{k}={'x'.join(map(str, d))}" for k, d in v.inputs.items())
    console.print(f"{v.model} on {fw.title}, {v.parties} parties, {v.mode} ({shapes})", markup=False)
    if v.online is None:
        ops = ", ".join(v.unsupported) or "none"
        console.print(f"  the framework cannot run it: {v.framework_error}", markup=False)
        console.print(f"  the static profile's unsupported ops: {ops}", markup=False)
    else:
        t = Table(show_header=True, header_style="bold")
        for col, just in (("phase", "left"), ("", "left"), ("static", "right"), ("measured", "right"),
                          ("rel. error", "right")):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        phases: list[tuple[str, Phase | None]] = [("online", v.online), ("offline", v.offline)]
        for name, ph in phases:
            if ph is None:
                continue
            t.add_row(name, "bytes", f"{ph.static_bytes:,}", f"{ph.measured_bytes:,}", _pct(ph.bytes_error))
            t.add_row("", "rounds", f"{ph.static_rounds:,}", f"{ph.measured_rounds:,}", _pct(ph.rounds_error))
        console.print(t)
        if v.offline is None:
            console.print(f"  offline: static {v.static_offline[0]:,} bytes / {v.static_offline[1]:,} rounds; "
                          f"measured: {v.offline_note}", markup=False)
        if v.unsupported:
            console.print(f"  the static profile reports unsupported ops: {', '.join(v.unsupported)}", markup=False)
        console.print(f"  {v.check}", markup=False)
    if v.online is None:
        verdict = "agree: both refuse the model" if v.agrees(tolerance) else "DIFFER: the profile prices it"
        console.print(f"  static and measured {verdict}", markup=False)
        return
    verdict = "agree" if v.agrees(tolerance) else "DIFFER"
    console.print(f"  static and measured {verdict} (tolerance {_pct(tolerance)})", markup=False)


def validate_command(
    model: Annotated[Path, typer.Argument(help="ONNX model file (with its weights: the framework runs it).")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="crypten or semi2k.")],
    mode: Annotated[str, typer.Option(help="What to run: " + ", ".join(sorted(MODES)) + ".")] = "infer",
    parties: Annotated[int, typer.Option(help="Number of parties (each a real process on this machine).")] = 2,
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", "-i", help="Bind an input's shape, e.g. input=1x3x32x32 (repeatable).")] = None,
    batch: Annotated[int | None, typer.Option(help="Set dim 0 of every input (overrides a fixed batch too).")] = None,
    tolerance: Annotated[float, typer.Option(
        help="Largest relative error accepted (0 = exact); exit 1 beyond it.")] = 0.0,
    python: Annotated[Path | None, typer.Option(
        help="The framework's Python interpreter (default: $HAWKEYE_CRYPTEN_PYTHON / $HAWKEYE_SPU_PYTHON, "
        "else .venv-crypten / .venv-spu here or beside the project).")] = None,
    offline: Annotated[bool, typer.Option(help="Also measure the offline phase where the framework can.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")] = None,
    debug: Annotated[bool, typer.Option(help="Show a traceback on errors.")] = False,
) -> None:
    """Run MODEL on the real framework and compare its measured communication with the static profile.

    Examples:

      hawkeye-onnx validate models/mlp.onnx --backend crypten

      hawkeye-onnx validate models/lenet5.onnx --backend semi2k --parties 3

    Exit codes: 0 = agree (or both refuse the model), 1 = they differ, 2 = bad input, 6 = the framework is
    not installed (bash validation/setup_envs.sh), 7 = the framework's harness crashed.
    """
    from hawkeye_onnx.cli import _run
    from hawkeye_onnx.errors import ParamError

    def go() -> bool:
        if tolerance < 0:
            raise ParamError("--tolerance must be >= 0")
        shapes = dict(parse_shape(s) for s in (input_shape or []))
        results = validate(model, backend, mode=mode, parties=parties, input_shapes=shapes or None, batch=batch,
                           python=python, offline=offline)
        console = Console(soft_wrap=True, highlight=False)
        for v in results:
            render(v, tolerance, console)
        if json_out:
            import json

            json_out.write_text(json.dumps([v.to_dict() for v in results], indent=1) + "\n", encoding="utf-8")
        return all(v.agrees(tolerance) for v in results)

    if not _run(debug, go):
        raise typer.Exit(1)
