"""The bad-input corpus: small hostile or broken ONNX files, one per kind of problem.

Generated rather than committed (each is a few hundred bytes built with onnx.helper, so the bytes are
reviewable here): `write_corpus(folder)` writes every case, `python tests/corpus/build.py DIR` too.
Each case names the file, extra CLI arguments, the documented exit code and words the one-line error
must contain (README, "Exit codes"). tests/test_bad_inputs.py runs the CLI on each.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto, helper

OPSET = 17


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], Path]  # writes the input into the folder, returns the path to give the CLI
    args: tuple[str, ...]
    code: int
    needles: tuple[str, ...]


def _model(nodes, inputs, outputs, inits=(), value_info=(), opset=OPSET, ir_version=8, extra_opsets=()):
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), initializer=list(inits),
                              value_info=list(value_info))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    model.ir_version = ir_version
    return model


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def relu_model(shape=(1, 4), **kw) -> onnx.ModelProto:
    """The smallest sound model: y = Relu(x), a secret input and a secret cost."""
    return _model([helper.make_node("Relu", ["x"], ["y"], name="/act/Relu")], [_vi("x", list(shape))],
                  [_vi("y", None)], **kw)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())  # no checker: these models are meant to be wrong
    return path


def _raw(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path
    return make


def model_file(name: str, build: Callable[[], onnx.ModelProto]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return _save(build(), folder / name)
    return make


def _directory(folder: Path) -> Path:
    path = folder / "a_folder.onnx"
    path.mkdir(exist_ok=True)
    return path


def _truncated(folder: Path) -> Path:
    data = relu_model().SerializeToString()
    path = folder / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt(folder: Path) -> Path:
    """A valid model behind a graph field (7, length-delimited) whose length claims 4 GB."""
    path = folder / "corrupt.onnx"
    path.write_bytes(b"\x3a\xff\xff\xff\x0f" + relu_model().SerializeToString())
    return path


def _cycle() -> onnx.ModelProto:
    a = helper.make_node("Add", ["x", "b"], ["a"], name="/loop/Add")
    b = helper.make_node("Relu", ["a"], ["b"], name="/loop/Relu")
    return _model([a, b], [_vi("x", [1, 4])], [_vi("b", None)])


def _dangling() -> onnx.ModelProto:
    return _model([helper.make_node("Relu", ["ghost"], ["y"], name="/r/Relu")], [_vi("x", [1, 4])], [_vi("y", None)])


def _custom_domain() -> onnx.ModelProto:
    node = helper.make_node("FancyOp", ["x"], ["y"], name="/block/FancyOp", domain="com.example")
    return _model([node], [_vi("x", [1, 4])], [_vi("y", [1, 4])], extra_opsets=[helper.make_opsetid("com.example", 1)])


def _external(location: str, create: bool) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        w = TensorProto()
        w.name, w.data_type = "W", TensorProto.FLOAT
        w.dims.extend([4, 4])
        w.data_location = TensorProto.EXTERNAL
        entry = w.external_data.add()
        entry.key, entry.value = "location", location
        if create:
            (folder / location).write_bytes(b"\0" * 64)
        node = helper.make_node("MatMul", ["x", "W"], ["y"], name="/fc/MatMul")
        return _save(_model([node], [_vi("x", [1, 4])], [_vi("y", None)], inits=[w]), folder / "external.onnx")
    return make


CASES: tuple[Case, ...] = (
    Case("missing_file", lambda f: f / "no_such_model.onnx", (), 2, ("no such file",)),
    Case("directory", _directory, (), 2, ("not a file",)),
    Case("empty_file", _raw("empty.onnx", b""), (), 2, ("empty",)),
    Case("not_onnx_text", _raw("notes.onnx", b"this is a text file, not a model\n"), (), 2, ("not an ONNX model",)),
    Case("not_onnx_binary", _raw("random.onnx", bytes(range(256)) * 4), (), 2, ("not an ONNX model",)),
    Case("truncated", _truncated, (), 2, ("truncated.onnx", "truncated/corrupt")),
    Case("corrupt_length", _corrupt, (), 2, ("corrupt.onnx", "corrupt")),
    Case("opset_too_new", model_file("opset99.onnx", lambda: relu_model(opset=99)), (), 2,
         ("opset 99", "upgrade onnx")),
    Case("opset_too_old", model_file("opset3.onnx", lambda: relu_model(opset=3)), (), 2,
         ("opset 3", "convert")),
    Case("ir_version_too_new", model_file("ir99.onnx", lambda: relu_model(ir_version=99)), (), 2,
         ("IR version 99", "upgrade onnx")),
    Case("cycle", model_file("cycle.onnx", _cycle), (), 2, ("'b'", "cycle")),
    Case("dangling_input", model_file("dangling.onnx", _dangling), (), 2, ("'ghost'", "dangling")),
    Case("symbolic_dims", model_file("symbolic.onnx", lambda: relu_model(shape=("batch", 4))), (), 5,
         ("x [batchx4]", "--input-shape", "--batch")),
    Case("negative_dim", model_file("negative.onnx", lambda: relu_model(shape=(1, -4))), (), 2,
         ("'x'", "negative")),
    Case("zero_dim", model_file("zero.onnx", lambda: relu_model(shape=(0, 4))), (), 2, ("'x'", "zero")),
    Case("dims_beyond_2_63", model_file("huge.onnx", lambda: relu_model(shape=(2**40, 2**40))), (), 2,
         ("absurd dims",)),
    Case("bound_dims_beyond_2_63", model_file("bind_huge.onnx", relu_model),
         ("--input-shape", "x=4294967296x4294967296"), 2, ("absurd dims",)),
    Case("custom_domain_strict", model_file("custom.onnx", _custom_domain), ("--strict",), 3,
         ("com.example::FancyOp",)),
    Case("external_data_outside_folder", _external("../../etc/passwd", False), (), 2,
         ("outside the model's folder", "refusing")),
    Case("external_data_absolute", _external("/etc/passwd", False), (), 2, ("outside the model's folder",)),
)

#: Inputs that look odd but are fine: exit 0.
GOOD_CASES: tuple[Case, ...] = (
    Case("external_data_missing", _external("weights_not_shipped.bin", False), (), 0, ()),
    Case("external_data_present", _external("weights.bin", True), (), 0, ()),
    Case("custom_domain_listed", model_file("custom.onnx", _custom_domain), (), 0, ()),
)


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every case (bad and good) into `folder`, one sub-folder each; returns name -> path."""
    out = {}
    for case in (*CASES, *GOOD_CASES):
        sub = folder / case.name / "model"
        sub.mkdir(parents=True, exist_ok=True)
        out[case.name] = case.make(sub)
    return out


if __name__ == "__main__":
    for name, path in write_corpus(Path(sys.argv[1])).items():
        print(f"{name}: {path}")
