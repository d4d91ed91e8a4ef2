"""hawkeye-onnx: static profiling of the communication cost of ONNX models under MPC frameworks."""

from typing import Any

from hawkeye_onnx.errors import HawkeyeError
from hawkeye_onnx.profile import profile
from hawkeye_onnx.result import Profile
from hawkeye_onnx.training import opvars as _training_opvars  # noqa: F401 - registers the ai.hawkeye op variables

__all__ = ["HawkeyeError", "Profile", "profile", "profile_torch"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # profile_torch is loaded on first use, so importing hawkeye_onnx never needs torch
    if name == "profile_torch":
        from hawkeye_onnx.torch_api import profile_torch

        return profile_torch
    raise AttributeError(f"module 'hawkeye_onnx' has no attribute {name!r}")
