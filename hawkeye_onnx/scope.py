"""Module-path (prefix) extraction: which module of the source model a node belongs to.

A small chain of strategies, first match wins (see shared/reference/onnx-facts.md §2):
1. PyTorch's dynamo exporter: `metadata_props["pkg.torch.onnx.name_scopes"]`, a Python-literal list of
   fully qualified module paths ending with the node itself.
2. Slash-scoped names: TorchScript (`/layer1/layer1.0/conv1/Conv`) and tf2onnx
   (`StatefulPartitionedCall/model/conv2d/Conv2D`, with `__N` suffixes for inserted ops). Backward
   nodes named `<forward name>_Grad/<Op>_<k>` (onnxruntime-training's convention, and ours) land
   in their forward node's module.
3. Flat names (skl2onnx, old `Conv_0` exports, unnamed nodes): grouped under their op type.

Both PyTorch exporters give the same segments: the TorchScript exporter keeps numeric atoms with
their parent (`layer1.0`), so dynamo's fully qualified paths are shortened the same way.
"""

from __future__ import annotations

import ast
import re

import onnx

_TF_WRAPPERS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
_TF_SUFFIX = re.compile(r"__\d+$")


def _unqualified(qualified: str) -> str:
    """`layer1.0.conv1` -> `conv1`; `layer1.0` -> `layer1.0` (TorchScript's segment names)."""
    atoms = qualified.split(".")
    i = len(atoms) - 1
    while i > 0 and atoms[i].isdigit():
        i -= 1
    return ".".join(atoms[i:])


def _from_name_scopes(raw: str) -> tuple[str, ...] | None:
    try:
        scopes = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return None
    return tuple(_unqualified(s) for s in scopes[:-1] if s)


def _from_slash_name(name: str) -> tuple[str, ...]:
    torchscript = name.startswith("/")
    parts = [p for p in name.split("/") if p]
    if not torchscript:
        parts = [p for p in parts if p not in _TF_WRAPPERS]
    segments: list[str] = []
    for p in parts[:-1]:
        if p.endswith("_Grad"):  # `<forward node>_Grad/...`: the forward node's module
            break
        segments.append(p if torchscript else _TF_SUFFIX.sub("", p))
    return tuple(segments)


def scope_of(node: onnx.NodeProto) -> tuple[str, ...]:
    """The module path of `node` as a tuple of segments (empty = the model's root)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            found = _from_name_scopes(prop.value)
            if found is not None:
                return found
    if "/" in node.name:
        return _from_slash_name(node.name)
    return (node.op_type,)
