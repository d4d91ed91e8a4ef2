"""Errors a user can act on. Each carries a one-line message and the CLI exit code it maps to.

The CLI prints `hawkeye-onnx: error: <message>` and exits with `exit_code`; a traceback is shown
only with `--debug`. Anything else that escapes is a bug (exit code 1).
"""

from __future__ import annotations


class HawkeyeError(Exception):
    """Base class: a problem with the user's input, stated in one line with how to fix it."""

    exit_code = 2


class ModelError(HawkeyeError):
    """The file is missing, not ONNX, corrupt, or not a valid graph."""

    exit_code = 2


class ShapeError(HawkeyeError):
    """A tensor a cost depends on has no static shape (bind it with --input-shape / --batch)."""

    exit_code = 5


class RuleError(HawkeyeError):
    """A rule file is broken: the message starts with `file:line:`."""

    exit_code = 4


class UnsupportedError(HawkeyeError):
    """Some operators cannot run on a backend and --strict was given."""

    exit_code = 3


class ParamError(HawkeyeError):
    """An unknown backend or parameter, or a value of the wrong kind."""

    exit_code = 2


class HawkeyeWarning(UserWarning):
    """A run that may not finish as asked (not enough memory for it): the CLI prints
    `hawkeye-onnx: warning: <message>` on stderr, once, and goes on."""
