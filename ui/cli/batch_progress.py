"""`riffstudio batch --json`: the run as JSON lines on stdout for a parent process (the app's batch window), and
a `stop` line on stdin that stops it at once.

One JSON object a line (`eta`: seconds left at this run's pace, -1 while not known):

    {"event": "planned", "total": 6, "complete": 2, "out": "/music/pack"}
    {"event": "item", "number": 3, "total": 6, "label": "funk bass (seed 1)", "folder": "funk-bass"}
    {"event": "progress", "number": 3, "total": 6, "item_fraction": 0.5, "fraction": 0.42, "eta": 31.5}
    {"event": "ended", "number": 3, "total": 6, "state": "done", "error": ""}
    {"event": "note", "message": "removed 1 unfinished temporary file(s) from an interrupted run"}
    {"event": "done", "done": 4, "skipped": 2, "failed": 0, "remaining": 0, "interrupted": false, ...}

A bad preset file writes no line: the one-line error on stderr and the exit code, as without --json.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

STOP = "stop"  # the line a parent writes on stdin to stop the batch now


def seconds_left(elapsed: float, worth_done: float, worth_left: float) -> float:
    """Seconds left at this run's pace: `elapsed` seconds rendered `worth_done` items' worth (whole items and
    the current one's fraction), `worth_left` to go; -1 until a tenth of an item is done (too early to say)."""
    if worth_done < 0.1:
        return -1.0
    return round(elapsed / worth_done * max(worth_left, 0.0), 1)


class BatchJsonLines:
    """The batch's watcher (plugin/batch.py BatchWatch), its item progress and its notes, as JSON lines."""

    def __init__(self, out: Path, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self._stream = stream or sys.stdout
        self._clock = clock
        self.total = 0
        self.finished = 0  # items complete before this run, and those ended in it
        self.rendered = 0  # items ended in this run
        self.number = 0
        self._began: float | None = None  # when this run's first item started
        self._last: tuple[int, float] | None = None

    def planned(self, total: int, complete: int) -> None:
        self.total, self.finished = total, complete
        self._write({"event": "planned", "total": total, "complete": complete, "out": str(self.out)})

    def started(self, number: int, item) -> None:
        self.number = number
        if self._began is None:
            self._began = self._clock()
        self._write({"event": "item", "number": number, "total": self.total, "label": item.label,
                     "folder": item.folder})

    def __call__(self, stage: str, fraction: float) -> None:
        """The current item's progress (run_batch's item_progress)."""
        fraction = round(min(max(fraction, 0.0), 1.0), 3)
        if (self.number, fraction) == self._last:
            return
        self._last = (self.number, fraction)
        elapsed = self._clock() - (self._began if self._began is not None else self._clock())
        eta = seconds_left(elapsed, self.rendered + fraction, self.total - self.finished - fraction)
        overall = (self.finished + fraction) / self.total if self.total else 0.0
        self._write({"event": "progress", "number": self.number, "total": self.total, "stage": stage,
                     "item_fraction": fraction, "fraction": round(overall, 4), "eta": eta})

    def ended(self, item, state: str, error: str) -> None:
        self.finished += 1
        self.rendered += 1
        self._write({"event": "ended", "number": self.number, "total": self.total, "label": item.label,
                     "state": state, "error": error})

    def note(self, message: str) -> None:
        self._write({"event": "note", "message": message.strip()})

    def done(self, result) -> None:
        self._write({"event": "done", "done": result.done, "skipped": result.skipped, "failed": result.failed,
                     "remaining": result.remaining, "interrupted": result.interrupted, "out": str(self.out),
                     "summary": str(result.summary)})

    def close(self) -> None:
        pass

    def _write(self, data: dict[str, Any]) -> None:
        self._stream.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._stream.flush()


def stop_when_asked(stop: Callable[[], None], fd: int | None = None) -> threading.Thread | None:
    """A daemon thread calling `stop()` once a `stop` line arrives on stdin (the app's Stop). It reads the raw
    file descriptor: a daemon thread blocked in sys.stdin's buffered reader holds its lock, and Python's exit,
    closing stdin, would then abort. The end of stdin stops nothing (a batch run with stdin closed carries on)."""
    if fd is None:
        if sys.stdin is None:
            return None
        try:
            fd = sys.stdin.fileno()
        except (OSError, ValueError):
            return None

    def read() -> None:
        pending = b""
        while True:
            try:
                data = os.read(fd, 1024)
            except OSError:
                return
            if not data:
                return
            *lines, pending = (pending + data).split(b"\n")
            if any(line.strip() == STOP.encode() for line in lines):
                stop()
                return

    thread = threading.Thread(target=read, name="batch-stop", daemon=True)
    thread.start()
    return thread
