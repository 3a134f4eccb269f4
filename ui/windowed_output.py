"""A windowed program's output, kept: the frozen `riffstudio.exe` (PyInstaller's windowed build) has no
console, so Python gives it no stdout or stderr (None), and a traceback the app prints for a bug, or a
warning, vanished. Both go to app.log beside the engine's log instead, started afresh past 1 MB."""

from __future__ import annotations

import sys
from pathlib import Path

MAX_LOG_BYTES = 1 << 20


def keep_windowed_output(path: Path | None = None) -> Path | None:
    """Point a missing sys.stdout / sys.stderr at the app log; returns its path, or None when both exist."""
    if sys.stdout is not None and sys.stderr is not None:
        return None
    if path is None:
        from engine.process.paths import app_log_path

        path = app_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists() or path.stat().st_size > MAX_LOG_BYTES
    stream = open(path, "w" if fresh else "a", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = stream
    if sys.stderr is None:
        sys.stderr = stream
    return path
