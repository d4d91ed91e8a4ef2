"""Training: expand an inference ONNX graph into one training step and profile its phases.

`expand.expand()` builds forward + loss + backward + optimizer update as a real ONNX model (standard ops,
plus a few `ai.hawkeye` ops defined as model-local functions so the checker and shape inference see
through them); `profile_train()` prices it per backend and splits the cost into the phases
forward / loss / backward / update by node name. Imports are lazy: `hawkeye_onnx.training.opvars`
is imported by the package root to register the shape variables of the `ai.hawkeye` ops.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainOptions", "profile_train"]


def __getattr__(name: str) -> Any:
    """`TrainOptions` and `profile_train`, imported on first use (the expander itself is
    `hawkeye_onnx.training.expand.expand`)."""
    import importlib

    if name == "TrainOptions":
        return importlib.import_module("hawkeye_onnx.training.expand").TrainOptions
    if name == "profile_train":
        return importlib.import_module("hawkeye_onnx.training.profile").profile_train
    raise AttributeError(name)
