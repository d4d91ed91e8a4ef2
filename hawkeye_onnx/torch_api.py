"""`profile_torch(module, example_inputs, ...)`: profile a PyTorch module without handling ONNX by hand.

The module is exported with PyTorch's TorchScript exporter (`torch.onnx.export(..., dynamo=False)`, the
exporter whose node names carry the module path, e.g. `/layer1/layer1.0/conv1/Conv`) into a temporary
file, in eval mode, then profiled like any ONNX file. torch is an optional dependency
(`pip install 'hawkeye-onnx[torch]'`); it is imported only when this function is called.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hawkeye_onnx.errors import ModelError
from hawkeye_onnx.profile import profile
from hawkeye_onnx.result import Profile

#: The opset the TorchScript exporter writes (the newest it supports well; LayerNorm stays one op).
OPSET = 17


def profile_torch(module: Any, example_inputs: Any, *, input_names: Sequence[str] | None = None,
                  opset: int = OPSET, keep_batchnorm: bool = False,
                  **profile_kwargs: Any) -> Profile:
    """Export `module` with the TorchScript exporter and profile it.

    `example_inputs` is a tensor or a tuple of tensors (their shapes fix the profiled shapes).
    `input_names` names the graph inputs (default `input`, `input_1`, ...). `keep_batchnorm=True`
    keeps BatchNormalization nodes (`training=PRESERVE`, no constant folding) instead of folding them
    into the convolutions. Other keyword arguments go to `hawkeye_onnx.profile` (backends, params,
    public_weights, depth). The module is put in eval mode for the export and restored after.
    """
    try:
        import torch
    except ImportError:
        raise ModelError("profile_torch needs PyTorch: pip install 'hawkeye-onnx[torch]'") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"profile_torch expects a torch.nn.Module, not {type(module).__name__}")
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise ModelError("profile_torch: example_inputs must be a tensor or a tuple of tensors")
    names = list(input_names) if input_names is not None else (
        ["input"] + [f"input_{i}" for i in range(1, len(args))])
    if len(names) != len(args):
        raise ModelError(f"profile_torch: {len(names)} input_names for {len(args)} example inputs")
    for key in ("input_shapes", "batch"):
        if key in profile_kwargs:
            raise ModelError(f"profile_torch: {key} is fixed by example_inputs; change their shapes instead")
    training = module.training
    module.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="hawkeye-torch-") as tmp:
            path = Path(tmp) / f"{type(module).__name__}.onnx"
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module, args, str(path), dynamo=False, opset_version=opset, input_names=names,
                    do_constant_folding=not keep_batchnorm,
                    training=torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else torch.onnx.TrainingMode.EVAL,
                )
            return profile(path, **profile_kwargs)
    finally:
        module.train(training)

