"""The profile's result types and their JSON form (the `hawkeye-onnx/1` contract).

Small immutable records, so a script using the Python API and a script reading the CLI's JSON see
the same thing. `Profile.to_dict()` is the contract documented in the README. The per-node records
(Cost, Totals, TreeNode) are NamedTuples rather than frozen dataclasses: a big model makes millions
of them, and a tuple is several times cheaper to create.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import uuid
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, NamedTuple, overload

SCHEMA = "hawkeye-onnx/1"


class Cost(NamedTuple):
    bytes: int = 0
    rounds: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"bytes": int(self.bytes), "rounds": int(self.rounds)}

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.bytes + other.bytes, self.rounds + other.rounds)


class Totals(NamedTuple):
    online: Cost = Cost()
    offline: Cost = Cost()

    @classmethod
    def of(cls, row: list[int]) -> Totals:
        """From a row (online bytes, online rounds, offline bytes, offline rounds) of Python ints."""
        return cls(Cost(row[0], row[1]), Cost(row[2], row[3]))

    def to_dict(self) -> dict[str, Any]:
        return dict(_totals_dict(self))

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.online + other.online, self.offline + other.offline)


@lru_cache(maxsize=1 << 16)
def _totals_dict(t: Totals) -> dict[str, Any]:
    """Shared JSON form of a Totals (big trees repeat the same few values); callers copy the outer dict."""
    return {"online": t.online.to_dict(), "offline": t.offline.to_dict()}


class TreeNode(NamedTuple):
    """A module, a node or a primitive call, with totals that include everything below it."""

    name: str
    kind: str  # "module" | "node" | "primitive"
    totals: Totals
    children: tuple[TreeNode, ...] = ()
    op_type: str | None = None
    calls: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.op_type is not None:
            d["op_type"] = self.op_type
        if self.calls is not None:
            d["calls"] = self.calls
        d.update(_totals_dict(self.totals))
        d["children"] = [c.to_dict() for c in self.children]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TreeNode:
        """The record `to_dict` gave (its children too)."""
        on, off = d["online"], d["offline"]
        return cls(d["name"], d["kind"], Totals.of([on["bytes"], on["rounds"], off["bytes"], off["rounds"]]),
                   tuple(cls.from_dict(c) for c in d["children"]), d.get("op_type"), d.get("calls"))

    def find(self, *path: str) -> TreeNode | None:
        """The descendant reached by following child names, e.g. `tree.find("layer1", "layer1.0")`."""
        here: TreeNode | None = self
        for name in path:
            here = next((c for c in here.children if c.name == name), None) if here else None
        return here


@dataclass(frozen=True)
class OpSummary:
    count: int
    totals: Totals

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, **self.totals.to_dict()}


@dataclass(frozen=True)
class UnsupportedOp:
    op_type: str
    reason: str
    nodes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"op_type": self.op_type, "reason": self.reason, "nodes": list(self.nodes)}


class _LazyTree:
    """`BackendReport.tree`: holds a TreeNode, or a source with `build()` (and `json()`) that makes it on
    first read. A million-node model's tree is millions of records that the JSON writer never needs."""

    def __get__(self, obj: Any, owner: type | None = None) -> TreeNode:
        if obj is None:
            raise AttributeError("tree")  # no class-level default (dataclasses asks this way)
        value = obj.__dict__["_tree"]
        if not isinstance(value, TreeNode):
            value = value.build()
            obj.__dict__["_tree"] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_tree"] = value


class JsonTree:
    """A tree source for `BackendReport.tree` holding the tree's JSON text (made in another process):
    `json()` gives the text, `build()` the TreeNode records, read back from it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def json(self) -> str:
        return self.text

    def build(self) -> TreeNode:
        return TreeNode.from_dict(json.loads(self.text))


#: the spill files open in this process, by token: a forked child's trees are read back from the parent's copy
_SPILLS: weakref.WeakValueDictionary[str, SpillFile] = weakref.WeakValueDictionary()


class SpillFile:
    """An anonymous temporary file (unlinked from the start: nothing is left behind, whatever ends the run) that
    keeps trees' JSON text out of memory until the writer wants it. Why: a training report of a 1M-node model
    has 4.5 GB of tree text, made long before it is written. A file made before a fork is written by the child
    (`pwrite` at its own offsets) and read by the parent: a `SpilledTree` pickles as (file token, offset,
    length), not as its text."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        try:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as a tree refers to it
        except OSError:  # no writable temporary folder: the trees stay in memory
            self._file = None
        else:  # closed with the last reference (not left to the file object, which warns: "unclosed file")
            weakref.finalize(self, self._file.close)
        self._end = 0  # the next free offset; only one process writes into a given file
        _SPILLS[self.token] = self

    def put(self, text: str) -> SpilledTree | JsonTree:
        """The tree `text`, kept in the file (in memory, as a `JsonTree`, if the file cannot take it)."""
        if self._file is None:
            return JsonTree(text)
        data = memoryview(text.encode("utf-8"))
        offset, done = self._end, 0
        try:
            while done < len(data):
                done += os.pwrite(self._file.fileno(), data[done:], offset + done)
        except OSError:  # a full disk: the text stays in memory
            return JsonTree(text)
        self._end = offset + len(data)
        return SpilledTree(self, offset, len(data))

    def _chunks(self, offset: int, length: int) -> Iterator[bytes]:
        """The `length` bytes from `offset`, read in pieces of at most 1 GiB."""
        assert self._file is not None  # a tree is spilled only into an open file
        done = 0
        while done < length:
            chunk = os.pread(self._file.fileno(), min(length - done, 1 << 30), offset + done)
            if not chunk:
                raise OSError(f"spill file: {length - done} bytes missing at offset {offset + done}")
            yield chunk
            done += len(chunk)

    def read(self, offset: int, length: int) -> str:
        return b"".join(self._chunks(offset, length)).decode("utf-8")

    def copy_to(self, fd: int, offset: int, length: int) -> None:
        """Write `length` bytes from `offset` to the file descriptor `fd` at its position, in the kernel
        (`sendfile`: no text decoded and encoded again; 4.5 GB of trees at 1M nodes), or read and written where
        `fd` does not take it."""
        assert self._file is not None  # a tree is spilled only into an open file
        src, done = self._file.fileno(), 0
        while done < length:
            try:
                sent = os.sendfile(fd, src, offset + done, min(length - done, 1 << 30))
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                break  # the rest read and written
            if not sent:
                raise OSError(f"spill file: {length - done} bytes missing at offset {offset + done}")
            done += sent
        for chunk in self._chunks(offset + done, length - done):
            view, written = memoryview(chunk), 0
            while written < len(chunk):
                written += os.write(fd, view[written:])


class SpilledTree:
    """A tree source for `BackendReport.tree` whose JSON text is in a `SpillFile`."""

    def __init__(self, spill: SpillFile, offset: int, length: int) -> None:
        self.spill, self.offset, self.length = spill, offset, length

    def json(self) -> str:
        return self.spill.read(self.offset, self.length)

    def copy_to(self, fd: int) -> None:
        """Write the tree's JSON text (UTF-8) to the file descriptor `fd`, at its position."""
        self.spill.copy_to(fd, self.offset, self.length)

    def build(self) -> TreeNode:
        return TreeNode.from_dict(json.loads(self.json()))

    def __reduce__(self) -> tuple[Any, ...]:
        return _spilled, (self.spill.token, self.offset, self.length)


def _spilled(token: str, offset: int, length: int) -> SpilledTree:
    """A `SpilledTree` read back from a pickle, in a process that has the file open (the child's parent)."""
    return SpilledTree(_SPILLS[token], offset, length)


@dataclass(frozen=True)
class BackendReport:
    name: str
    title: str
    version: str
    params: Mapping[str, Any]
    sources: Mapping[str, str]
    total: Totals
    tree: TreeNode = _LazyTree()  # type: ignore[assignment]
    ops: Mapping[str, OpSummary]
    primitives: Mapping[str, OpSummary]
    unsupported: tuple[UnsupportedOp, ...]
    phases: Mapping[str, Totals] | None = None  # training: forward / loss / backward / update

    def tree_json(self) -> str:
        """The tree's JSON text (as `json.dumps(self.tree.to_dict(), ensure_ascii=False)`), written from
        arrays when the tree has not been built."""
        value = self.__dict__["_tree"]
        if not isinstance(value, TreeNode) and hasattr(value, "json"):
            return value.json()
        return json.dumps(self.tree.to_dict(), ensure_ascii=False)

    def to_dict(self, tree_mark: str | None = None) -> dict[str, Any]:
        """The contract's backend section; with `tree_mark`, that string stands where the tree goes
        (`Profile.to_json` splices the tree's text in there)."""
        d = {
            "title": self.title,
            "version": self.version,
            "params": dict(self.params),
            "total": self.total.to_dict(),
            "ops": {k: v.to_dict() for k, v in self.ops.items()},
            "primitives": {k: v.to_dict() for k, v in self.primitives.items()},
            "unsupported": [u.to_dict() for u in self.unsupported],
            "sources": dict(self.sources),
            "tree": self.tree.to_dict() if tree_mark is None else tree_mark,
        }
        if self.phases is not None:
            d["phases"] = {k: v.to_dict() for k, v in self.phases.items()}
        return d


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str | None
    sha256: str | None
    producer: str
    opset: int
    inputs: Mapping[str, tuple[int | str, ...]]
    nodes: int
    parameters: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "producer": self.producer,
                "opset": self.opset, "inputs": {k: list(v) for k, v in self.inputs.items()},
                "nodes": self.nodes, "parameters": self.parameters}


@dataclass(frozen=True)
class Profile:
    """The result of `hawkeye_onnx.profile`: per backend totals, module tree, ops, unsupported."""

    model: ModelInfo
    mode: str
    backends: Mapping[str, BackendReport]
    conventions: Mapping[str, str] = field(default_factory=dict)
    training: Mapping[str, Any] | None = None  # mode "train": loss, optimizer, hyper-parameters, runs

    def to_dict(self, tree_marks: Mapping[str, str] | None = None) -> dict[str, Any]:
        d = {"schema": SCHEMA, "model": self.model.to_dict(), "mode": self.mode,
             "conventions": dict(self.conventions)}
        if self.training is not None:
            d["training"] = dict(self.training)
        d["backends"] = {k: v.to_dict(tree_marks[k] if tree_marks else None) for k, v in self.backends.items()}
        return d

    def to_json(self, indent: int | None = None) -> str:
        """Compact by default: the C encoder is ~10x faster than an indented dump on big trees, and the trees
        are written as text from arrays (`BackendReport.tree_json`), each spliced in where its `tree` goes."""
        if indent is not None:
            return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"
        return "".join(self.json_parts())

    @overload
    def json_parts(self, spilled: Literal[False] = False) -> Iterator[str]: ...

    @overload
    def json_parts(self, spilled: Literal[True]) -> Iterator[str | SpilledTree]: ...

    def json_parts(self, spilled: bool = False) -> Iterator[str | SpilledTree]:
        """`to_json()` in pieces, one backend's tree at a time: a writer streams them to a file instead of
        holding the whole text (hundreds of MB for a 200k-node model) and its encoded bytes at once. With
        `spilled`, a tree kept in a spill file comes as its `SpilledTree`, for a writer that copies it from
        there (`SpilledTree.copy_to`). (Writing some trees in a forked child was tried: on a big model the
        pages copied on write after the fork, in both processes, cost more than the child saved.)"""
        marks = {k: f"\x00tree{i}\x00" for i, k in enumerate(self.backends)}
        text = json.dumps(self.to_dict(marks), ensure_ascii=False)
        encoded = {k: json.dumps(m) for k, m in marks.items()}
        if any(text.count(e) != 1 for e in encoded.values()):  # a name in the model spells a mark: no splicing
            yield json.dumps(self.to_dict(), ensure_ascii=False) + "\n"
            return
        for k, e in encoded.items():
            before, _, text = text.partition(e)
            yield before
            tree = self.backends[k].__dict__["_tree"]
            yield tree if spilled and isinstance(tree, SpilledTree) else self.backends[k].tree_json()
        yield text + "\n"

    @property
    def has_unsupported(self) -> bool:
        return any(b.unsupported for b in self.backends.values())
