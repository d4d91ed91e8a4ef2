"""What shape inference says about each named value, as columns (`ShapeTable`), read without parsing the model.

A million-node model's inferred graph has a million value_info records. Parsed as ValueInfoProto messages and
read one by one they took 2.7 s (0.9 s to parse, 1.8 s to read each record's type), all of it on the critical
path while the profiler waits for the shapes. `table_from_model_bytes` reads them from the inferred model's
bytes through a view that knows only the graph's input, output and value_info fields, each record as raw bytes
(0.5 s): a record is its name field, then its type, and a model repeats a few types (`float[1,64,56,56]`), so
each distinct type is parsed once. The table is three columns, not a million tuples: the background child sends
it in 0.1 s where the dict took 0.8 s to pickle and read back.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

#: Element counts are clamped here (`Columns.size`: an absurd shape's product must not overflow an int64 column;
#: anything above `opvars.MAX_ELEMENTS` is refused anyway).
SIZE_CLAMP = 1 << 62

#: (static shape or None if any dim is unknown, element type, element count clamped at SIZE_CLAMP or -1, rank or -1)
TypeInfo = tuple[tuple[int, ...] | None, int, int, int]
UNKNOWN: TypeInfo = (None, 0, -1, -1)


def shape_of(type_proto: onnx.TypeProto) -> tuple[tuple[int, ...] | None, int]:
    """A tensor type's static shape (None if a dim is symbolic, missing or negative) and element type."""
    if not type_proto.HasField("tensor_type"):
        return None, 0
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None, tt.elem_type
    values = tuple(d.dim_value for d in tt.shape.dim)  # 0 for a symbolic or missing dim
    if min(values, default=1) > 0:
        return values, tt.elem_type
    dims: list[int] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(d.dim_value)
        else:
            return None, tt.elem_type
    return tuple(dims), tt.elem_type


def type_info(type_proto: onnx.TypeProto) -> TypeInfo:
    shape, dtype = shape_of(type_proto)
    return (shape, dtype, -1, -1) if shape is None else (shape, dtype, min(math.prod(shape), SIZE_CLAMP), len(shape))


@dataclass(frozen=True)
class ShapeTable:
    """Every graph input, value_info and output (in that order; a name listed twice: the last one counts) with
    the index of its type in `types`."""

    names: list[Any]  # str (bytes where the file's name is not valid UTF-8: it then names no tensor)
    kinds: np.ndarray  # int64 per name
    types: tuple[TypeInfo, ...]  # distinct

    def __len__(self) -> int:
        return len(self.names)

    def kinds_by_id(self, ids: Mapping[Any, int], n: int) -> np.ndarray:
        """Per tensor id 0..n-1 (`ids`: name -> id), the index in `types` of its name's last entry; -1: none."""
        get = ids.get
        tids = np.fromiter([get(x, -1) for x in self.names], np.int64, len(self.names))
        found = tids >= 0
        tids, kinds = tids[found][::-1], self.kinds[found][::-1]
        out = np.full(n, -1, dtype=np.int64)
        last, at = np.unique(tids, return_index=True)  # the first in reverse order: the last entry per id
        out[last] = kinds[at]
        return out

    def with_entries(self, extra: Mapping[str, TypeInfo]) -> ShapeTable:
        """This table and the names of `extra` after its own, with their types (the training graph's forward
        phase adds BatchNormalization's running statistics to the inferred model's tensors)."""
        types = list(self.types)
        index = {t: k for k, t in enumerate(types)}
        kinds = []
        for t in extra.values():
            k = index.get(t)
            if k is None:
                k = index[t] = len(types)
                types.append(t)
            kinds.append(k)
        return ShapeTable([*self.names, *extra], np.concatenate([self.kinds, np.asarray(kinds, dtype=np.int64)]),
                          tuple(types))

    def __getstate__(self) -> dict[str, Any]:
        # one string instead of a million: pickled and read back in a few ms (the names rarely hold a NUL)
        text = "\0".join(self.names) if all(type(x) is str for x in self.names) else None
        if text is not None and text.count("\0") != max(len(self.names) - 1, 0):
            text = None
        return {"text": text, "names": None if text is not None else self.names, "kinds": self.kinds,
                "types": self.types, "n": len(self.names)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        text = state["text"]
        names = state["names"] if text is None else (text.split("\0") if state["n"] else [])
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "kinds", state["kinds"])
        object.__setattr__(self, "types", state["types"])


def value_shapes(g: onnx.GraphProto) -> ShapeTable:
    """The table of a parsed graph. Each distinct type's bytes are read into a shape once."""
    seen: dict[bytes, int] = {}
    types: list[TypeInfo] = []
    names: list[Any] = []
    kinds: list[int] = []
    for vi in (*g.input, *g.value_info, *g.output):
        t = vi.type
        key = t.SerializeToString()
        k = seen.get(key)
        if k is None:
            k = seen[key] = len(types)
            types.append(type_info(t))
        names.append(vi.name)
        kinds.append(k)
    return ShapeTable(names, np.asarray(kinds, dtype=np.int64), tuple(types))


@functools.cache
def _model_view() -> type | None:
    """A message class that reads a serialized ModelProto's graph input, output and value_info records as raw
    bytes and skips everything else (same field numbers as onnx.proto: protobuf reads a message field as bytes);
    None with a protobuf too old to make classes at run time (no `message_factory.GetMessageClass`)."""
    if not hasattr(message_factory, "GetMessageClass"):
        return None
    graph_fields = onnx.GraphProto.DESCRIPTOR.fields_by_name
    field = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="hawkeye_onnx/model_view.proto", package="hawkeye_onnx_view",
                                            syntax="proto2")
    graph = fd.message_type.add(name="Graph")
    for name in ("input", "output", "value_info"):
        graph.field.add(name=name, number=graph_fields[name].number, type=field.TYPE_BYTES, label=field.LABEL_REPEATED)
    model = fd.message_type.add(name="Model")
    model.field.add(name="graph", number=onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number,
                    type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL, type_name=".hawkeye_onnx_view.Graph")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("hawkeye_onnx_view.Model"))


def _split(record: bytes) -> tuple[Any, bytes]:
    """(name, the rest) of one ValueInfoProto record in any form: parsed, and written again without its name."""
    vi = onnx.ValueInfoProto.FromString(record)
    name = vi.name
    vi.ClearField("name")
    return name, vi.SerializeToString()


def _table(records: Iterable[bytes], fast: bool) -> ShapeTable | None:
    """The table of raw ValueInfoProto records. `fast`: every record starts with its name, a field of one-byte
    length (what onnx and protobuf write for a name under 128 bytes); None when the fast read cannot be sure."""
    records = list(records)
    index: dict[bytes, int] = {}
    if fast:
        try:
            names: list[Any] = [r[2:2 + r[1]].decode() for r in records]
        except UnicodeDecodeError:
            return None
        kinds = [index.setdefault(r[2 + r[1]:], len(index)) for r in records]
    else:
        pairs = [_split(r) for r in records]
        names = [name for name, _ in pairs]
        kinds = [index.setdefault(rest, len(index)) for _, rest in pairs]
    types = []
    for rest in index:
        vi = onnx.ValueInfoProto.FromString(rest)
        if vi.HasField("name"):  # a second name field (protobuf keeps the last): read each record whole
            return None
        types.append(type_info(vi.type))
    return ShapeTable(names, np.asarray(kinds, dtype=np.int64), tuple(types))


def table_from_model_bytes(data: bytes) -> ShapeTable:
    """`value_shapes(onnx.load_from_string(data).graph)`, without parsing the model."""
    view = _model_view()
    if view is None:
        return value_shapes(onnx.load_from_string(data).graph)
    g = view.FromString(data).graph
    records = [*g.input, *g.value_info, *g.output]
    fast = all(len(r) > 1 and r[0] == 0x0A and r[1] < 0x80 and r[1] + 2 <= len(r) for r in records)
    table = _table(records, fast) if fast else None
    return table if table is not None else _table(records, False)  # type: ignore[return-value]
