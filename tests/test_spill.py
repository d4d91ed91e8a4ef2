"""Trees kept as JSON text in an anonymous temporary file (result.SpillFile): a big training report's trees
wait there, not in memory, until the writer asks for them."""

from __future__ import annotations

import json
import os
import pickle
import tempfile

import pytest

from hawkeye_onnx import background
from hawkeye_onnx.result import JsonTree, SpilledTree, SpillFile, TreeNode

TREE = {"name": "model", "kind": "module", "online": {"bytes": 3, "rounds": 1},
        "offline": {"bytes": 0, "rounds": 0},
        "children": [{"name": "/é/\u2028<b>\"x\"</b>\x00", "kind": "node", "online": {"bytes": 3, "rounds": 1},
                      "offline": {"bytes": 0, "rounds": 0}, "children": []}]}


def test_texts_read_back_as_they_were_put() -> None:
    spill = SpillFile()
    texts = [json.dumps(TREE, ensure_ascii=False), "", json.dumps(TREE), "x" * 100_003]
    trees = [spill.put(t) for t in texts]
    assert all(isinstance(t, SpilledTree) for t in trees)
    assert [t.json() for t in reversed(trees)] == texts[::-1]
    assert trees[0].build() == TreeNode.from_dict(TREE)


def test_the_file_has_no_name_to_leave_behind() -> None:
    spill = SpillFile()
    spill.put("{}")
    assert os.fstat(spill._file.fileno()).st_nlink == 0


def test_a_full_disk_keeps_the_text_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object) -> int:
        raise OSError(28, "No space left on device")

    spill = SpillFile()
    monkeypatch.setattr(os, "pwrite", full)
    tree = spill.put('{"a": 1}')
    assert isinstance(tree, JsonTree) and tree.json() == '{"a": 1}'


def test_no_writable_temporary_folder_keeps_the_text_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/hawkeye-onnx-test")
    tree = SpillFile().put('{"a": 1}')
    assert isinstance(tree, JsonTree) and tree.json() == '{"a": 1}'


@pytest.mark.skipif(not background.AVAILABLE, reason="no os.fork here")
def test_a_tree_a_child_spilled_is_read_in_the_parent() -> None:
    spill = SpillFile()
    spill.put("parent's own")
    text = json.dumps(TREE, ensure_ascii=False)
    with background.Pending(lambda: [spill.put(text), spill.put("second")]) as child:
        first, second = child.next(), child.next()
    assert (first.json(), second.json()) == (text, "second")
    # what crosses the pipe is where the text is, not the text
    assert len(pickle.dumps(first)) < 200 < len(text.encode())


def _pieces(spill: SpillFile) -> tuple[list, str]:
    """JSON pieces with two spilled trees among the text, and the text they make."""
    texts = [json.dumps(TREE, ensure_ascii=False), "y" * 70_001]
    trees = [spill.put(t) for t in texts]
    parts = ['{"a": ', trees[0], ', "b": ', trees[1], "}\n"]
    return parts, "".join(p if isinstance(p, str) else p.json() for p in parts)


@pytest.mark.parametrize("sendfile", [True, False])
def test_the_writer_copies_spilled_trees_into_the_file(sendfile: bool, tmp_path, monkeypatch) -> None:
    """The CLI's writer copies a spilled tree from the spill file by the kernel (`sendfile`), after what it
    buffered; where the kernel refuses, it reads and writes the bytes."""
    from hawkeye_onnx import cli

    if not sendfile:
        def refused(*args: object) -> int:
            raise OSError(22, "Invalid argument")

        monkeypatch.setattr(os, "sendfile", refused)
    parts, want = _pieces(SpillFile())
    out = tmp_path / "out.json"
    cli._write_parts(parts, out)
    assert out.read_text(encoding="utf-8") == want


def test_the_writer_copies_spilled_trees_into_a_pipe(monkeypatch) -> None:
    """`hawkeye-onnx report ... -f json | jq`: stdout is a pipe."""
    import io
    import threading

    from hawkeye_onnx import cli

    parts, want = _pieces(SpillFile())
    r, w = os.pipe()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(r, "rb").read()))
    reader.start()
    with os.fdopen(w, "wb") as sink:
        monkeypatch.setattr("sys.stdout", io.TextIOWrapper(sink, encoding="utf-8"))
        cli._write_parts(parts, None)
        monkeypatch.undo()
    reader.join()
    assert got[0].decode("utf-8") == want
