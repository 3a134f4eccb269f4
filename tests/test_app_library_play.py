"""A click on a library row plays that loop from the start, the arrow keys play the row they move to, and Space
stops and plays again (#26: "a click does not play"). The real window, list and Player; only the audio device
is faked (this machine has none): sounddevice's OutputStream, as in tests/test_audio_devices.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
from app_window import plain_window
from library_loops import finish, write_result
from PySide6.QtCore import Qt


class FakeStream:
    """The audio device this machine lacks: records each stream opened (and whether it was closed)."""

    opened: ClassVar[list[FakeStream]] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.closed = kwargs, False
        FakeStream.opened.append(self)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def device(monkeypatch):
    sounddevice = pytest.importorskip("sounddevice", reason="needs PortAudio (libportaudio2)")
    FakeStream.opened = []
    monkeypatch.setattr(sounddevice, "query_devices", lambda *a, **k: [])
    monkeypatch.setattr(sounddevice, "query_hostapis", lambda *a, **k: [])
    monkeypatch.setattr(sounddevice, "OutputStream", FakeStream)
    return FakeStream.opened


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path, device):
    with plain_window(qtbot, monkeypatch, export_dir=str(tmp_path / "exports")) as win:
        for created, job in enumerate(("older", "newer")):
            paths = write_result(tmp_path / job, {"prompt": f"{job} loop", "seed": created}, seconds=1.0)
            win.library.add_result(job, paths, json.loads(Path(paths["sidecar"]).read_text()), created=created)
        win.refresh_library()
        win.resize(1280, 720)
        win.show()
        qtbot.waitExposed(win)
        yield win


def click_row(qtbot, window, job: str) -> None:
    view = window.library_pane.library_view
    index = window.library_pane.library_model.index(window.library_pane.library_model.row_of(job))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(index).center())


def playing(window, job: str) -> bool:
    player = window.player
    return player.playing and player.path == window.library.get(job).playable_file


def test_a_row_the_window_selects_itself_plays_nothing(qtbot, window, device, tmp_path):
    from ui.app.controller import JobRequest

    job = finish(window, JobRequest(settings={"prompt": "just made"}, bundle="b"), tmp_path)
    window._select_in_library("older")  # as at start: the newest loop shown, the row made current
    qtbot.wait(200)
    assert window.library_pane.loops[0].job == job and window.current.job == "older"
    assert device == [] and not window.player.playing


def test_a_click_plays_the_row_from_the_start_and_a_click_again_restarts_it(qtbot, window, device):
    click_row(qtbot, window, "older")
    qtbot.waitUntil(lambda: playing(window, "older"), timeout=5000)
    assert window.current.job == "older" and window.player.position_s() == 0.0
    window.player.seek(0.6)
    click_row(qtbot, window, "older")
    qtbot.waitUntil(lambda: len(device) == 2 and window.player.playing, timeout=5000)
    assert window.player.position_s() == 0.0 and device[0].closed  # the first stream let go


def test_arrow_keys_play_the_row_they_move_to(qtbot, window, device):
    click_row(qtbot, window, "newer")
    qtbot.waitUntil(lambda: playing(window, "newer"), timeout=5000)
    qtbot.keyClick(window.library_pane.library_view, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: playing(window, "older"), timeout=5000)
    assert window.current.job == "older" and window.result_pane.result_title.text() == "older loop"


def test_space_stops_and_plays_again(qtbot, window, device):
    view = window.library_pane.library_view
    click_row(qtbot, window, "newer")
    qtbot.waitUntil(lambda: playing(window, "newer"), timeout=5000)
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert not window.player.playing and window.result_pane.play_button.text() == "▶ Play"
    qtbot.keyClick(view, Qt.Key.Key_Space)
    # The audio thread opens the stream, then tells the window (a queued signal): wait for both.
    qtbot.waitUntil(lambda: playing(window, "newer") and window.result_pane.play_button.text() == "■ Stop",
                    timeout=5000)
    assert window.player.position_s() == 0.0
