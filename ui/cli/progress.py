"""A progress bar on the terminal for long jobs (conversion, generation): one line, redrawn in place.

When stderr is not a terminal (CI logs, pipes) it prints one line per stage instead of redrawing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30


class TerminalProgress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._interactive = self._stream.isatty()
        self._stage: str | None = None
        self._start = time.monotonic()

    def __call__(self, stage: str, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.monotonic() - self._start
        if self._interactive:
            filled = round(BAR_WIDTH * fraction)
            bar = "#" * filled + " " * (BAR_WIDTH - filled)
            self._stream.write(f"\r[{bar}] {fraction:4.0%} {elapsed:5.0f}s  {stage[:40]:<40}")
            self._stream.flush()
        elif stage != self._stage:
            self._stream.write(f"{fraction:4.0%} {elapsed:5.0f}s  {stage}\n")
            self._stream.flush()
        self._stage = stage

    def close(self) -> None:
        if self._interactive:
            self._stream.write("\n")
            self._stream.flush()
