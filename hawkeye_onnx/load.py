"""Load stage: read an ONNX model without its weights, bind input shapes, infer every shape.

Costs depend on dims only, so external weight files are never read (`load_external_data=False`),
which also makes models over 2 GB cheap to open. Symbolic or fixed input dims are overridden from
`--input-shape NAME=1x3x32x32` and `--batch N`; then onnx's shape inference with data propagation
runs, and onnxruntime's symbolic shape inference is tried where onnx leaves a shape unknown.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.onnx_cpp2py_export.shape_inference as _shape_inference  # bytes in, bytes out (no parse)
from google.protobuf.message import DecodeError
from onnx import TensorProto

from hawkeye_onnx.errors import ModelError, ShapeError
from hawkeye_onnx.shapes import ShapeTable, table_from_model_bytes

#: The oldest opset whose ops we know how to read (attributes moved to inputs over time).
MIN_OPSET = 7
MAX_IR_VERSION = onnx.IR_VERSION


@dataclass(frozen=True)
class LoadedModel:
    """A shape-inferred model plus facts for the report header."""

    model: onnx.ModelProto
    path: str | None
    sha256: str | None
    input_shapes: Mapping[str, tuple[int | str, ...]]
    shape_hint: str
    symbolic: tuple[str, ...] = ()  # inputs with an unbound dim, as `name [dims]` (`require_static`)


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`input=1x3x32x32` -> ("input", (1, 3, 32, 32))."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name or not re.fullmatch(r"\d+(x\d+)*", dims.strip()):
        raise ModelError(f"--input-shape {text!r}: expected NAME=DIMS such as input=1x3x32x32")
    shape = tuple(int(d) for d in dims.strip().split("x"))
    if any(d <= 0 for d in shape):
        raise ModelError(f"--input-shape {text!r}: every dim must be a positive integer")
    return name, shape


def _read(source: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str | None, str | None, bytes | None]:
    """The model, its path, its digest, and the file's bytes (None for an in-memory model)."""
    if isinstance(source, onnx.ModelProto):
        return source, None, hashlib.sha256(source.SerializeToString()).hexdigest(), None
    path = Path(source)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file (give the path of an .onnx model)")
    data = path.read_bytes()
    if not data:
        raise ModelError(f"{path}: the file is empty, not an ONNX model")
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: not an ONNX model or the file is truncated/corrupt ({type(exc).__name__})") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelError(f"{path}: not an ONNX model (no graph in the protobuf)")
    g = model.graph
    texts = [model.producer_name, model.producer_version, g.name, *(vi.name for vi in (*g.input, *g.output))]
    if any(type(t) is not str for t in texts):  # protobuf gives bytes for a string that is not UTF-8
        raise ModelError(f"{path}: a name in the model header is not valid UTF-8 text; the file is corrupt")
    return model, str(path), hashlib.sha256(data).hexdigest(), data


def _check_external_locations(model: onnx.ModelProto, path: str | None) -> frozenset[str]:
    """Refuse external-data locations outside the model's folder (path traversal), though we never read them:
    a file that names /etc/shadow or ../../secrets is hostile, and other tools that load it would follow it.
    Returns the initializers' names, read in the same pass (a 1M-node model has 570k initializers: each pass
    over them takes 0.3 s, and binding and the header facts need to know which inputs are initializers)."""
    base = Path(path).resolve().parent if path else None
    checked: set[str] = set()  # a big model keeps all its weights in one or a few files
    names = []
    external = TensorProto.EXTERNAL
    for init in model.graph.initializer:
        names.append(init.name)
        if init.data_location != external:
            continue
        entries = init.external_data
        if len(entries) and entries[0].key == "location":  # where exporters write it
            location = entries[0].value
        else:
            location = next((e.value for e in entries if e.key == "location"), "")
        if location in checked:
            continue
        checked.add(location)
        loc = Path(location)
        outside = loc.is_absolute() or ".." in loc.parts
        if base is not None and not outside:
            outside = not (base / loc).resolve().is_relative_to(base)
        if outside:
            raise ModelError(f"{path or '<model>'}: initializer {init.name!r} keeps its data at {location!r}, "
                             "outside the model's folder; refusing it (move the data file beside the model)")
    return frozenset(names)


def _check_versions(model: onnx.ModelProto, shown: str) -> None:
    if model.ir_version > MAX_IR_VERSION:
        raise ModelError(f"{shown}: IR version {model.ir_version} is newer than this onnx "
                         f"({onnx.__version__}) reads (max {MAX_IR_VERSION}); upgrade onnx")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset < MIN_OPSET:
        raise ModelError(f"{shown}: opset {opset} is too old (need >= {MIN_OPSET}); convert it with "
                         "onnx.version_converter.convert_version(model, 17)")
    if opset is not None and opset > onnx.defs.onnx_opset_version():
        raise ModelError(f"{shown}: opset {opset} is newer than this onnx ({onnx.__version__}) knows; upgrade onnx")


def _bind_inputs(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]], batch: int | None,
                 shown: str, inits: frozenset[str]) -> bool:
    """Set input dims in place; returns True if any dim changed (stale value_info must go)."""
    inputs = {vi.name: vi for vi in model.graph.input if vi.name not in inits}
    for name in shapes:
        if name not in inputs:
            raise ModelError(f"--input-shape {name}=...: the model has no input {name!r} "
                             f"(inputs: {', '.join(inputs) or 'none'})")
    changed = False
    for name, vi in inputs.items():
        if not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if name in shapes:
            want = shapes[name]
            if dims and len(dims) != len(want):
                raise ModelError(f"--input-shape {name}=...: the model's input {name!r} has rank {len(dims)}, "
                                 f"not {len(want)}")
            del dims[:]
            for d in want:
                dims.add().dim_value = d
            changed = True
        elif batch is not None and len(dims) > 0:
            d0 = dims[0]
            if not (d0.HasField("dim_value") and d0.dim_value == batch):
                d0.Clear()
                d0.dim_value = batch
                changed = True
    return changed


def _symbolic_inputs(model: onnx.ModelProto, inits: frozenset[str]) -> list[str]:
    out = []
    for vi in model.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            shown = "x".join(d.dim_param or "?" if not d.HasField("dim_value") else str(d.dim_value) for d in dims)
            out.append(f"{vi.name} [{shown}]")
    return out


def ort_symbolic(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """onnxruntime's sympy-based inference, the fallback where onnx left shapes unknown (about 7x
    slower than onnx's C++ inference, so only called when needed); None when it cannot finish."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return None
    # When it cannot finish, onnxruntime saves `sym_shape_infer_temp.onnx` (and the weights as `<uuid>.data`)
    # into the working directory before raising: run it from a scratch folder so the user's stays clean.
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="hawkeye-ort-") as scratch:
        os.chdir(scratch)
        try:
            return SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
        except Exception:
            return None
        finally:
            os.chdir(here)


@dataclass(frozen=True)
class BoundModel:
    """A model read and checked, its inputs bound, shapes not yet inferred."""

    model: onnx.ModelProto
    path: str | None
    sha256: str | None
    data: bytes | None  # the file's bytes while the model is unchanged (spares infer_shapes a serialisation)
    shown: str  # how messages name the model
    initializers: frozenset[str] | None = None  # their names (None: not read yet)


def load(source: str | os.PathLike | onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
         batch: int | None = None) -> LoadedModel:
    """Read, bind and shape-infer a model. Raises ModelError / ShapeError with a one-line message."""
    bound = read_bound(source, input_shapes, batch)
    return loaded(bound, infer(bound))


@dataclass(frozen=True)
class ReadModel:
    """A model as read from its file (or a copy of the caller's ModelProto): parsed, nothing checked yet."""

    model: onnx.ModelProto
    path: str | None
    sha256: str | None
    data: bytes | None  # the file's bytes (None for an in-memory model)
    copied: bool  # `model` is ours to change (False: it is the caller's object)


def read_model(source: str | os.PathLike | onnx.ModelProto) -> ReadModel:
    """Read and parse a model file, never its weights (one-line ModelError when it is not ONNX)."""
    model, path, digest, data = _read(source)
    return ReadModel(model, path, digest, data, not isinstance(source, onnx.ModelProto))


def read_bound(source: str | os.PathLike | onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
               batch: int | None = None) -> BoundModel:
    """Read a model (never its weights), check its versions and external-data paths, bind its inputs."""
    return bind(read_model(source), input_shapes, batch)


def bind(read: ReadModel, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
         batch: int | None = None) -> BoundModel:
    """Check a read model's versions and external-data paths and bind its inputs (on the model itself, or
    on a copy when it is the caller's)."""
    model, path, data = read.model, read.path, read.data
    shown = path or "<model>"
    if not read.copied:
        model = onnx.ModelProto()
        model.CopyFrom(read.model)
    _check_versions(model, shown)
    inits = _check_external_locations(model, path)
    if batch is not None and batch <= 0:
        raise ModelError(f"--batch {batch}: must be a positive integer")
    if _bind_inputs(model, input_shapes or {}, batch, shown, inits):
        data = None  # the model changed: the file's bytes are stale
        del model.graph.value_info[:]
        for out in model.graph.output:
            if out.type.HasField("tensor_type"):
                out.type.tensor_type.ClearField("shape")
    return BoundModel(model, path, read.sha256, data, shown, inits)


def infer(bound: BoundModel) -> onnx.ModelProto:
    """onnx's shape inference (with data propagation) of a bound model; ModelError when it fails."""
    return onnx.load_from_string(_inferred_bytes(bound))


def infer_table(bound: BoundModel) -> ShapeTable:
    """`value_shapes(infer(bound).graph)`, read from the inferred model's bytes without parsing the model
    (`shapes.table_from_model_bytes`: 0.5 s instead of 2.7 s at 1M nodes)."""
    return table_from_model_bytes(_inferred_bytes(bound))


def _inferred_bytes(bound: BoundModel) -> bytes:
    try:
        # an unchanged file's own bytes spare infer_shapes re-serialising the model (0.2 s at 200k nodes)
        return _shape_inference.infer_shapes(bound.model.SerializeToString() if bound.data is None else bound.data,
                                             False, False, True)  # check_type, strict_mode, data_prop
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{bound.shown}: shape inference failed: {first[:300]}") from None


def loaded(bound: BoundModel, model: onnx.ModelProto) -> LoadedModel:
    """The header facts of a bound model, with `model` (its inferred form, or itself when the shapes are
    inferred elsewhere): they read only the graph's inputs, which shape inference leaves as they are."""
    shown = bound.shown
    inits = bound.initializers
    if inits is None:
        inits = frozenset(i.name for i in model.graph.initializer)
    symbolic = _symbolic_inputs(model, inits)
    if symbolic:
        hint = (f"the model input(s) {', '.join(symbolic)} have unbound dims: pass "
                f"--input-shape NAME=DIMS (e.g. --input-shape {symbolic[0].split(' ')[0]}=1x...) or --batch N")
    else:
        hint = "pass --input-shape NAME=DIMS for the model's inputs, or check the export"
    shapes: dict[str, tuple[int | str, ...]] = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim)
        if tt.elem_type == TensorProto.UNDEFINED:
            raise ModelError(f"{shown}: input {vi.name!r} has no tensor type")
        _check_dims(vi.name, shapes[vi.name], shown)
    return LoadedModel(model, bound.path, bound.sha256, shapes, hint, tuple(symbolic))


def _check_dims(name: str, shape: tuple[int | str, ...], shown: str) -> None:
    """A negative or zero input dim is absurd: it would price the model at zero, silently."""
    bad = [d for d in shape if isinstance(d, int) and d <= 0]
    if bad:
        what = "negative" if bad[0] < 0 else "zero"
        text = "x".join(map(str, shape))
        raise ModelError(f"{shown}: input {name!r} has a {what} dim ({bad[0]}) in its shape {text}: absurd dims; "
                         f"bind real ones with --input-shape {name}=DIMS or --batch N")


def require_static(loaded: LoadedModel) -> None:
    """Fail early when a graph input still has an unbound dim: every cost depends on it."""
    if loaded.symbolic:
        raise ShapeError(loaded.shape_hint)
