"""Module paths from every exporter's naming (shared/reference/onnx-facts.md §2), and on real exports."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import helper

from hawkeye_onnx import profile
from hawkeye_onnx.scope import METADATA_KEYS, merge_repeated_calls, scope_index, scope_of

MODELS = Path(__file__).resolve().parent.parent / "models"


def node(name: str, op: str = "Conv", **meta: str):
    n = helper.make_node(op, ["x"], ["y"], name=name)
    for k, v in meta.items():
        p = n.metadata_props.add()
        p.key, p.value = k, v
    return n


@pytest.mark.parametrize("name,want", [
    ("/layer1/layer1.0/conv1/Conv", ("layer1", "layer1.0", "conv1")),
    ("/layer4/layer4.1/relu_1/Relu", ("layer4", "layer4.1", "relu_1")),
    ("/Flatten", ()),
    ("/fc/Gemm", ("fc",)),
    ("model/conv2d/Conv2D", ("model", "conv2d")),
    ("StatefulPartitionedCall/model/conv2d/Conv2D", ("model", "conv2d")),
    ("StatefulPartitionedCall/StatefulPartitionedCall/logits/StatefulPartitionedCall/MatMul_Gemm__23", ("logits",)),
    ("sequential/dense__12/MatMul", ("sequential", "dense")),
    ("/conv1/Conv_Grad/ConvGrad_0", ("conv1",)),
    ("/layer0/attn/Softmax_Grad/SoftmaxGrad_13_0", ("layer0", "attn")),
])
def test_slash_names(name: str, want: tuple[str, ...]) -> None:
    assert scope_of(node(name)) == want


@pytest.mark.parametrize("name,op", [("MatMul1", "MatMul"), ("Conv_0", "Conv"), ("", "Relu")])
def test_flat_names_group_by_op_type(name: str, op: str) -> None:
    assert scope_of(node(name, op)) == (op,)


def test_dynamo_name_scopes_match_torchscript_segments() -> None:
    meta = {"pkg.torch.onnx.name_scopes": repr(["", "layer1", "layer1.0", "layer1.0.conv1", "conv2d_3"])}
    assert scope_of(node("node_conv2d_3", **meta)) == ("layer1", "layer1.0", "conv1")
    assert scope_of(node("node_relu", **{"pkg.torch.onnx.name_scopes": "['', 'relu']"})) == ()


def test_malformed_metadata_falls_back_to_the_name() -> None:
    assert scope_of(node("/fc/Gemm", **{"pkg.torch.onnx.name_scopes": "__import__('os')"})) == ("fc",)


def _top_modules(path: Path, shape: list[int]) -> set[str]:
    p = profile(path, backends=["crypten"], input_shapes={"input": tuple(shape)})
    return {c.name for c in p.backends["crypten"].tree.children if c.kind == "module"}


def test_both_pytorch_exporters_give_the_same_top_level_modules() -> None:
    index = {m["file"]: m for m in json.loads((MODELS / "index.json").read_text())}
    for a, b in [("resnet_cifar.onnx", "resnet_cifar_dynamo.onnx")]:
        shape = index[a]["inputs"]["input"]
        assert {"layer1", "layer2"} <= _top_modules(MODELS / a, shape)
        assert {"layer1", "layer2"} <= _top_modules(MODELS / b, shape)


def _per_node(index: tuple[list[tuple[str, ...]], object]) -> list[tuple[str, ...]]:
    scopes, node_scope = index
    return [scopes[k] for k in node_scope.tolist()]  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", sorted(MODELS.glob("*.onnx")), ids=lambda p: p.stem)
def test_scope_index_is_scope_of_every_node(model: Path) -> None:
    """The numbered index is `scope_of` per node, merged; skipping the metadata reads (the background child
    does when the file's bytes spell no key `scope_of` reads) changes nothing on such a file."""
    data = model.read_bytes()
    nodes = onnx.load_from_string(data).graph.node
    want = merge_repeated_calls([scope_of(n) for n in nodes])
    assert _per_node(scope_index(nodes)) == want
    if not any(key in data for key in METADATA_KEYS):
        assert _per_node(scope_index(nodes, metadata=False)) == want


def test_some_shipped_model_has_the_metadata() -> None:
    """The check above covers both kinds of file: dynamo exports carry the name-scope metadata."""
    assert any(METADATA_KEYS[1] in p.read_bytes() for p in MODELS.glob("*.onnx"))
    assert not all(METADATA_KEYS[1] in p.read_bytes() for p in MODELS.glob("*.onnx"))
