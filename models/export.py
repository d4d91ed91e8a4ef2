"""Build and export the small PyTorch models used as hawkeye-onnx fixtures.

Every model is written by hand (no torchvision), seeded with
``torch.manual_seed(0)`` right before it is built, put in eval mode and
exported to ONNX next to this script.  Most files come from the TorchScript
exporter (``dynamo=False``, opset 17); the ``*_dynamo`` files come from the dynamo
exporter (``dynamo=True``, opset 18), the same modules seeded the same way, so each
pair is one network exported both ways.

Each exported file is checked with ``onnx.checker.check_model(full_check=True)``
and run once through onnxruntime, whose output is compared with PyTorch's.
``index.json`` lists every file with the concrete input shapes to profile it
at.

Regenerate with::

    python models/export.py
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _index import merge  # noqa: E402 - beside this script
SEED = 0
TORCHSCRIPT_OPSET = 17
DYNAMO_OPSET = 18
MAX_BYTES = 2 * 1024 * 1024


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


class MLP(nn.Module):
    """784-128-128-10 perceptron with ReLU, like the ground-truth ``mlp.onnx``."""

    def __init__(self) -> None:
        """Create the three linear layers."""
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 784)`` to ``(N, 10)`` logits."""
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet-5 for 1x28x28 inputs (valid 5x5 convolutions, 2x2 max pooling)."""

    def __init__(self) -> None:
        """Create the two convolutions and the three linear layers."""
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 1, 28, 28)`` to ``(N, 10)`` logits."""
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def _randomize_bn(module: nn.Module) -> None:
    """Give every BatchNorm non-trivial affine parameters and running stats.

    Fresh BatchNorm layers are the identity in eval mode (mean 0, var 1,
    gamma 1, beta 0); random values make the Conv+BN folding observable.
    """
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN, residual Add, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        """Create the block; a 1x1 conv + BN shortcut is used when shapes change."""
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the residual block."""
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + identity)


class ResNetCifar(nn.Module):
    """Tiny CIFAR ResNet: stem, two basic blocks (8->8, 8->16/2), pool, FC."""

    def __init__(self) -> None:
        """Create the stem, the two blocks and the classifier."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = BasicBlock(8, 8, stride=1)
        self.layer2 = BasicBlock(8, 16, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 3, 32, 32)`` to ``(N, 10)`` logits."""
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class CnnAvgPool(nn.Module):
    """Small CNN mixing average/max pooling, padding, 1x1 and strided convs."""

    def __init__(self) -> None:
        """Create the layers."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.avgpool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 1)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=2, padding=0, dilation=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 3, 16, 16)`` to ``(N, 10)`` logits."""
        x = self.avgpool(torch.relu(self.conv1(x)))  # N,8,8,8
        x = self.maxpool(torch.relu(self.conv2(x)))  # N,16,4,4
        x = self.conv3(x)  # N,16,1,1
        return self.fc(torch.flatten(x, 1))


class MobileNetBlock(nn.Module):
    """Depthwise-separable block with a grouped convolution and global pooling."""

    def __init__(self) -> None:
        """Create the layers."""
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pointwise = nn.Conv2d(16, 24, 1)
        self.grouped = nn.Conv2d(24, 24, 3, padding=1, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 3, 32, 32)`` to ``(N, 10)`` logits."""
        x = torch.relu(self.stem(x))  # N,16,16,16
        x = torch.relu(self.depthwise(x))
        x = self.pointwise(x)  # N,24,16,16
        x = self.grouped(x)
        return self.fc(torch.flatten(self.pool(x), 1))


class ManualLayerNorm(nn.Module):
    """LayerNorm over the last dim written with elementary tensor ops."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        """Create gamma (ones) and beta (zeros) of size ``dim``."""
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` over its last dimension."""
        mean = x.mean(dim=-1, keepdim=True)
        centered = x - mean
        var = centered.pow(2).mean(dim=-1, keepdim=True)
        return centered / torch.sqrt(var + self.eps) * self.weight + self.bias


class TransformerBlock(nn.Module):
    """One post-LN BERT-style encoder block written by hand."""

    def __init__(
        self,
        d_model: int = 32,
        n_heads: int = 2,
        d_ff: int = 64,
        decomposed_ln: bool = False,
    ) -> None:
        """Create the attention, FFN and the two LayerNorms.

        With ``decomposed_ln`` the LayerNorms are :class:`ManualLayerNorm`
        (exported as ReduceMean/Sub/Pow/Add/Sqrt/Div/Mul/Add) instead of
        :class:`torch.nn.LayerNorm` (one LayerNormalization op at opset 17).
        """
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ln1: nn.Module = (
            ManualLayerNorm(d_model) if decomposed_ln else nn.LayerNorm(d_model)
        )
        self.ffn1 = nn.Linear(d_model, d_ff)
        self.act = nn.GELU()  # exact (erf) form
        self.ffn2 = nn.Linear(d_ff, d_model)
        self.ln2: nn.Module = (
            ManualLayerNorm(d_model) if decomposed_ln else nn.LayerNorm(d_model)
        )

    def _split(self, t: torch.Tensor, b: int, s: int) -> torch.Tensor:
        """``(B, S, D)`` -> ``(B, H, S, Dh)``."""
        return t.reshape(b, s, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, S, D)`` to ``(B, S, D)``."""
        b, s, d = x.shape
        q = self._split(self.q(x), b, s)
        k = self._split(self.k(x), b, s)
        v = self._split(self.v(x), b, s)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        attn = torch.softmax(scores, dim=-1) @ v  # B,H,S,Dh
        attn = attn.transpose(1, 2).reshape(b, s, d)
        x = self.ln1(x + self.out(attn))
        return self.ln2(x + self.ffn2(self.act(self.ffn1(x))))


class LogRegSigmoid(nn.Module):
    """Logistic regression: Linear 20->1 + Sigmoid."""

    def __init__(self) -> None:
        """Create the linear layer."""
        super().__init__()
        self.fc = nn.Linear(20, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 20)`` to ``(N, 1)`` probabilities."""
        return torch.sigmoid(self.fc(x))


class MlpTanhSoftmax(nn.Module):
    """Linear 32->16, Tanh, Linear 16->8, Softmax over the last dim."""

    def __init__(self) -> None:
        """Create the two linear layers."""
        super().__init__()
        self.fc1 = nn.Linear(32, 16)
        self.fc2 = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 32)`` to ``(N, 8)`` probabilities."""
        return torch.softmax(self.fc2(torch.tanh(self.fc1(x))), dim=-1)


class MiniONN(nn.Module):
    """The CIFAR-10 network of MiniONN (Liu et al., CCS'17, Fig. 13), as in ``hawkeye_onnx.zoo``.

    Seven convolutions (3x3 x5 with padding 1, then 1x1 to 64 and 1x1 to 16), each followed by ReLU,
    two 2x2 mean pools and a fully connected layer 1024 -> 10; one module per layer, so both exporters
    see the same module names.
    """

    def __init__(self) -> None:
        """Create conv1..conv7, relu1..relu7, pool1, pool2 and fc."""
        super().__init__()
        shapes = [(3, 64, 3), (64, 64, 3), (64, 64, 3), (64, 64, 3), (64, 64, 3), (64, 64, 1), (64, 16, 1)]
        for i, (cin, cout, k) in enumerate(shapes, 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, k, padding=k // 2))
            setattr(self, f"relu{i}", nn.ReLU())
        self.pool1 = nn.AvgPool2d(2)
        self.pool2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 3, 32, 32)`` to ``(N, 10)`` logits."""
        for i in range(1, 8):
            x = getattr(self, f"relu{i}")(getattr(self, f"conv{i}")(x))
            if i == 2:
                x = self.pool1(x)
            elif i == 4:
                x = self.pool2(x)
        return self.fc(torch.flatten(x, 1))


def _resnet() -> nn.Module:
    """Build the CIFAR ResNet with randomized BatchNorm statistics."""
    model = ResNetCifar()
    _randomize_bn(model)
    return model


# --------------------------------------------------------------------------
# Export specs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How to build, export and describe one ONNX file."""

    file: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    description: str
    exporter: str = "torchscript"
    opset: int = TORCHSCRIPT_OPSET
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    training: torch.onnx.TrainingMode = torch.onnx.TrainingMode.EVAL
    constant_folding: bool = True
    required_ops: tuple[str, ...] = ()
    forbidden_ops: tuple[str, ...] = ()


SPECS: list[Spec] = [
    Spec(
        "mlp.onnx",
        MLP,
        (1, 784),
        "784-128-128-10 MLP with ReLU; symbolic batch dim 'batch' (use --batch)",
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        required_ops=("Gemm", "Relu"),
    ),
    Spec(
        "lenet5.onnx",
        LeNet5,
        (1, 1, 28, 28),
        "LeNet-5: conv5-ReLU-maxpool2 x2, flatten, FC 256-120-84-10 with ReLU",
        required_ops=("Conv", "MaxPool", "Flatten", "Gemm"),
    ),
    Spec(
        "resnet_cifar.onnx",
        _resnet,
        (1, 3, 32, 32),
        "tiny CIFAR ResNet (stem + 2 BasicBlocks, identity and 1x1-conv shortcuts); "
        "BatchNorm folded into Conv",
        required_ops=("Conv", "Add", "GlobalAveragePool", "Gemm"),
        forbidden_ops=("BatchNormalization",),
    ),
    Spec(
        "resnet_cifar_bn.onnx",
        _resnet,
        (1, 3, 32, 32),
        "same tiny CIFAR ResNet with BatchNormalization nodes kept (inference mode)",
        training=torch.onnx.TrainingMode.PRESERVE,
        constant_folding=False,
        required_ops=("Conv", "BatchNormalization", "Add", "GlobalAveragePool"),
    ),
    Spec(
        "cnn_avgpool.onnx",
        CnnAvgPool,
        (2, 3, 16, 16),
        "CNN at batch 2: padded conv, AveragePool 2, 1x1 conv, MaxPool 3/2 pad 1, "
        "strided unpadded conv, Linear",
        required_ops=("Conv", "AveragePool", "MaxPool", "Gemm"),
    ),
    Spec(
        "mobilenet_block.onnx",
        MobileNetBlock,
        (1, 3, 32, 32),
        "depthwise-separable block: strided conv, depthwise conv (group 16), "
        "pointwise conv, grouped conv (group 4), global average pool, Linear",
        required_ops=("Conv", "GlobalAveragePool", "Gemm"),
    ),
    Spec(
        "transformer_block.onnx",
        TransformerBlock,
        (1, 16, 32),
        "hand-written BERT encoder block (d_model 32, 2 heads, seq 16): attention "
        "with Softmax, LayerNormalization, exact-erf GELU FFN",
        required_ops=("MatMul", "Softmax", "LayerNormalization", "Erf"),
    ),
    Spec(
        "transformer_block_ln_decomposed.onnx",
        lambda: TransformerBlock(decomposed_ln=True),
        (1, 16, 32),
        "same encoder block with LayerNorm written by hand "
        "(ReduceMean/Sub/Pow/Add/Sqrt/Div/Mul/Add)",
        required_ops=("MatMul", "Softmax", "ReduceMean", "Pow", "Sqrt", "Erf"),
        forbidden_ops=("LayerNormalization",),
    ),
    Spec(
        "logreg_sigmoid.onnx",
        LogRegSigmoid,
        (4, 20),
        "logistic regression: Linear 20->1 + Sigmoid, batch 4",
        required_ops=("Gemm", "Sigmoid"),
    ),
    Spec(
        "mlp_tanh_softmax.onnx",
        MlpTanhSoftmax,
        (2, 32),
        "Linear 32->16, Tanh, Linear 16->8, Softmax; batch 2",
        required_ops=("Gemm", "Tanh", "Softmax"),
    ),
    Spec(
        "lenet5_dynamo.onnx",
        LeNet5,
        (1, 1, 28, 28),
        "LeNet-5 exported by the dynamo exporter",
        exporter="dynamo",
        opset=DYNAMO_OPSET,
        required_ops=("Conv", "MaxPool"),
    ),
    Spec(
        "resnet_cifar_dynamo.onnx",
        _resnet,
        (1, 3, 32, 32),
        "tiny CIFAR ResNet exported by the dynamo exporter (BatchNorm fused into "
        "Conv by the onnxscript optimizer; AdaptiveAvgPool2d as ReduceMean)",
        exporter="dynamo",
        opset=DYNAMO_OPSET,
        required_ops=("Conv", "Add"),
    ),
    Spec(
        "minionn_cifar.onnx",
        MiniONN,
        (1, 3, 32, 32),
        "MiniONN CIFAR-10 network (Liu et al. 2017, Fig. 13): 7 convs with ReLU, 2 mean pools, FC 1024-10",
        required_ops=("Conv", "Relu", "AveragePool", "Gemm"),
    ),
    Spec(
        "minionn_cifar_dynamo.onnx",
        MiniONN,
        (1, 3, 32, 32),
        "MiniONN CIFAR-10 network exported by the dynamo exporter",
        exporter="dynamo",
        opset=DYNAMO_OPSET,
        required_ops=("Conv", "Relu", "AveragePool", "Gemm"),
    ),
    Spec(
        "mlp_dynamo.onnx",
        MLP,
        (1, 784),
        "784-128-128-10 MLP exported by the dynamo exporter (static batch 1)",
        exporter="dynamo",
        opset=DYNAMO_OPSET,
        required_ops=("Gemm", "Relu"),
    ),
    Spec(
        "mobilenet_block_dynamo.onnx",
        MobileNetBlock,
        (1, 3, 32, 32),
        "depthwise-separable block exported by the dynamo exporter",
        exporter="dynamo",
        opset=DYNAMO_OPSET,
        required_ops=("Conv", "Gemm"),
    ),
    Spec(
        "transformer_block_dynamo.onnx",
        TransformerBlock,
        (1, 16, 32),
        "hand-written BERT encoder block exported by the dynamo exporter",
        exporter="dynamo",
        opset=DYNAMO_OPSET,
        required_ops=("MatMul", "Softmax", "LayerNormalization"),
    ),
]


# --------------------------------------------------------------------------
# Export and checks
# --------------------------------------------------------------------------


def build(spec: Spec) -> tuple[nn.Module, torch.Tensor]:
    """Build the seeded model of ``spec`` in eval mode and its example input."""
    torch.manual_seed(SEED)
    model = spec.build().eval()
    example = torch.randn(*spec.shape)
    return model, example


def export(spec: Spec, model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Export ``model`` to ``path`` with the exporter named by ``spec``."""
    if spec.exporter == "torchscript":
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=spec.opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=spec.dynamic_axes or None,
            do_constant_folding=spec.constant_folding,
            training=spec.training,
        )
    elif spec.exporter == "dynamo":
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=spec.opset,
            input_names=["input"],
            output_names=["output"],
            external_data=False,
            optimize=True,
        )
        assert program is not None
        program.save(str(path), external_data=False)
    else:
        raise ValueError(f"unknown exporter {spec.exporter!r}")


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Count the op types of the main graph, most frequent first."""
    counts = collections.Counter(node.op_type for node in model.graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def check(
    spec: Spec, model: nn.Module, example: torch.Tensor, path: Path
) -> onnx.ModelProto:
    """Validate the exported file, run it in onnxruntime and compare to PyTorch."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = op_histogram(proto)
    missing = [op for op in spec.required_ops if op not in ops]
    present = [op for op in spec.forbidden_ops if op in ops]
    if missing or present:
        raise AssertionError(
            f"{spec.file}: missing ops {missing}, unexpected ops {present}"
        )
    size = path.stat().st_size
    if size >= MAX_BYTES:
        raise AssertionError(f"{spec.file}: {size} bytes, not < {MAX_BYTES}")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": example.numpy()})
    with torch.no_grad():
        want = model(example).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=spec.file)
    if 0 in spec.dynamic_axes.get("input", {}):
        # A symbolic batch dim must really accept another batch size.
        wider = torch.randn(3, *spec.shape[1:])
        (got,) = session.run(None, {"input": wider.numpy()})
        with torch.no_grad():
            want = model(wider).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=spec.file)
    return proto


def describe(spec: Spec, proto: onnx.ModelProto, path: Path) -> str:
    """Human-readable report: size, inputs, op histogram, node-name samples."""
    inputs = []
    for value in proto.graph.input:
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        inputs.append(f"{value.name}{dims}")
    header = (
        f"== {spec.file}  ({path.stat().st_size} B, {spec.exporter}, opset "
        f"{proto.opset_import[0].version}, {len(proto.graph.node)} nodes, "
        f"inputs {', '.join(inputs)})"
    )
    lines = [header, f"   ops: {op_histogram(proto)}"]
    names = [n.name for n in proto.graph.node]
    step = max(1, len(names) // 6)
    lines.append(f"   names: {names[::step][:8]}")
    for node in proto.graph.node:
        props = {p.key: p.value for p in node.metadata_props}
        if props:
            lines.append(f"   metadata of {node.name} ({node.op_type}): {props}")
            break
    return "\n".join(lines)


def index_entry(spec: Spec) -> dict[str, Any]:
    """Return the ``index.json`` record of ``spec``."""
    entry: dict[str, Any] = {
        "file": spec.file,
        "inputs": {"input": list(spec.shape)},
        "exporter": spec.exporter,
        "opset": spec.opset,
        "description": spec.description,
    }
    if spec.dynamic_axes.get("input"):
        entry["symbolic_dims"] = {
            "input": {str(k): v for k, v in spec.dynamic_axes["input"].items()}
        }
    return entry


def main(argv: list[str] | None = None) -> int:
    """Export every model, check it, write ``index.json`` and print a report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    parser.add_argument("--only", nargs="*", help="export only these file names")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    index: list[dict[str, Any]] = []
    failures: list[str] = []
    for spec in SPECS:
        if args.only and spec.file not in args.only:
            continue
        path = out / spec.file
        model, example = build(spec)
        try:
            export(spec, model, example, path)
            proto = check(spec, model, example, path)
        except Exception as exc:  # report a dynamo failure and go on
            if spec.exporter != "dynamo":
                raise
            path.unlink(missing_ok=True)
            failures.append(f"{spec.file}: {type(exc).__name__}: {exc}".splitlines()[0])
            traceback.print_exc()
            continue
        index.append(index_entry(spec))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        print(describe(spec, proto, path) + f"\n   sha256 {digest}")

    merge(out, index)
    for failure in failures:
        print(f"FAILED (skipped): {failure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
