"""Run one function in a forked child process while the caller goes on, and collect its result.

Why: onnx's shape inference is C++ that holds the GIL, and the IR's structural pass is Python; neither
waits for the other's result until the very end (the structure needs no shapes). On a machine with a
second core, the child infers shapes while the parent reads the graph's structure, which takes the
pipeline's wall time on a big model from their sum to about the longer of the two.

Only where `os.fork` exists (Linux, not Windows; not macOS, where forking a process that has loaded
system frameworks is unsafe); elsewhere callers run the function in-process. The child gets a copy of
the parent's memory (copy-on-write), sends back its result pickled through a pipe and exits at once
(`os._exit`: no cleanup of the parent's inherited state, no output).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
from collections.abc import Callable
from typing import Any

AVAILABLE = hasattr(os, "fork") and sys.platform.startswith("linux")


class Lost(RuntimeError):
    """The child ended without a result (killed, e.g. by the kernel's out-of-memory killer): the caller
    can still do the work itself."""


class Pending:
    """The result to come of `fn()` run in a child; `result()` waits for it and re-raises its exception.
    Use as a context manager: leaving the block early (an error in the parent) kills the child."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's frames
            code = 0
            try:
                os.close(read)
                sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - a lock another thread held at fork time must not hang us
                try:
                    payload = (True, fn())
                except BaseException as exc:
                    payload = (False, exc)
                try:
                    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:
                    data = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
                with os.fdopen(write, "wb") as fh:
                    fh.write(data)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        self._pid: int | None = pid
        self._read = read

    def result(self) -> Any:
        with os.fdopen(self._read, "rb") as fh:
            data = fh.read()
        self._reap()
        if not data:
            raise Lost("the background process ended without a result (killed, or out of memory?)")
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    def _reap(self) -> None:
        if self._pid is not None:
            os.waitpid(self._pid, 0)
            self._pid = None

    def __enter__(self) -> Pending:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pid is not None:  # the parent failed before asking for the result
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            self._reap()
            with contextlib.suppress(OSError):
                os.close(self._read)
