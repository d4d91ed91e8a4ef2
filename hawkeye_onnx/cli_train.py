"""CLI pieces for training: the `expand` command and the `report --mode train` options.

Kept out of cli.py so that file only registers them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import onnx
import typer

from hawkeye_onnx.errors import ParamError
from hawkeye_onnx.load import load, parse_shape, require_static
from hawkeye_onnx.training.expand import OPTIMIZERS, TrainOptions, check, expand


def train_options(optimizer: str, loss: str, lr: float, momentum: float = 0.9, beta1: float = 0.9,
                  beta2: float = 0.999, eps: float = 1e-8) -> list[TrainOptions]:
    """One TrainOptions per comma-separated optimizer (`sgd,adam` compares them in one report)."""
    names = [o.strip() for o in optimizer.split(",") if o.strip()]
    if not names:
        raise ParamError(f"--optimizer {optimizer!r}: give one or more of {', '.join(OPTIMIZERS)}")
    out = [TrainOptions(loss=loss, optimizer=n, lr=lr, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps)
           for n in names]
    for o in out:
        o.check()
    return out


def expand_command(
    model: Annotated[Path, typer.Argument(help="Inference ONNX model.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the training graph.")],
    loss: Annotated[str, typer.Option(help="cross-entropy (secret one-hot label) or mse.")] = "cross-entropy",
    optimizer: Annotated[str, typer.Option(help="sgd, momentum or adam.")] = "sgd",
    lr: Annotated[float, typer.Option(help="Learning rate (public).")] = 0.01,
    momentum: Annotated[float, typer.Option(help="Momentum factor (public).")] = 0.9,
    style: Annotated[str, typer.Option(help="Autodiff style: onnx (minimal), crypten or jax.")] = "onnx",
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", "-i", help="Bind an input's shape, e.g. input=1x3x32x32 (repeatable).")] = None,
    batch: Annotated[int | None, typer.Option(help="Set dim 0 of every input.")] = None,
    debug: Annotated[bool, typer.Option(help="Show a traceback on errors.")] = False,
) -> None:
    """Write MODEL's training graph (forward, loss, backward, optimizer update) as an ONNX file.

    The file passes onnx.checker.check_model(full_check=True) and shape inference gives every tensor a shape.

      hawkeye-onnx expand models/mlp.onnx -o mlp_train.onnx --optimizer adam
    """
    from hawkeye_onnx.cli import _check_output, _run

    def go() -> None:
        _check_output(output, "train.onnx")
        opts = TrainOptions(loss=loss, optimizer=optimizer, lr=lr, momentum=momentum, style=style)
        opts.check()
        loaded = load(model, dict(parse_shape(s) for s in (input_shape or [])), batch)
        require_static(loaded)
        train, phases = expand(loaded.model, opts)
        inferred = check(train)
        onnx.save(inferred, str(output))
        counts = ", ".join(f"{k} {hi - lo}" for k, (lo, hi) in phases.items())
        sys.stderr.write(f"wrote {output} ({len(train.graph.node)} nodes: {counts})\n")

    _run(debug, go)


_COLUMNS = ("forward", "loss", "backward", "update")


def _phase_rows(training: dict) -> list[list[str]]:
    from hawkeye_onnx.render import human_bytes

    rows = []
    for run in training["runs"]:
        for name, rep in run["backends"].items():
            cells = [rep["phases"][ph]["online"] for ph in _COLUMNS] + [rep["total"]["online"]]
            rows.append([run["optimizer"], name, *(f"{human_bytes(c['bytes'])} / {c['rounds']}" for c in cells)])
    return rows


def render_phases(result: object, console: object) -> None:
    """Terminal table of the training phases per backend, one row per optimizer run (`--optimizer sgd,adam`)."""
    from rich.table import Table

    training = getattr(result, "training", None)
    if not training:
        return
    t = Table(title=f"Training step phases: loss {training['loss']}, lr {training['lr']} (online bytes / rounds)",
              title_justify="left")
    t.add_column("optimizer")
    t.add_column("backend")
    for ph in (*_COLUMNS, "total"):
        t.add_column(ph, justify="right")
    for row in _phase_rows(training):
        t.add_row(*row)
    console.print(t)  # type: ignore[attr-defined]


def phases_markdown(result: object) -> str:
    """The same table in Markdown (appended to `--format md` in train mode)."""
    training = getattr(result, "training", None)
    if not training:
        return ""
    head = ["optimizer", "backend", *_COLUMNS, "total"]
    lines = [f"\n## Training step phases (loss {training['loss']}, lr {training['lr']}; online bytes / rounds)\n",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in _phase_rows(training)]
    return "\n".join(lines) + "\n"
