"""Framework-specific helper functions that rule formulas may call, registered with `expr`.

Keep each one small, vectorised over numpy arrays, and documented with the framework source it
copies. Importing this module registers them (the rules loader imports it).
"""

from __future__ import annotations

from hawkeye_onnx.expr import register_function  # noqa: F401 - used by the registrations below
from hawkeye_onnx.fn_cheetah import FUNCTIONS as _CHEETAH  # noqa: F401 - registers rules/cheetah.toml helpers
from hawkeye_onnx.fn_cryptflow2 import FUNCTIONS as _CRYPTFLOW2  # noqa: F401 - registers rules/cryptflow2.toml helpers
