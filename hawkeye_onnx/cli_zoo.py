"""`hawkeye-onnx zoo [NAME] -o FILE`: write a paper-scale architecture (`hawkeye_onnx.zoo`) as ONNX.

Without NAME, lists the architectures with their source, parameter count and node count. The file
gets its weights as a sparse `<file>.data` beside it (no disk blocks), so it is small whatever the
model's size; `hawkeye-onnx report FILE` profiles it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import onnx
import typer
from rich.console import Console
from rich.table import Table

from hawkeye_onnx import zoo
from hawkeye_onnx.errors import ParamError


def _check(name: str, batch: int, seq: int | None) -> None:
    if name not in zoo.NAMES:
        raise ParamError(f"unknown zoo model {name!r}: choose one of {', '.join(zoo.NAMES)} "
                         "(`hawkeye-onnx zoo` lists them)")
    if batch < 1:
        raise ParamError(f"--batch {batch}: must be a positive integer")
    if seq is not None and zoo.default_seq(name) is None:
        raise ParamError(f"--seq: {name} is not a sequence model (only bert_base and gpt2_small take --seq)")


def listing() -> Table:
    """One row per architecture: name, source, parameters (as published), nodes, default input."""
    table = Table(title="hawkeye-onnx zoo: architectures at paper scale (weights not real)", title_justify="left")
    for col, justify in (("name", "left"), ("source", "left"), ("parameters", "right"), ("nodes", "right"),
                         ("input", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name in zoo.NAMES:
        model = zoo.build(name)
        dims = "x".join(str(d.dim_value) for d in model.graph.input[0].type.tensor_type.shape.dim)
        extra = " (--seq 1..512)" if name == "bert_base" else " (--seq 1..1024)" if zoo.default_seq(name) else ""
        table.add_row(name, zoo.source(name), f"{zoo.pytorch_parameters(model):,}", str(len(model.graph.node)),
                      dims + extra)
    return table


def zoo_command(
    name: Annotated[str | None, typer.Argument(help="Architecture to write; omit to list them.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="ONNX file to write (its weights go to "
                                                "FILE.data, sparse).")] = None,
    batch: Annotated[int, typer.Option(help="Batch size (dim 0 of the input).")] = 1,
    seq: Annotated[int | None, typer.Option(help="Tokens per sequence for bert_base / gpt2_small "
                                             "(default 128; BERT-base at 512 with --seq 512).")] = None,
    fold_bn: Annotated[bool, typer.Option(help="Fold BatchNorm into the Conv before it, as the default "
                                          "TorchScript export does.")] = True,
    debug: Annotated[bool, typer.Option(help="Show a traceback on errors.")] = False,
) -> None:
    """Write a well-known architecture (ResNet-50, DenseNet-121, MobileNetV3, ShuffleNetV2, VGG-16, BERT-base,
    GPT-2...) as ONNX with its real layer shapes and exporter names, or list them.

    Examples:

      hawkeye-onnx zoo

      hawkeye-onnx zoo bert_base --seq 512 -o bert512.onnx && hawkeye-onnx report bert512.onnx
    """
    from hawkeye_onnx.cli import _check_output, _run

    def go() -> None:
        if name is None:
            Console().print(listing())
            return
        _check(name, batch, seq)
        if output is None:
            raise ParamError(f"give the file to write: hawkeye-onnx zoo {name} -o {name}.onnx")
        _check_output(output, f"{name}.onnx")
        try:
            path = zoo.save(name, output, batch=batch, seq=seq, fold_bn=fold_bn)
        except ValueError as exc:
            raise ParamError(str(exc)) from None
        except OSError as exc:
            raise ParamError(f"{output}: cannot write ({exc.strerror})") from None
        model_nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
        Console(soft_wrap=True, highlight=False).print(
            f"wrote {path} ({path.stat().st_size:,} B, {model_nodes} nodes) and {path.name}.data (sparse)",
            markup=False)

    _run(debug, go)


def register(app: typer.Typer) -> None:
    """Add the `zoo` command to the CLI."""
    app.command("zoo")(zoo_command)
