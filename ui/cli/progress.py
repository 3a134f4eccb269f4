"""Progress of long jobs (getting a model, conversion, generation): a bar on the terminal, or JSON lines.

The bar is one line on stderr, redrawn in place; when stderr is not a terminal (CI logs, pipes) it prints
one line per stage instead. `JsonProgress` writes one JSON object a line on stdout for a parent process
(the desktop app's model panel): progress (with bytes, rate and time left while downloading), notes,
and the result. A download's rate and time left come from `transfer_stats`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

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

    def detailed(self, stage: str, fraction: float, detail: dict[str, Any]) -> None:
        """`stage` with a download's bytes, rate and time left when `detail` has them."""
        stats = self._transfer(detail)
        if stats is not None and self._interactive:
            stage = (f"{stage.rsplit('/', 1)[-1]} {stats['bytes'] / 1e9:.2f}/{stats['total'] / 1e9:.2f} GB "
                     f"{stats['rate'] / 1e6:.1f} MB/s {_clock(stats['eta'])} left")
        elif stats is not None:
            stage = "downloading"
        self(stage, fraction)

    def _transfer(self, detail: dict[str, Any]) -> dict[str, float] | None:
        if "bytes" not in detail:
            return None
        if not hasattr(self, "_first"):
            self._first = (time.monotonic(), detail["bytes"])
        return transfer_stats(self._first, time.monotonic(), detail["bytes"], detail["total"])

    def close(self) -> None:
        if self._interactive:
            self._stream.write("\n")
            self._stream.flush()


class JsonProgress(TerminalProgress):
    """Progress as JSON lines on stdout: {"event": "progress" | "note" | "done", ...}."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stdout)
        self._last = (None, -1.0)

    def __call__(self, stage: str, fraction: float) -> None:
        self.detailed(stage, fraction, {})

    def detailed(self, stage: str, fraction: float, detail: dict[str, Any]) -> None:
        fraction = round(min(max(fraction, 0.0), 1.0), 4)
        if (stage, fraction) == self._last:
            return
        self._last = (stage, fraction)
        self._write({"event": "progress", "stage": stage, "fraction": fraction, **(self._transfer(detail) or {})})

    def note(self, message: str) -> None:
        self._write({"event": "note", "message": message})

    def result(self, data: dict[str, Any]) -> None:
        self._write({"event": "done", **data})

    def close(self) -> None:
        pass

    def _write(self, data: dict[str, Any]) -> None:
        self._stream.write(json.dumps(data) + "\n")
        self._stream.flush()


def transfer_stats(first: tuple[float, int], now: float, done: int, total: int) -> dict[str, float]:
    """Bytes, rate (bytes/s since `first` = (time, bytes) of this run's first report) and seconds left."""
    elapsed = max(now - first[0], 1e-3)
    rate = max(done - first[1], 0) / elapsed
    return {"bytes": done, "total": total, "rate": round(rate, 1),
            "eta": round((total - done) / rate, 1) if rate > 0 else -1.0}


def _clock(seconds: float) -> str:
    if seconds < 0:
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"
