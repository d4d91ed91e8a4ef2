"""Command line: `hawkeye-onnx report MODEL`, `hawkeye-onnx backends`.

A thin layer over `hawkeye_onnx.profile`. Errors the user can fix print one line on stderr and exit
with a documented code (see `EXIT_CODES`); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Queue
from threading import Thread
from typing import Annotated, BinaryIO, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from hawkeye_onnx.errors import HawkeyeError, HawkeyeWarning, ParamError, UnsupportedError
from hawkeye_onnx.html_report import render_html
from hawkeye_onnx.load import parse_shape
from hawkeye_onnx.network import networks
from hawkeye_onnx.profile import profile
from hawkeye_onnx.progress import StageProgress
from hawkeye_onnx.render import render_markdown, render_table
from hawkeye_onnx.result import SpilledTree
from hawkeye_onnx.rules import load_backends

EXIT_CODES = {
    0: "success",
    1: "internal error (a bug: please report it with --debug output)",
    2: "bad input: missing/corrupt model, bad option or parameter, output that cannot be written",
    3: "--strict and some operator is unsupported on a selected backend",
    4: "a rule file is broken (message gives file:line)",
    5: "a tensor has no static shape: bind inputs with --input-shape / --batch",
    6: "validate: the framework (CrypTen / SPU) is not installed; the message says how to install it",
    7: "validate: the framework's harness crashed",
    137: "killed by the system, usually out of memory (training a big model: a warning says so first)",
}

app = typer.Typer(
    name="hawkeye-onnx",
    help="Static profiler of the communication cost (bytes, rounds) of ONNX models under MPC frameworks.\n\n"
    "Exit codes: " + "; ".join(f"{k} = {v}" for k, v in EXIT_CODES.items()),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


def _run(debug: bool, fn: Callable[[], T]) -> T:
    err = Console(stderr=True, soft_wrap=True, highlight=False)

    def warn(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        if issubclass(category, HawkeyeWarning):  # one line, as errors are; other warnings as Python shows them
            err.print(f"hawkeye-onnx: warning: {message}", markup=False)
        else:
            shown(message, category, *args, **kwargs)  # type: ignore[arg-type]

    try:
        with warnings.catch_warnings():
            shown = warnings.showwarning
            warnings.showwarning = warn
            warnings.simplefilter("always", HawkeyeWarning)
            return fn()
    except HawkeyeError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"hawkeye-onnx: error: {exc}", markup=False)
        raise typer.Exit(exc.exit_code) from None
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        err.print("hawkeye-onnx: interrupted", markup=False)
        raise typer.Exit(130) from None
    except BrokenPipeError:  # the reader left (`... | head`): stop quietly, with rich's code for it (tables)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush must not fail again
        raise typer.Exit(1) from None
    except OSError as exc:  # a file the user named or gave room for: a missing folder, no permission, a full disk
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"hawkeye-onnx: error: {where}{exc.strerror or exc}: check the path, its permissions and the free "
                  "space", markup=False)
        raise typer.Exit(2) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
        first = (str(exc).splitlines() or [""])[0][:200]
        err.print(f"hawkeye-onnx: internal error: {type(exc).__name__}: {first} (run with --debug for a traceback)",
                  markup=False)
        raise typer.Exit(1) from None


def _check_output(output: Path | None, example: str = "report.json") -> None:
    """Refuse an --output that cannot be written before the work, not after a minute of it (every command that
    writes a file; `example` is the file name suggested for a folder)."""
    if output is None:
        return
    if output.is_dir():
        raise ParamError(f"--output {output}: is a folder; give a file name, e.g. {output / example}")
    if not output.parent.is_dir():
        raise ParamError(f"--output {output}: the folder {output.parent} does not exist; create it first")


def _write_parts(parts: Iterable[str | SpilledTree], output: Path | None) -> None:
    """Write text pieces to `output` (or stdout) as they are made: a big model's JSON is hundreds of MB.
    A thread writes each piece while the next is made (a write to a file releases the GIL; at 200k nodes
    the disk took 0.7 s of the JSON's 2 s, now hidden behind the making). A tree kept in a spill file is
    copied from there by the kernel (`SpilledTree.copy_to`)."""
    with _writing(output):
        _write_to(parts, output)


@contextmanager
def _writing(output: Path | None) -> Iterator[None]:
    """Name the file in the error that writing it raises (a full disk's carries no file name)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and not isinstance(exc, BrokenPipeError):
            exc.filename = str(output or "<stdout>")
        raise


def _write_to(parts: Iterable[str], output: Path | None) -> None:
    if output is None:
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stream (a test's capture): no thread needed
            for part in parts:
                sys.stdout.write(part if isinstance(part, str) else part.json())
            return
        _write_behind(parts, binary)
        binary.flush()
        return
    with output.open("wb") as fh:
        _write_behind(parts, fh)


def _write_behind(parts: Iterable[str | SpilledTree], fh: BinaryIO) -> None:
    """Encode each piece here and write it to `fh` in a second thread; the writer's error (a full disk, a
    closed pipe) stops the making and is raised here."""
    queue: Queue[bytes | SpilledTree | None] = Queue(maxsize=2)  # bounded: at most two pieces wait in memory
    failed: list[BaseException] = []

    def write() -> None:
        while (data := queue.get()) is not None:
            if not failed:
                try:
                    if isinstance(data, bytes):
                        fh.write(data)
                    else:  # what is buffered goes first, then the tree straight to the file descriptor
                        fh.flush()
                        data.copy_to(fh.fileno())
                except BaseException as exc:  # handed to the main thread, raised there
                    failed.append(exc)

    writer = Thread(target=write, name="hawkeye-onnx-writer", daemon=True)
    writer.start()
    try:
        for part in parts:
            if failed:
                break
            queue.put(part.encode("utf-8") if isinstance(part, str) else part)
    finally:
        queue.put(None)
        writer.join()
    if failed:
        raise failed[0]


def _parse_params(values: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        backend, dot, name = key.partition(".")
        if not sep or not dot or not backend or not name or not value:
            raise ParamError(f"--param {item!r}: expected BACKEND.NAME=VALUE, e.g. crypten.parties=3")
        out.setdefault(backend, {})[name] = value
    return out


def _parse_backends(value: str) -> list[str] | None:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names or names == ["all"]:
        return None
    return names


@app.command()
def report(
    model: Annotated[Path, typer.Argument(help="ONNX model file (weights are never read).")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="Comma-separated backends, or 'all'.")] = "all",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (terminal), md, html or json.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", "-i", help="Bind an input's shape, e.g. input=1x3x32x32 (repeatable).")] = None,
    batch: Annotated[int | None, typer.Option(help="Set dim 0 of every input (overrides a fixed batch too).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Override a backend parameter, e.g. crypten.parties=3 (repeatable). "
        "See `hawkeye-onnx backends`.")] = None,
    depth: Annotated[int | None, typer.Option(
        help="Depth of the module tree: in JSON, levels kept (default all); in tables, the module level shown "
        "(default 1).")] = None,
    strict: Annotated[bool, typer.Option(help="Exit with code 3 if any operator is unsupported.")] = False,
    public_weights: Annotated[bool, typer.Option(help="Treat weights (float initializers) as public.")] = False,
    top: Annotated[int, typer.Option(help="Rows in the module and operator tables.")] = 15,
    network: Annotated[list[str] | None, typer.Option(
        "--network", help="Network profile for time estimates in md/html, NAME=BANDWIDTH,RTT, e.g. LAN=10Gbit,0.1ms "
        "(repeatable; defaults LAN=1Gbit,0.5ms and WAN=100Mbit,40ms).")] = None,
    mode: Annotated[str, typer.Option(help="inference, or train: one training step in phases forward, loss, "
                                      "backward, update.")] = "inference",
    optimizer: Annotated[str, typer.Option(help="--mode train: sgd, momentum, adam, or several to compare "
                                           "(sgd,adam).")] = "sgd",
    loss: Annotated[str, typer.Option(help="--mode train: cross-entropy or mse (label secret).")] = "cross-entropy",
    lr: Annotated[float, typer.Option(help="--mode train: learning rate (public).")] = 0.01,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar on stderr (it shows only on a "
                                        "terminal, for models that take over a second).")] = False,
    debug: Annotated[bool, typer.Option(help="Show a traceback on errors.")] = False,
) -> None:
    """Profile MODEL's communication under each backend (default: a table per backend, top modules and operators).

    Examples:

      hawkeye-onnx report models/lenet5.onnx

      hawkeye-onnx report models/mlp.onnx --batch 32 --backend crypten -p crypten.parties=3 -f json -o mlp.json
    """

    def go() -> None:
        if fmt not in ("table", "md", "json", "html"):
            raise ParamError(f"--format {fmt!r}: choose table, md, html or json")
        nets = networks(network)
        if depth is not None and depth < 0:
            raise ParamError("--depth must be >= 0")
        shapes = dict(parse_shape(s) for s in (input_shape or []))
        if mode not in ("inference", "train"):
            raise ParamError(f"--mode {mode!r}: choose inference or train")
        if mode == "train" and public_weights:
            raise ParamError("--public-weights with --mode train: training updates the weights, they stay secret")
        _check_output(output)
        with StageProgress(enabled=not quiet) as bar:
            if mode == "train":
                from hawkeye_onnx.cli_train import train_options
                from hawkeye_onnx.training import profile_train

                result = profile_train(model, train_options(optimizer, loss, lr), backends=_parse_backends(backend),
                                       params=_parse_params(param or []), input_shapes=shapes, batch=batch,
                                       depth=depth if fmt == "json" else None, progress=bar)
            else:
                result = profile(model, backends=_parse_backends(backend), params=_parse_params(param or []),
                                 input_shapes=shapes, batch=batch, public_weights=public_weights,
                                 depth=depth if fmt == "json" else None, progress=bar)
            if fmt == "json" and output:  # under the bar too: a big tree takes seconds to write
                bar("writing JSON", 1, 1)
                _write_parts(result.json_parts(spilled=True), output)
        text: str | None = None
        if fmt == "json" and not output:  # after the bar: its live display must not catch stdout
            _write_parts(result.json_parts(spilled=True), None)
        elif fmt == "md":
            text = render_markdown(result, depth=depth or 1, top=top, nets=nets)
            if result.training and len(result.training.get("runs", ())) > 1:  # --optimizer sgd,adam
                from hawkeye_onnx.cli_train import phases_markdown

                text += phases_markdown(result)
        elif fmt == "html":
            text = render_html(result, nets, depth=depth or 1, top=top, tree_depth=depth)
        with _writing(output):
            if text is not None:
                if output:
                    output.write_text(text, encoding="utf-8")
                else:
                    sys.stdout.write(text)
                    sys.stdout.flush()  # a full disk shows here, not at exit
            elif fmt == "table":
                from hawkeye_onnx.cli_train import render_phases

                if output:
                    with output.open("w", encoding="utf-8") as fh:
                        render_table(result, Console(file=fh, width=160), depth=depth or 1, top=top)
                        render_phases(result, Console(file=fh, width=160))
                else:
                    render_table(result, Console(), depth=depth or 1, top=top)
                    render_phases(result, Console())
                    sys.stdout.flush()
        if strict and result.has_unsupported:
            ops = sorted({u.op_type for b in result.backends.values() for u in b.unsupported})
            raise UnsupportedError(f"unsupported operators with --strict: {', '.join(ops)}")

    _run(debug, go)


@app.command()
def backends(
    debug: Annotated[bool, typer.Option(help="Show a traceback on errors.")] = False,
) -> None:
    """List the backends, their parameters (defaults, meaning, source) and the ops each one prices."""

    def go() -> None:
        console = Console()
        for b in load_backends():
            table = Table(title=f"{b.name}: {b.title} {b.version} ({b.framework})", title_justify="left")
            table.add_column("parameter")
            table.add_column("default", justify="right")
            table.add_column("meaning")
            table.add_column("source")
            for p in b.params.values():
                table.add_row(f"{b.name}.{p.name}", str(p.default), p.doc, p.source)
            console.print(table)
            priced = sorted(op for op, r in b.ops.items() if not r.free and r.unsupported is None)
            free = sorted(op for op, r in b.ops.items() if r.free)
            console.print(f"  priced ops: {', '.join(priced)}", markup=False)
            console.print(f"  free (local) ops: {', '.join(free)}", markup=False)
            console.print(f"  rule file: {b.path}\n", markup=False)

    _run(debug, go)


from hawkeye_onnx import cli_ops, cli_zoo  # noqa: E402 - commands in their own modules
from hawkeye_onnx.compare import compare as _compare  # noqa: E402

cli_zoo.register(app)
cli_ops.register(app)
app.command("compare")(_compare)

from hawkeye_onnx.cli_validate import validate_command  # noqa: E402  (needs _run above)

app.command("validate")(validate_command)


def _register_expand() -> None:
    from hawkeye_onnx.cli_train import expand_command

    app.command("expand")(expand_command)


_register_expand()


def main() -> None:  # pragma: no cover - console entry
    """Run the CLI, then leave without tearing the heap down: freeing a million-node graph's records one by
    one takes about a second and serves nobody once the output is written (mypy's `hard_exit` does the same)."""
    try:
        app(prog_name="hawkeye-onnx")
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        code = exc.code or 0
    else:
        code = 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): nothing more to say
            code = code or 0
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
