"""`shapes.table_from_model_bytes` reads value records straight from a model's bytes: it must say exactly what
`value_shapes` says of the parsed model, for the records onnx writes and for the forms it takes a slower read
for (a long or non-UTF-8 name, the type before the name, a name given twice, a doc string)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from hawkeye_onnx.ir import build_graph
from hawkeye_onnx.shapes import UNKNOWN, ShapeTable, table_from_model_bytes, value_shapes

MODELS = Path(__file__).resolve().parent.parent / "models"
NAMES = ("lenet5.onnx", "transformer_block_dynamo.onnx", "keras_cnn_tf2onnx.onnx", "resnet_cifar_bn.onnx")
INFERRED = {name: onnx.shape_inference.infer_shapes(onnx.load(MODELS / name), data_prop=True).SerializeToString()
            for name in NAMES}


def resolved(table: ShapeTable) -> list[tuple[object, tuple]]:
    """(name, type) per entry, whatever the numbering of the distinct types."""
    return [(name, table.types[k]) for name, k in zip(table.names, table.kinds.tolist(), strict=True)]


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (tag, varint length, payload)."""
    out, n = bytearray([number << 3 | 2]), len(payload)
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out) + payload


def _model_bytes(records: list[bytes], inputs: list[bytes] = ()) -> bytes:
    """A model whose graph holds these raw ValueInfoProto records (graph fields 11 and 13, model field 7)."""
    graph = b"".join(_field(11, r) for r in inputs) + b"".join(_field(13, r) for r in records)
    return _field(7, graph)


def _type(dims: list[int | str], elem: int = TensorProto.FLOAT) -> bytes:
    return helper.make_tensor_type_proto(elem, dims).SerializeToString()


def _name(name: str | bytes) -> bytes:
    return _field(1, name.encode() if isinstance(name, str) else name)


@pytest.mark.parametrize("name", sorted(INFERRED))
def test_real_models_read_the_same(name: str) -> None:
    data = INFERRED[name]
    fast, parsed = table_from_model_bytes(data), value_shapes(onnx.load_from_string(data).graph)
    assert len(fast) > 5 and resolved(fast) == resolved(parsed)
    assert resolved(pickle.loads(pickle.dumps(fast))) == resolved(fast)


def test_unusual_records_read_as_protobuf_reads_them() -> None:
    records = [
        _name("a") + _field(2, _type([1, 3])),  # onnx's own form
        _name("b" * 300) + _field(2, _type([2, 2])),  # a name of 300 bytes: a two-byte length
        _field(2, _type([4])) + _name("c"),  # type first
        _name("d") + _field(2, _type([5])) + _field(3, b"a doc string"),
        _name("first") + _field(2, _type([6])) + _name("e"),  # the name twice: protobuf keeps the last
        _name("f") + _field(2, _type(["N", 3])),  # symbolic dim
        _name("g") + _field(2, _type([7], TensorProto.INT64)),
        _name("a") + _field(2, _type([9, 9])),  # "a" again: the last entry counts
        _name("h\0i") + _field(2, _type([1])),  # a NUL inside a name
        _name("j"),  # no type
    ]
    data = _model_bytes(records, inputs=[_name("x") + _field(2, _type([1, 1]))])
    fast, parsed = table_from_model_bytes(data), value_shapes(onnx.load_from_string(data).graph)
    assert resolved(fast) == resolved(parsed)
    got = dict(resolved(fast))
    assert got["e"][0] == (6,) and "first" not in got and got["f"] == (None, TensorProto.FLOAT, -1, -1)
    assert got["a"] == ((9, 9), TensorProto.FLOAT, 81, 2) and got["j"] == UNKNOWN
    assert resolved(pickle.loads(pickle.dumps(fast))) == resolved(fast)  # the NUL: sent as a list


def test_non_utf8_name_names_no_tensor() -> None:
    data = _model_bytes([_name(b"\xff\xfe") + _field(2, _type([3])), _name("ok") + _field(2, _type([2]))])
    fast = table_from_model_bytes(data)
    assert resolved(fast) == resolved(value_shapes(onnx.load_from_string(data).graph))
    ids = {"ok": 0}
    assert fast.kinds_by_id(ids, 1).tolist() == [fast.kinds[1]]
    assert resolved(pickle.loads(pickle.dumps(fast))) == resolved(fast)  # a name that is bytes: sent as a list


def test_kinds_by_id_takes_each_names_last_entry() -> None:
    table = ShapeTable(["a", "b", "a", "zz"], np.asarray([0, 1, 2, 1]), ((None, 0, -1, -1),) * 3)
    assert table.kinds_by_id({"a": 2, "b": 0, "c": 1}, 4).tolist() == [1, -1, 2, -1]
    empty = pickle.loads(pickle.dumps(ShapeTable([], np.zeros(0, np.int64), ())))
    assert empty.names == [] and empty.kinds_by_id({"a": 0}, 1).tolist() == [-1]


@pytest.mark.parametrize("name", sorted(INFERRED))
def test_graph_from_the_table_is_the_graph_from_the_model(name: str) -> None:
    """`build_graph` with the bytes' table equals `build_graph` reading the parsed model's records."""
    data = INFERRED[name]
    model = onnx.load_from_string(data)
    a, b = build_graph(model), build_graph(model, shapes=lambda: table_from_model_bytes(data))
    def rows(g: object) -> list[tuple]:
        return [(t.name, t.shape, t.dtype, t.secret, None if t.value is None else t.value.tolist())
                for t in (g.tensors[name] for name in g.tensors)]

    assert rows(a) == rows(b) and len(rows(a)) > 10
    assert np.array_equal(a.columns.size, b.columns.size) and np.array_equal(a.columns.rank, b.columns.rank)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(sorted(INFERRED.values()))))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.integers(0, 255))
        else:
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_bytes_read_the_same_wherever_protobuf_reads_them(data: bytes) -> None:
    try:
        graph = onnx.load_from_string(data).graph
    except Exception:  # not a model: the table is never read from such bytes (they come from shape inference)
        return
    assert resolved(table_from_model_bytes(data)) == resolved(value_shapes(graph))


def test_without_a_runtime_message_class_the_model_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An old protobuf (no `message_factory.GetMessageClass`): the table comes from the parsed model."""
    from hawkeye_onnx import shapes

    data = INFERRED["lenet5.onnx"]
    monkeypatch.setattr(shapes, "_model_view", lambda: None)
    assert resolved(shapes.table_from_model_bytes(data)) == resolved(value_shapes(onnx.load_from_string(data).graph))
