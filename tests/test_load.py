"""Loading: weights never read, shapes bound and inferred, onnxruntime's fallback, clear shape errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hawkeye_onnx import profile
from hawkeye_onnx.errors import ShapeError

MODELS = Path(__file__).resolve().parent.parent / "models"


def _gemm_model(batch: int | str = 2) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 8), np.float32), "W")
    node = helper.make_node("Gemm", ["x", "W"], ["y"], name="/fc/Gemm", transB=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_external_weights_are_never_read(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_gemm_model(), path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()  # dims are in the proto; the data is not needed
    p = profile(path, backends=["crypten"])
    # CrypTen Gemm: one opening of |x| + |W| = 16 + 32 elements, 16 bytes per element for 2 parties.
    assert p.backends["crypten"].total.online.bytes == 16 * (2 * 8 + 8 * 4)
    assert p.model.parameters == 32


def test_public_weights_make_a_linear_layer_a_public_product() -> None:
    p = profile(_gemm_model(), backends=["crypten", "semi2k"], public_weights=True)
    assert p.backends["crypten"].total.online.bytes == 0  # 2-party truncation is local
    # SPU: a public product still pays one truncation (4 B per element per party) per output.
    assert (p.backends["semi2k"].total.online.bytes, p.backends["semi2k"].total.online.rounds) == (2 * 4 * 2 * 4, 1)


def test_symbolic_batch_bound_by_name() -> None:
    p = profile(_gemm_model("N"), backends=["crypten"], input_shapes={"x": (5, 8)})
    assert p.model.inputs["x"] == (5, 8)
    assert p.backends["crypten"].total.online.bytes == 16 * (5 * 8 + 8 * 4)


def test_data_dependent_shape_names_the_tensor() -> None:
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="/nz/NonZero"),
             helper.make_node("Cast", ["nz"], ["f"], name="/nz/Cast", to=TensorProto.FLOAT),
             helper.make_node("Relu", ["f"], ["y"], name="/act/Relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ShapeError, match=r"'f'.*Relu.*no static shape"):
        profile(model, backends=["crypten"])


def test_onnxruntime_fills_shapes_onnx_cannot() -> None:
    """onnx has no shape function for com.microsoft ops; onnxruntime's symbolic inference does."""
    nodes = [helper.make_node("Gelu", ["x"], ["g"], name="/act/Gelu", domain="com.microsoft"),
             helper.make_node("Relu", ["g"], ["y"], name="/act2/Relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    p = profile(model, backends=["crypten"])
    b = p.backends["crypten"]
    assert [u.op_type for u in b.unsupported] == ["com.microsoft::Gelu"]
    # the ReLU after it is priced on its inferred shape (2 x 3): CrypTen's ReLU sends 464 bytes per element
    # (measured, ../shared/ground-truth/README.md, CrypTen table, row "ReLU": 9 rounds, 464 n bytes)
    assert b.ops["Relu"].totals.online.bytes == 464 * 6


def test_model_whose_weights_exceed_2gb(tmp_path: Path) -> None:
    """A 3.2 GB weight declared as external data (never written, never read) profiles in a blink."""
    w = TensorProto()
    w.name, w.data_type = "W", TensorProto.FLOAT
    w.dims.extend([40000, 20000])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", str(40000 * 20000 * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Gemm", ["x", "W"], ["y"], name="/fc/Gemm", transB=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 20000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    path = tmp_path / "big.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    p = profile(path, backends=["crypten"])
    assert p.model.parameters == 40000 * 20000
    assert p.backends["crypten"].total.online.bytes == 16 * (20000 + 40000 * 20000)


def test_gather_is_free_with_public_indices_and_unsupported_with_secret_ones() -> None:
    table = numpy_helper.from_array(np.ones((10, 4), np.float32), "E")
    pos = helper.make_node("Constant", [], ["pos"], name="/pos/Constant",
                           value=numpy_helper.from_array(np.array([0, 1], np.int64)))
    nodes = [pos, helper.make_node("Gather", ["E", "pos"], ["p"], name="/pos/Gather"),
             helper.make_node("Gather", ["E", "ids"], ["w"], name="/word/Gather"),
             helper.make_node("Add", ["p", "w"], ["y"], name="/Add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[table])
    p = profile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    for b in p.backends.values():
        assert [(u.op_type, u.nodes) for u in b.unsupported] == [("Gather", ("/word/Gather",))]
