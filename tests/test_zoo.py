"""The paper-scale model zoo: published parameter counts, layer counts, exporter-style names, valid and
tiny files, static shapes, and a profile on every model.

The node counts and names were checked against real `torch.onnx.export(..., dynamo=False, opset_version=17,
do_constant_folding=True)` exports of torchvision 0.28 / transformers 4.46 (eager attention) modules:
every compute node matches in name, op type, attributes, weight shape and order; only the constant shape
plumbing listed in `zoo.NOTES` (and the Identity nodes torch adds for deduplicated untrained weights) differs.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import hawkeye_onnx
from hawkeye_onnx import zoo

#: torchvision's documented counts; Hugging Face's for BertModel (with pooler) and GPT2Model (tied head
#: counted once); the CIFAR networks computed from their definitions.
PUBLISHED_PARAMETERS = {
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "mobilenet_v3_large": 5_483_032,
    "shufflenet_v2_x1_0": 2_278_604,
    "vgg16": 138_357_544,
    "squeezenet1_1": 1_235_496,
    "resnet32_cifar": 464_154,  # 0.46M in He et al. Table 6
    "minionn_cifar": 164_954,
    "bert_base": 109_482_240,
    "gpt2_small": 124_439_808,
}

#: Node counts of the default (BN-folded) graphs, and the op counts that pin each architecture.
NODES = {"resnet50": 122, "densenet121": 372, "mobilenet_v3_large": 140, "shufflenet_v2_x1_0": 283,
         "vgg16": 38, "squeezenet1_1": 65, "resnet32_cifar": 107, "minionn_cifar": 18, "bert_base": 530,
         "gpt2_small": 801}
OPS = {
    "resnet50": {"Conv": 53, "Gemm": 1, "MatMul": 0, "Relu": 49, "Add": 16, "MaxPool": 1, "BatchNormalization": 0},
    "densenet121": {"Conv": 120, "Gemm": 1, "MatMul": 0, "BatchNormalization": 62, "Concat": 62, "AveragePool": 3},
    "mobilenet_v3_large": {"Conv": 62, "Gemm": 2, "MatMul": 0, "HardSwish": 21, "HardSigmoid": 8, "Relu": 19,
                           "GlobalAveragePool": 9, "Mul": 8, "Add": 10},
    "shufflenet_v2_x1_0": {"Conv": 56, "Gemm": 1, "MatMul": 0, "Slice": 26, "Concat": 16, "Transpose": 16,
                           "Reshape": 32, "ReduceMean": 1},
    "vgg16": {"Conv": 13, "Gemm": 3, "MatMul": 0, "Relu": 15, "MaxPool": 5},
    "squeezenet1_1": {"Conv": 26, "Gemm": 0, "MatMul": 0, "Relu": 26, "Concat": 8, "MaxPool": 3},
    "resnet32_cifar": {"Conv": 31, "Gemm": 1, "MatMul": 0, "Relu": 31, "Add": 15, "Slice": 4, "Pad": 2},
    "minionn_cifar": {"Conv": 7, "Gemm": 1, "MatMul": 0, "Relu": 7, "AveragePool": 2},
    "bert_base": {"MatMul": 96, "Gemm": 1, "Conv": 0, "LayerNormalization": 25, "Softmax": 12, "Erf": 12,
                  "Gather": 4, "Tanh": 1},
    "gpt2_small": {"MatMul": 24, "Gemm": 48, "Conv": 0, "LayerNormalization": 25, "Softmax": 12, "Tanh": 12,
                   "Pow": 24, "Where": 12, "Split": 12},
}
NAMED = {
    "resnet50": ["/conv1/Conv", "/relu/Relu", "/maxpool/MaxPool", "/layer1/layer1.0/conv1/Conv",
                 "/layer1/layer1.0/relu/Relu", "/layer1/layer1.0/relu_1/Relu", "/layer1/layer1.0/relu_2/Relu",
                 "/layer1/layer1.0/downsample/downsample.0/Conv", "/layer1/layer1.0/Add",
                 "/layer4/layer4.2/conv3/Conv", "/avgpool/GlobalAveragePool", "/Flatten", "/fc/Gemm"],
    "densenet121": ["/features/conv0/Conv", "/features/denseblock1/denselayer1/Concat",
                    "/features/denseblock1/denselayer1/norm1/BatchNormalization", "/features/denseblock4/Concat",
                    "/features/transition3/pool/AveragePool", "/features/norm5/BatchNormalization", "/Relu",
                    "/GlobalAveragePool", "/classifier/Gemm"],
    "mobilenet_v3_large": ["/features/features.0/features.0.0/Conv", "/features/features.0/features.0.2/HardSwish",
                           "/features/features.1/Add", "/features/features.4/block/block.2/avgpool/GlobalAveragePool",
                           "/features/features.4/block/block.2/scale_activation/HardSigmoid",
                           "/features/features.4/block/block.2/Mul", "/classifier/classifier.3/Gemm"],
    "shufflenet_v2_x1_0": ["/conv1/conv1.0/Conv", "/stage2/stage2.0/branch1/branch1.0/Conv",
                           "/stage2/stage2.1/Slice", "/stage2/stage2.1/Slice_1", "/stage2/stage2.1/Transpose",
                           "/stage4/stage4.3/Reshape_1", "/conv5/conv5.2/Relu", "/ReduceMean", "/fc/Gemm"],
    "vgg16": ["/features/features.0/Conv", "/features/features.30/MaxPool", "/avgpool/AveragePool",
              "/classifier/classifier.6/Gemm"],
    "squeezenet1_1": ["/features/features.3/squeeze/Conv", "/features/features.12/expand3x3_activation/Relu",
                      "/features/features.12/Concat", "/classifier/classifier.3/GlobalAveragePool"],
    "resnet32_cifar": ["/conv1/Conv", "/Relu", "/layer1/layer1.0/Relu_1", "/layer2/layer2.0/shortcut/Pad",
                       "/layer3/layer3.4/conv2/Conv", "/AveragePool", "/linear/Gemm"],
    "minionn_cifar": ["/conv1/Conv", "/relu7/Relu", "/pool2/AveragePool", "/Flatten", "/fc/Gemm"],
    "bert_base": ["/embeddings/word_embeddings/Gather", "/embeddings/LayerNorm/LayerNormalization",
                  "/encoder/layer.0/attention/self/query/MatMul", "/encoder/layer.0/attention/self/Softmax",
                  "/encoder/layer.0/intermediate/intermediate_act_fn/Erf",
                  "/encoder/layer.11/output/LayerNorm/LayerNormalization", "/pooler/dense/Gemm"],
    "gpt2_small": ["/wte/Gather", "/h.0/ln_1/LayerNormalization", "/h.0/attn/c_attn/Gemm", "/h.0/attn/Where",
                   "/h.0/mlp/act/Tanh", "/h.11/mlp/c_proj/Gemm", "/ln_f/LayerNormalization"],
}
OUTPUTS = {"bert_base": {"last_hidden_state": [1, 128, 768], "pooler_output": [1, 768]},
           "gpt2_small": {"last_hidden_state": [1, 128, 768]},
           "resnet32_cifar": {"output": [1, 10]}, "minionn_cifar": {"output": [1, 10]}}


def test_names() -> None:
    assert tuple(PUBLISHED_PARAMETERS) == zoo.NAMES


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every model saved once (with its sparse data file) for the file-level tests."""
    folder = tmp_path_factory.mktemp("zoo")
    return {name: zoo.save(name, folder / f"{name}.onnx") for name in zoo.NAMES}


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int] | None]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    known = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        known[vi.name] = dims if tt.HasField("shape") and None not in dims else None
    return {out: known.get(out) for node in model.graph.node for out in node.output}


@pytest.mark.parametrize("name", zoo.NAMES)
def test_architecture(name: str) -> None:
    model = zoo.build(name)
    assert zoo.pytorch_parameters(model) == PUBLISHED_PARAMETERS[name]
    ops = Counter(n.op_type for n in model.graph.node)
    assert len(model.graph.node) == NODES[name]
    assert {op: ops[op] for op in OPS[name]} == OPS[name]
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names) and all(n.startswith("/") for n in names)
    assert not [n for n in NAMED[name] if n not in set(names)]
    shapes = _static_shapes(model)
    assert not [t for t, s in shapes.items() if s is None], "every tensor must have a static shape"
    want = OUTPUTS.get(name, {"output": [1, 1000]})
    assert {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output} == want


@pytest.mark.parametrize("name", zoo.NAMES)
def test_parameters_match_unfolded_initializers(name: str) -> None:
    """Without BN folding, the float initializers are exactly the PyTorch parameters plus BN running stats:
    an independent check of the count `build` records."""
    model = zoo.build(name, fold_bn=False)
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    stats = sum(n for k, n in sizes.items() if k.endswith((".running_mean", ".running_var")))
    assert sum(sizes.values()) - stats == PUBLISHED_PARAMETERS[name] == zoo.pytorch_parameters(model)
    bn = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert stats == sum(sizes[n.input[3]] + sizes[n.input[4]] for n in bn)
    assert Counter(n.op_type for n in model.graph.node)["Conv"] == OPS[name]["Conv"]


def test_fold_bn_false_keeps_batchnorm_nodes() -> None:
    model = zoo.build("resnet50", fold_bn=False)
    names = {n.name for n in model.graph.node}
    assert Counter(n.op_type for n in model.graph.node)["BatchNormalization"] == 53
    assert {"/bn1/BatchNormalization", "/layer1/layer1.0/downsample/downsample.1/BatchNormalization"} <= names
    inits = {t.name for t in model.graph.initializer}
    assert {"conv1.weight", "bn1.running_var", "layer4.2.bn3.bias"} <= inits


@pytest.mark.parametrize("name", zoo.NAMES)
def test_saved_file(name: str, saved: dict[str, Path]) -> None:
    path = saved[name]
    onnx.checker.check_model(str(path), full_check=True)
    assert path.stat().st_size < 1_000_000
    model = onnx.load(str(path), load_external_data=False)
    data = path.with_name(path.name + ".data")
    extent = 0
    for t in model.graph.initializer:
        assert t.data_location == TensorProto.EXTERNAL and not t.raw_data
        ext = {e.key: e.value for e in t.external_data}
        assert ext["location"] == data.name
        assert int(ext["length"]) == 4 * int(np.prod(t.dims))
        extent = max(extent, int(ext["offset"]) + int(ext["length"]))
    stat = os.stat(data)
    assert stat.st_size == extent
    assert stat.st_blocks * 512 < 1_000_000, "the data file should be sparse"


@pytest.mark.parametrize("name", zoo.NAMES)
def test_profile_runs(name: str, saved: dict[str, Path]) -> None:
    prof = hawkeye_onnx.profile(saved[name], backends=["crypten", "semi2k"])
    assert prof.model.parameters > 0
    for report in prof.backends.values():
        assert report.total.online.bytes > 0 and report.total.online.rounds > 0


@pytest.mark.parametrize("name", ["resnet32_cifar", "minionn_cifar", "squeezenet1_1", "shufflenet_v2_x1_0"])
def test_small_models_run_in_onnxruntime(name: str, saved: dict[str, Path]) -> None:
    """The graphs are executable (on all-zero weights), not just well-typed."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(saved[name]), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    (out,) = session.run(None, {"input": np.ones(shape, np.float32)})
    assert out.shape == (1, 10 if "cifar" in name else 1000)


def test_batch_and_seq() -> None:
    model = zoo.build("resnet50", batch=4)
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [4, 1000]
    bert = zoo.build("bert_base", seq=512)
    assert [d.dim_value for d in bert.graph.input[0].type.tensor_type.shape.dim] == [1, 512]
    assert [d.dim_value for d in bert.graph.output[0].type.tensor_type.shape.dim] == [1, 512, 768]
    gpt = zoo.build("gpt2_small", batch=2, seq=64)
    assert [d.dim_value for d in gpt.graph.output[0].type.tensor_type.shape.dim] == [2, 64, 768]
    assert not [t for t, s in _static_shapes(gpt).items() if s is None]
    assert zoo.pytorch_parameters(gpt) == PUBLISHED_PARAMETERS["gpt2_small"]


@pytest.mark.parametrize(("args", "match"), [
    (("alexnet",), "unknown zoo model"),
    (("resnet50", 1, 128), "takes no seq"),
    (("bert_base", 1, 513), "outside 1..512"),
    (("gpt2_small", 1, 2048), "outside 1..1024"),
    (("vgg16", 0), "batch"),
])
def test_bad_arguments(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        zoo.build(*args)
