"""The progress bar: shown on a terminal once the work is slow, never in pipes or with --quiet.

The terminal is a real pseudo-terminal (`os.openpty()`): the bar is drawn on its slave end, whose
`isatty()` is genuinely true, and what was drawn is read back from the master end.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import select
import time
from collections.abc import Iterator

import pytest

from hawkeye_onnx.progress import StageProgress

# CSI sequences (cursor moves, erase, colours), OSC sequences and lone escapes that rich writes to a terminal.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


class Pty:
    """A pseudo-terminal pair: `stream` writes to the slave, `drain()` / `output()` read the master."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        os.set_blocking(self.master, False)
        self.stream = os.fdopen(slave, "w")
        self._data = bytearray()

    def drain(self, timeout: float = 0.0) -> bool:
        """Read whatever is waiting on the master (so the writer never blocks); False once the slave is gone."""
        while True:
            ready, _, _ = select.select([self.master], [], [], timeout)
            if not ready:
                return True
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                return True
            except OSError as err:  # EIO: every slave fd is closed and nothing is left to read
                if err.errno == errno.EIO:
                    return False
                raise
            if not chunk:
                return False
            self._data += chunk

    def output(self) -> str:
        """Close the writer, read everything it drew, and return it as text without ANSI escapes."""
        self.stream.close()
        deadline = time.monotonic() + 5
        while self.drain(timeout=0.1) and time.monotonic() < deadline:
            pass
        return ANSI.sub("", self._data.decode("utf-8", errors="replace"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            os.close(self.master)


@pytest.fixture
def pty() -> Iterator[Pty]:
    terminal = Pty()
    try:
        yield terminal
    finally:
        terminal.close()


def test_the_pty_is_a_real_terminal(pty: Pty) -> None:
    assert pty.stream.isatty()
    assert os.isatty(pty.stream.fileno())


def test_bar_shows_on_a_terminal_after_the_delay(pty: Pty) -> None:
    with StageProgress(stream=pty.stream, delay=0.05) as bar:
        bar("pricing crypten", 2, 5)
        deadline = time.monotonic() + 5
        while not bar.shown and time.monotonic() < deadline:
            pty.drain(timeout=0.01)
        assert bar.shown
        bar("pricing semi2k", 3, 5)
        pty.drain()
    assert not bar.shown
    assert "pricing" in pty.output()


def test_no_bar_when_fast(pty: Pty) -> None:
    with StageProgress(stream=pty.stream, delay=10) as bar:
        assert bar.enabled
        bar("building the graph", 1, 3)
    assert not bar.shown
    assert pty.output() == ""


def test_no_bar_when_quiet(pty: Pty) -> None:
    with StageProgress(enabled=False, stream=pty.stream, delay=0.0) as bar:
        bar("x", 0, 1)
        time.sleep(0.05)
        assert not bar.shown
    assert pty.output() == ""


def test_no_bar_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with StageProgress(stream=stream, delay=0.0) as bar:
        bar("x", 0, 1)
        time.sleep(0.05)
        assert not bar.shown
    assert stream.getvalue() == ""


def test_no_bar_in_a_pipe() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "r") as reader, os.fdopen(write_fd, "w") as writer:
        assert not writer.isatty()
        with StageProgress(stream=writer, delay=0.0) as bar:
            bar("x", 0, 1)
            time.sleep(0.05)
            assert not bar.shown
        writer.close()
        assert reader.read() == ""
