"""The app's Key box does what `--key` does (#26: everything the CLI can do to a loop, the app can): a loop on
the bar grid is moved into the session's key and named with it; "as made" leaves it alone. Through the real
widget tree (the queued jobs recorded as the controller would take them) and the app's one export call on an
engine-shaped result (a rendered B minor cadence)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from app_window import recording_window
from PySide6.QtCore import Qt
from test_app_export_key import engine_result
from test_plugin_key import cadence

from ui.app.exports import export_loop


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with recording_window(qtbot, monkeypatch, tmp_path) as win:
        yield win


def test_the_key_box_goes_with_every_job_on_the_grid_and_back_after_a_restart(qtbot, window):
    panel = window.generate_panel
    assert panel.key.currentText() == "as made" and panel.session_key() is None
    panel.prompt.setText("warm keys")
    qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    assert window.submitted[-1].key is None
    panel.key.setCurrentText("A minor")
    qtbot.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
    assert window.submitted[-1].key == "Amin"
    window.controller.job_queued.emit("job-1", window.submitted[-1])  # the engine took it
    assert window.library.intent("job-1").extra == {"key": "Amin"}  # followed again after a restart, in key
    panel.length_mode.setCurrentText("seconds")
    assert not panel.key.isEnabled()  # no grid, no key


def test_a_loop_exported_in_the_session_key_is_moved_into_it_and_named_with_it(tmp_path):
    request = engine_result(tmp_path / "job", cadence(11, True))  # B minor
    out = export_loop(replace(request, key="Amin"))
    assert out.name == "dusty-keys_100bpm_1bar_Amin_seed7.wav"
    fit = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["fit"]
    assert fit["transposed"] == {"detected": "Bmin", "target": "Amin", "semitones": -2}


def test_the_status_says_what_the_key_box_did(tmp_path):
    """The Key box's result is said as the CLI's `wrote` line says it: moved, or no key found (noise)."""
    import numpy as np

    from ui.app.exports import key_words

    request = engine_result(tmp_path / "b-minor", cadence(11, True))
    assert key_words(export_loop(replace(request, key="Amin"))) == "transposed -2 semitones from Bmin (Amin asked)"
    noise = np.random.default_rng(3).standard_normal(5 * 44100).astype(np.float32) * 0.1
    request = engine_result(tmp_path / "noise", noise)
    assert key_words(export_loop(replace(request, key="Amin"))) == "no key found: not transposed (Amin asked)"
    assert key_words(export_loop(request)) == ""  # no key asked: nothing to say


def test_a_finished_loop_in_the_session_key_says_so_in_the_status(qtbot, window, tmp_path):
    from library_loops import finish

    exported = export_loop(replace(engine_result(tmp_path / "b-minor", cadence(11, True)), key="Amin"))
    window.generate_panel.prompt.setText("warm keys")
    window.generate_panel.key.setCurrentText("A minor")
    qtbot.mouseClick(window.generate_panel.generate_button, Qt.MouseButton.LeftButton)
    finish(window, window.submitted[-1], tmp_path, export=str(exported))
    assert window.statusBar().currentMessage() == (f"Ready to drag: {exported.name} · transposed -2 semitones "
                                                   "from Bmin (Amin asked)")


def test_the_session_key_is_kept_for_the_next_start(qtbot, monkeypatch):
    from engine_fixtures import engine_home

    from ui.app.settings import AppSettings, load_settings
    from ui.app.window import MainWindow

    with engine_home(monkeypatch):
        first = MainWindow(AppSettings())
        qtbot.addWidget(first)
        first.generate_panel.key.setCurrentText("F# major")
        first.close()
        again = MainWindow(load_settings())
        qtbot.addWidget(again)
        try:
            assert again.generate_panel.session_key() == "F#maj"
        finally:
            again.shutdown()
