"""Run one function in a forked child process while the caller goes on, and collect its results.

Why: onnx's shape inference is C++ that holds the GIL, and the IR's structural pass is Python; neither
waits for the other's result until the very end (the structure needs no shapes). On a machine with a
second core, the child infers shapes while the parent reads the graph's structure, which takes the
pipeline's wall time on a big model from their sum to about the longer of the two.

Only where `os.fork` exists (Linux, not Windows; not macOS, where forking a process that has loaded
system frameworks is unsafe); elsewhere callers run the function in-process. The child gets a copy of
the parent's memory (copy-on-write), sends back its results pickled through a pipe, one by one, and exits
at once (`os._exit`: no cleanup of the parent's inherited state, no output).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

AVAILABLE = hasattr(os, "fork") and sys.platform.startswith("linux")


class Lost(RuntimeError):
    """The child ended without a result (killed, e.g. by the kernel's out-of-memory killer): the caller
    can still do the work itself."""


class Pending:
    """The results to come of `fn()` run in a child: `fn` returns an iterable, and each item is sent to the
    parent as soon as it is made (the first result need not wait for the later ones). `next()` waits for the
    next one and re-raises the child's exception. Use as a context manager: leaving the block ends the child
    (killed if it is still working: the parent failed, or did not need the rest)."""

    def __init__(self, fn: Callable[[], Iterable[Any]]) -> None:
        read, write = os.pipe()
        with warnings.catch_warnings():  # Python >= 3.12 warns when other threads exist (the progress bar's):
            warnings.simplefilter("ignore", DeprecationWarning)  # the child touches none of their locks
            pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's frames
            code = 0
            try:
                os.close(read)
                sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - a lock another thread held at fork time must not hang us
                with os.fdopen(write, "wb") as fh:
                    try:
                        for item in fn():
                            _send(fh, (True, item))
                    except BaseException as exc:
                        _send(fh, (False, exc))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        self._pid: int | None = pid
        self._pipe: BinaryIO = os.fdopen(read, "rb")

    def next(self) -> Any:
        """The child's next result (its exception raised here); `Lost` if the child ended without it."""
        head = self._pipe.read(_HEAD)
        size = int.from_bytes(head, "little") if len(head) == _HEAD else 0
        data = self._pipe.read(size) if size else b""
        if not size or len(data) < size:
            raise Lost("the background process ended without a result (killed, or out of memory?)")
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    def __enter__(self) -> Pending:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):  # done, or still working on results nobody reads
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid = None
            self._pipe.close()


_HEAD = 8  # bytes of each message's length, before its pickle
_M_MXFAST = 1  # glibc's mallopt parameter: the largest block size kept in "fast bins"


def coalesce_frees() -> None:
    """Make glibc's malloc merge small freed blocks as they are freed (`mallopt(M_MXFAST, 0)`), in a child.

    Why: onnx's C++ shape inference frees millions of small blocks when it returns. glibc keeps them unmerged
    in "fast bins", and the next large allocation (protobuf's arena reading the inferred model) first merges
    them all: 1.5 s at 1M nodes, on the path the parent waits on. Without fast bins the same read takes 0.05 s
    and inference is no slower (1M nodes: 9.2-10.2 s against 10.3-10.8 s). A no-op where the C library has
    no `mallopt` (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MXFAST, 0)


def _send(fh: BinaryIO, payload: tuple[bool, Any]) -> None:
    try:
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        data = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
    fh.write(len(data).to_bytes(_HEAD, "little"))
    fh.write(data)
    fh.flush()
