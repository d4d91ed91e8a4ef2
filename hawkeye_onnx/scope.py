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
their parent (`layer1.0`), so dynamo's fully qualified paths are shortened the same way. Two more
differences are evened out so one network gives one module tree whichever exporter wrote it:
* dynamo's optimizer fuses a BatchNorm into the Conv before it and the fused Conv keeps the
  BatchNorm's scope (`bn1`); its weight keeps the conv's parameter name (`conv1.weight`), which
  gives back the conv's path, as TorchScript names the folded Conv (`/conv1/Conv`).
* TorchScript names the second call of a module `pool_1` (`/pool_1/MaxPool`), dynamo names the
  module (`pool`): `merge_repeated_calls` folds `X_<n>` into a sibling `X` of the same graph.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence

import numpy as np
import onnx

_TF_WRAPPERS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
_TF_SUFFIX = re.compile(r"__\d+$")
_CALL_SUFFIX = re.compile(r"^(.+)_(\d+)$")
_FUSED_BN = "FuseBatchNormIntoConv"
_RULE_NAME = "pkg.onnxscript.rewriter.rule_name"
_NAME_SCOPES = "pkg.torch.onnx.name_scopes"
#: The metadata keys `scope_of` reads: a model whose bytes spell neither has no node they change.
METADATA_KEYS = (_RULE_NAME.encode(), _NAME_SCOPES.encode())


def may_have_metadata(data: bytes | None) -> bool:
    """Whether a model whose file's bytes are `data` (None: a model not read from a file) may have a node with the
    metadata `scope_of` reads (`raw_scopes`' `metadata`)."""
    return data is None or any(key in data for key in METADATA_KEYS)

#: Scopes by number: a list of scopes (equal ones may repeat) and each node's number in it, in the order nodes
#: first use them. The module tree is built per scope, not per node.
ScopeIndex = tuple[list[tuple[str, ...]], np.ndarray]


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


def _from_parameter(weight: str) -> tuple[str, ...] | None:
    """`layer2.downsample.0.weight` -> ("layer2", "downsample", "downsample.0"), TorchScript's segments."""
    qualified, dot, leaf = weight.rpartition(".")
    atoms = qualified.split(".")
    if not dot or leaf != "weight" or not all(atoms):
        return None
    return tuple(_unqualified(".".join(atoms[: i + 1])) for i in range(len(atoms)))


def scope_of(node: onnx.NodeProto) -> tuple[str, ...]:
    """The module path of `node` as a tuple of segments (empty = the model's root)."""
    props = {p.key: p.value for p in node.metadata_props}
    if _FUSED_BN in props.get(_RULE_NAME, "") and len(node.input) > 1:
        fused = _from_parameter(node.input[1])
        if fused is not None:
            return fused
    if _NAME_SCOPES in props:
        found = _from_name_scopes(props[_NAME_SCOPES])
        if found is not None:
            return found
    if "/" in node.name:
        return _from_slash_name(node.name)
    return (node.op_type,)


def merge_repeated_calls(scopes: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Fold TorchScript's call suffix: a segment `X_<n>` becomes `X` where the graph also has `X` under
    the same parent (the same module called again), so the tree has one entry per module, as dynamo's
    metadata gives. A lone `relu_1` with no `relu` beside it is a module of that name and stays."""
    base: dict[str, str | None] = {}  # segment -> the `X` of `X_<n>`, or None (segments repeat a lot)
    for scope in scopes:
        for seg in scope:
            if seg not in base:
                m = _CALL_SUFFIX.match(seg)
                base[seg] = m.group(1) if m else None
    suffixed = {seg for seg, b in base.items() if b is not None}
    if not suffixed:
        return list(scopes)
    # `X_<n>` folds where its parent also has a child `X`: the children of the parents that matter, at the
    # depths where a suffixed segment sits (not every prefix of every scope).
    depths = {i for scope in scopes if not suffixed.isdisjoint(scope) for i, seg in enumerate(scope) if seg in suffixed}
    children: dict[tuple[str, ...], set[str]] = {}
    for scope in scopes:
        for d in depths:
            if len(scope) > d:
                children.setdefault(scope[:d], set()).add(scope[d])
    out = []
    for scope in scopes:
        if suffixed.isdisjoint(scope):
            out.append(scope)
            continue
        merged: list[str] = []
        for i, seg in enumerate(scope):
            b = base[seg]
            if b is not None and b in children.get(scope[:i], ()):
                seg = b
            merged.append(seg)
        out.append(tuple(merged))
    return out


def prefix_scope(prefix: str) -> tuple[str, ...]:
    """The module path of every node named `<prefix><Op>` (`prefix` ends with `/`), as `scope_of` reads a
    slash-scoped name without metadata; a TorchScript prefix (`/a/b/`, no backward part) directly."""
    if prefix[0] == "/" and "_Grad" not in prefix:
        return tuple(filter(None, prefix.split("/")))
    return _from_slash_name(prefix + "x")


def raw_scopes(nodes: Iterable[onnx.NodeProto], metadata: bool = True,
               prefixes: dict[str, tuple[str, ...]] | None = None) -> tuple[list[tuple[str, ...]], list[int]]:
    """`scope_of` of every node, before `merge_repeated_calls` (which needs the whole graph's scopes), numbered:
    the scopes in the order nodes first reach them (equal ones may repeat) and each node's number. A big model
    has one scope per few nodes: a slash-scoped name's segments are read once per name prefix (`/a/b/` for
    `/a/b/Conv`). `metadata=False`: the caller knows that no node has the metadata `scope_of` reads
    (`METADATA_KEYS` are not in the model's bytes), which spares reading every node's metadata list (0.1 s at
    200k nodes). `prefixes`, if given, gets each name prefix read and its scope (`prefix_scope`)."""
    by_prefix: dict[str | tuple[str, ...], int] = {}  # a name prefix, or a scope read from metadata -> its number
    raw: list[tuple[str, ...]] = []
    node_scope: list[int] = []
    for nd in nodes:
        name = nd.name
        if "/" in name and (not metadata or not len(nd.metadata_props)):  # `scope_of`'s slash case, by prefix
            prefix = name[: name.rindex("/") + 1]
            k = by_prefix.get(prefix)
            if k is None:
                k = by_prefix[prefix] = len(raw)
                raw.append(prefix_scope(prefix))
                if prefixes is not None:
                    prefixes[prefix] = raw[-1]
        else:
            found = scope_of(nd)
            k = by_prefix.get(found)
            if k is None:
                k = by_prefix[found] = len(raw)
                raw.append(found)
        node_scope.append(k)
    return raw, node_scope


def scope_index(nodes: Iterable[onnx.NodeProto], metadata: bool = True) -> ScopeIndex:
    """`raw_scopes`, merged (`merge_repeated_calls`): the index the module tree is built from."""
    raw, node_scope = raw_scopes(nodes, metadata)
    return merge_repeated_calls(raw), np.asarray(node_scope, dtype=np.int64)
