"""hawkeye-onnx: static profiling of the communication cost of ONNX models under MPC frameworks."""

from hawkeye_onnx.errors import HawkeyeError
from hawkeye_onnx.profile import profile
from hawkeye_onnx.result import Profile
from hawkeye_onnx.training import opvars as _training_opvars  # noqa: F401 - registers the ai.hawkeye op variables

__all__ = ["HawkeyeError", "Profile", "profile"]
__version__ = "0.1.0"
