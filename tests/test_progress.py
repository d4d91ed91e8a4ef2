"""The progress bar: shown on a terminal once the work is slow, never in pipes or with --quiet."""

from __future__ import annotations

import io
import time

from hawkeye_onnx.progress import StageProgress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_shows_on_a_terminal_after_the_delay() -> None:
    stream = FakeTerminal()
    with StageProgress(stream=stream, delay=0.05) as bar:
        bar("pricing crypten", 2, 5)
        deadline = time.monotonic() + 5
        while not bar.shown and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bar.shown
        bar("pricing semi2k", 3, 5)
    assert not bar.shown
    assert "pricing" in stream.getvalue()


def test_no_bar_when_fast_or_not_a_terminal_or_quiet() -> None:
    fast = FakeTerminal()
    with StageProgress(stream=fast, delay=10) as bar:
        bar("building the graph", 1, 3)
    assert fast.getvalue() == ""
    for stream, enabled in ((io.StringIO(), True), (FakeTerminal(), False)):
        with StageProgress(enabled=enabled, stream=stream, delay=0.0) as bar:
            bar("x", 0, 1)
            time.sleep(0.05)
            assert not bar.shown
        assert stream.getvalue() == ""
