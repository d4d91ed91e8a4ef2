"""The command line: exit codes, one-line errors on bad input, the JSON contract, --strict, --param."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from validation import opzoo

MODELS = Path(__file__).resolve().parent.parent / "models"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hawkeye_onnx", *args], capture_output=True, text=True)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hawkeye-onnx: error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(run("report", str(tmp_path / "nope.onnx")), 2, "no such file")


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    assert_one_line_error(run("report", str(tmp_path)), 2, "not a file")


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a protobuf \x00\xff")
    assert_one_line_error(run("report", str(bad)), 2, "not an ONNX model")


def test_truncated(tmp_path: Path) -> None:
    data = (MODELS / "lenet5.onnx").read_bytes()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(data[: len(data) // 3])
    assert_one_line_error(run("report", str(bad)), 2, "trunc.onnx")


def test_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "empty.onnx"
    bad.write_bytes(b"")
    assert_one_line_error(run("report", str(bad)), 2, "empty")


def test_symbolic_dim_without_binding_names_input_and_flag() -> None:
    assert_one_line_error(run("report", str(MODELS / "mlp.onnx")), 5, "input", "--input-shape", "--batch")


def test_batch_binds_symbolic_dim_and_scales_cost() -> None:
    one = json.loads(run("report", str(MODELS / "mlp.onnx"), "--batch", "1", "-f", "json", "-b", "crypten").stdout)
    four = json.loads(run("report", str(MODELS / "mlp.onnx"), "--batch", "4", "-f", "json", "-b", "crypten").stdout)
    assert one["model"]["inputs"]["input"] == [1, 784]
    assert four["model"]["inputs"]["input"] == [4, 784]
    # CrypTen Gemm opens b*i + i*o: only the activation part grows with the batch. Measured CrypTen costs
    # (../shared/ground-truth/README.md, CrypTen table): Gemm 16 (b i + i o) bytes, ReLU 464 bytes per element;
    # models/mlp.onnx is Gemm 784 -> 128, ReLU, Gemm 128 -> 128, ReLU, Gemm 128 -> 10.
    def total(d: dict) -> int:
        return d["backends"]["crypten"]["total"]["online"]["bytes"]

    def crypten(b: int) -> int:
        return sum(16 * (b * i + i * o) for i, o in ((784, 128), (128, 128), (128, 10))) + 464 * b * (128 + 128)

    assert crypten(1) == 2023680  # the measured CrypTen forward of mlp.onnx at batch 1 (ground-truth vectors.json)
    assert (total(one), total(four)) == (crypten(1), crypten(4))


def test_batch_overrides_fixed_batch() -> None:
    data = json.loads(run("report", str(MODELS / "lenet5.onnx"), "--batch", "3", "-f", "json").stdout)
    assert data["model"]["inputs"]["input"] == [3, 1, 28, 28]


def test_input_shape_unknown_name() -> None:
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "--input-shape", "nope=1x2"), 2, "nope")


def test_input_shape_malformed() -> None:
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "--input-shape", "input=1x-3"), 2, "NAME=DIMS")


def test_unknown_backend_and_param() -> None:
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "-b", "nosuch"), 2, "unknown backend")
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "-p", "crypten.nosuch=1"), 2, "nosuch")
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "-p", "crypten.parties=two"), 2, "integer")
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "-p", "parties=3"), 2, "BACKEND.NAME=VALUE")


def test_unknown_format() -> None:
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "-f", "xml"), 2, "--format")


def _custom_op_model(path: Path) -> Path:
    node = helper.make_node("FancyOp", ["x"], ["y"], name="/block/FancyOp", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, path)
    return path


def test_unsupported_op_reported_by_node_and_strict_exit_3(tmp_path: Path) -> None:
    path = _custom_op_model(tmp_path / "custom.onnx")
    ok = run("report", str(path), "-f", "json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    for b in data["backends"].values():
        assert b["unsupported"][0]["op_type"] == "com.example::FancyOp"
        assert b["unsupported"][0]["nodes"] == ["/block/FancyOp"]
    assert_one_line_error(run("report", str(path), "--strict"), 3, "FancyOp")


def test_dangling_input(tmp_path: Path) -> None:
    node = helper.make_node("Relu", ["ghost"], ["y"], name="/r/Relu")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "dangling.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    proc = run("report", str(path))
    assert proc.returncode == 2 and "ghost" in proc.stderr and "Traceback" not in proc.stderr


def test_json_contract(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = run("report", str(MODELS / "lenet5.onnx"), "-f", "json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["schema"] == "hawkeye-onnx/1"
    assert data["mode"] == "inference"
    assert set(data["model"]) >= {"name", "sha256", "inputs", "nodes", "parameters", "opset"}
    assert list(data["backends"])[:2] == ["crypten", "semi2k"]
    for b in data["backends"].values():
        assert set(b) >= {"params", "total", "tree", "ops", "unsupported", "primitives"}
        for phase in ("online", "offline"):
            assert set(b["total"][phase]) == {"bytes", "rounds"}
        # The tree's root carries the totals, and its children add up to them.
        tree = b["tree"]
        assert tree["online"] == b["total"]["online"]
        assert sum(c["online"]["bytes"] for c in tree["children"]) == tree["online"]["bytes"]
        assert sum(c["online"]["rounds"] for c in tree["children"]) == tree["online"]["rounds"]
        assert sum(o["online"]["bytes"] for o in b["ops"].values()) == b["total"]["online"]["bytes"]


def test_tree_groups_by_module_and_keeps_primitives() -> None:
    data = json.loads(run("report", str(MODELS / "resnet_cifar.onnx"), "-f", "json", "-b", "crypten").stdout)
    tree = data["backends"]["crypten"]["tree"]
    names = [c["name"] for c in tree["children"]]
    assert "layer1" in names and "layer2" in names
    layer2 = next(c for c in tree["children"] if c["name"] == "layer2")
    kids = {c["name"] for c in layer2["children"]}
    assert "downsample" in kids
    relu = next(c for c in layer2["children"] if c.get("op_type") == "Relu")
    assert [p["name"] for p in relu["children"]] == ["relu"]


def test_depth_limits_the_json_tree() -> None:
    data = json.loads(run("report", str(MODELS / "resnet_cifar.onnx"), "-f", "json", "--depth", "1").stdout)
    for b in data["backends"].values():
        assert all(c["children"] == [] for c in b["tree"]["children"])


def test_table_and_markdown_render() -> None:
    table = run("report", str(MODELS / "lenet5.onnx"))
    assert table.returncode == 0 and "crypten" in table.stdout and "semi2k" in table.stdout
    md = run("report", str(MODELS / "lenet5.onnx"), "-f", "md")
    assert md.returncode == 0
    rows = [line for line in md.stdout.splitlines() if line.startswith("|")]
    assert rows and all(line.rstrip().endswith("|") for line in rows)


def test_backends_lists_parameters() -> None:
    proc = run("backends")
    assert proc.returncode == 0
    assert "crypten.parties" in proc.stdout and "semi2k.ring_bits" in proc.stdout


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "a|b`c*d"])
def test_hostile_node_names_are_escaped_in_markdown(tmp_path: Path, name: str) -> None:
    case = opzoo.unary("Relu", (2, 3))
    case.model.graph.node[0].name = name
    path = tmp_path / "hostile.onnx"
    onnx.save(case.model, path)
    md = run("report", str(path), "-f", "md", "--depth", "2")
    assert md.returncode == 0
    assert "<img" not in md.stdout


def test_rich_markup_in_names_is_printed_literally(tmp_path: Path) -> None:
    node = helper.make_node("Op[/]", ["x"], ["y"], name="[bold red]/evil[/]/Op", domain="x.y")
    relu = helper.make_node("Relu", ["y"], ["z"], name="[/]/Relu")
    graph = helper.make_graph([node, relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
                              value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("x.y", 1)])
    path = tmp_path / "markup.onnx"
    onnx.save(model, path)
    proc = run("report", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "x.y::Op[/]" in proc.stdout and "[/]" in proc.stdout


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path, location: str) -> None:
    w = onnx.TensorProto()
    w.name, w.data_type = "W", onnx.TensorProto.FLOAT
    w.dims.extend([4, 4])
    w.data_location = onnx.TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    node = helper.make_node("MatMul", ["x", "W"], ["y"], name="/fc/MatMul")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    path = tmp_path / "evil.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert_one_line_error(run("report", str(path)), 2, "outside the model's folder")


def test_absurd_dims_are_refused(tmp_path: Path) -> None:
    case = opzoo.unary("Relu", (2, 3))
    path = tmp_path / "huge.onnx"
    onnx.save(case.model, path)
    assert_one_line_error(run("report", str(path), "--input-shape", "x=100000000x100000000"), 2, "absurd dims")


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`hawkeye-onnx report ... -f json | head`: the closed pipe ends the command quietly (code 1, the code rich
    gives a table in the same case). The JSON (90 KB) is bigger than a pipe's buffer: the writer must hit it."""
    proc = subprocess.Popen([sys.executable, "-m", "hawkeye_onnx", "report", str(MODELS / "resnet_cifar.onnx"),
                             "-f", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert err == "", err


def test_an_output_in_a_missing_folder_is_refused_before_the_work(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "report.json"
    proc = run("report", str(MODELS / "lenet5.onnx"), "--batch", "1", "-f", "json", "-o", str(out))
    assert_one_line_error(proc, 2, "--output", str(out.parent), "does not exist")
    assert not out.parent.exists()


def test_an_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(run("report", str(MODELS / "lenet5.onnx"), "--batch", "1", "-o", str(tmp_path)),
                          2, "is a folder")


#: every other command that writes a file, with what it needs besides -o (each is refused before its work)
_WRITERS = {
    "expand": [str(MODELS / "mlp.onnx"), "--batch", "2"],
    "compare": [str(MODELS / "mlp.onnx"), str(MODELS / "lenet5.onnx"), "--batch", "1", "-f", "json"],
    "ops": ["--format", "md"],
    "zoo": ["resnet50"],
}


@pytest.mark.parametrize("command", sorted(_WRITERS))
def test_every_command_refuses_an_output_it_cannot_write_before_the_work(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "out.file"
    assert_one_line_error(run(command, *_WRITERS[command], "-o", str(missing)), 2, "--output", "does not exist")
    assert not missing.parent.exists()
    proc = run(command, *_WRITERS[command], "-o", str(tmp_path))
    assert_one_line_error(proc, 2, "is a folder", ".onnx" if command in ("expand", "zoo") else ".")
    assert not any(tmp_path.iterdir())  # nothing written into the folder


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full (a device that is always full)")
@pytest.mark.parametrize("fmt", ["json", "md"])
def test_a_full_disk_is_a_clear_error(fmt: str) -> None:
    """ENOSPC while the JSON is written (by a second thread) or the Markdown: exit 2 naming the file, no traceback."""
    proc = run("report", str(MODELS / "resnet_cifar.onnx"), "-f", fmt, "-o", "/dev/full", "-q")
    assert_one_line_error(proc, 2, "/dev/full", "No space left on device")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_stdout_is_a_clear_error() -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "hawkeye_onnx", "report", str(MODELS / "resnet_cifar.onnx"),
                               "-f", "json", "-q"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert_one_line_error(proc, 2, "<stdout>", "No space left on device")
