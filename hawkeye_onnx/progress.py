"""Progress on stderr for long runs: a rich bar over the pipeline's stages.

Small models finish in well under a second and print nothing extra; the bar appears only once the
work has taken `DELAY` seconds, only when stderr is a terminal (never in pipes, logs or CI), and
never with `--quiet`. It is transient: it disappears when the work is done, leaving stdout and the
one-line errors untouched.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

#: Seconds of work before the bar shows.
DELAY = 1.0


class StageProgress:
    """Callable `progress(stage, done, total)` handed to `profile()`; a no-op unless enabled and slow."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, delay: float = DELAY) -> None:
        stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and stream.isatty()
        self._stream = stream
        self._state = ("starting", 0, 1)
        self._bar: Progress | None = None
        self._task = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(delay, self._show) if self.enabled else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        with self._lock:
            if self._timer is None:  # already closed
                return
            columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                       TimeElapsedColumn())
            self._bar = Progress(*columns, console=Console(file=self._stream), transient=True)
            stage, done, total = self._state
            self._task = self._bar.add_task(stage, completed=done, total=total)
            self._bar.start()

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._state = (stage, done, total)
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, description=stage, completed=done, total=total)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._bar is not None:
                self._bar.stop()
                self._bar = None

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
