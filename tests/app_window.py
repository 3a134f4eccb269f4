"""A main window on its real widget tree (offscreen) whose controller's `submit` and `export` are recorded, so
no engine starts: what a test checks is the request the window hands the controller."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from engine_fixtures import engine_home


@contextlib.contextmanager
def plain_window(qtbot, monkeypatch, **settings) -> Iterator:
    """The main window with `settings` (AppSettings fields) in a private home, shut down after."""
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    with engine_home(monkeypatch):
        win = MainWindow(AppSettings(**settings))
        qtbot.addWidget(win)
        try:
            yield win
        finally:
            win.shutdown()


@contextlib.contextmanager
def recording_window(qtbot, monkeypatch, tmp_path: Path, **settings) -> Iterator:
    """The window with a bundle set (not checked) and `window.submitted` / `window.exports` recording."""
    with plain_window(qtbot, monkeypatch, export_dir=str(tmp_path / "exports"), **settings) as win:
        win.set_bundle(str(tmp_path / "bundle"), check=False)  # no bundle check, no model load: no engine
        win.submitted, win.exports = [], []
        monkeypatch.setattr(win.controller, "submit", win.submitted.append)
        monkeypatch.setattr(win.controller, "export", lambda request, job: win.exports.append(request))
        yield win


@contextlib.contextmanager
def event_loop_gaps(interval_ms: int) -> Iterator[list[float]]:
    """The seconds between the ticks of a timer on the GUI thread while the block runs: the longest is how long
    the window stopped answering (a redraw, a click) at worst."""
    import time

    from PySide6.QtCore import QTimer

    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(tick)
    timer.start()
    try:
        yield gaps
    finally:
        timer.stop()
