"""Every job the window asks for carries the app's run settings (bundle, provider, the NPU mode).

The window is driven through its real widget tree offscreen; the controller's `submit` is replaced by a
recorder, so no engine starts: what is checked is the JobRequest the window hands the controller."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_fixtures import engine_home
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

NPU_MODE = "sustained_high_performance"  # not the default ("burst"): a dropped mode shows


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    with engine_home(monkeypatch):
        win = MainWindow(AppSettings(provider="qnn", npu_mode=NPU_MODE, export_dir=str(tmp_path / "exports")))
        qtbot.addWidget(win)
        win.set_bundle(str(tmp_path / "bundle"), check=False)  # no bundle check, no model load: no engine
        win.submitted = []
        monkeypatch.setattr(win.controller, "submit", win.submitted.append)
        yield win
        win.shutdown()


@pytest.fixture
def draft_loop(tmp_path):
    """A finished draft loop on disk (its image and audio), as the library holds it."""
    from PySide6.QtGui import QImage

    from engine.speeds import SPEED_PRESETS
    from ui.app.library import LibraryLoop

    folder = tmp_path / "results" / "job1"
    folder.mkdir(parents=True)
    image = QImage(224, 512, QImage.Format.Format_Grayscale8)
    image.fill(100)
    image.save(str(folder / "loop.png"))
    (folder / "loop.wav").write_bytes(b"RIFF")
    settings = {"prompt": "dusty drums", "negative_prompt": "", "seed": 42, "guidance": 7.0, "width": 224,
                **SPEED_PRESETS["draft"]}
    return LibraryLoop(job="job1", prompt="dusty drums", negative="", settings=settings, seed=42,
                       bundle_identity="", folder=str(folder), audio=str(folder / "loop.wav"),
                       image=str(folder / "loop.png"), export="", duration_s=1.2, bpm=200.0, bars=1.0, rating=0,
                       favourite=False, created=0.0)


def assert_runs_as_set(window, request) -> None:
    assert request.bundle == window.settings.bundle
    assert request.provider == "qnn"
    assert request.session_options == {"htp_performance_mode": NPU_MODE}


def test_generate_and_draft_carry_the_npu_mode(qtbot, window):
    panel = window.generate_panel
    qtbot.keyClicks(panel.prompt, "funky slap bass")
    qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
    assert [request.label for request in window.submitted] == ["funky slap bass", "draft: funky slap bass"]
    for request in window.submitted:
        assert_runs_as_set(window, request)


@pytest.mark.parametrize("button, label", [("refine", "refined: dusty drums"),
                                           ("more_like_this", "more like: dusty drums"),
                                           ("longer", "longer: dusty drums"),
                                           ("riff_on_this", "riff: dusty drums")])
def test_every_action_on_a_loop_carries_the_npu_mode(qtbot, window, draft_loop, button, label):
    """Refine, More like this, Longer and Riff once dropped the NPU mode: only Generate passed it."""
    window._show_loop(draft_loop)
    qtbot.mouseClick(getattr(window.result_pane, button), Qt.MouseButton.LeftButton)
    [request] = window.submitted
    assert request.label == label
    assert_runs_as_set(window, request)


def test_a_dropped_file_riffs_with_the_npu_mode(qtbot, window, tmp_path):
    wav = tmp_path / "kick.wav"
    wav.write_bytes(b"RIFF")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(wav))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    [request] = window.submitted
    assert request.label == "riff on kick.wav"
    assert request.settings["init_audio"] == str(Path(wav).resolve())
    assert_runs_as_set(window, request)


def test_on_the_cpu_no_npu_options_are_sent(qtbot, window, draft_loop):
    from dataclasses import replace

    window.apply_settings(replace(window.settings, provider="cpu"))
    window._show_loop(draft_loop)
    qtbot.mouseClick(window.result_pane.more_like_this, Qt.MouseButton.LeftButton)
    [request] = window.submitted
    assert (request.provider, request.session_options) == ("cpu", {})


def test_longer_doubles_the_bars_on_a_grid_and_the_width_in_seconds(draft_loop):
    from dataclasses import replace

    from ui.app.exports import paint_width_for
    from ui.app.job_requests import longer_request
    from ui.app.settings import AppSettings

    app = AppSettings(bundle="b", provider="qnn", npu_mode=NPU_MODE)
    on_grid = longer_request(app, draft_loop)
    assert (on_grid.bars, on_grid.settings["width"]) == (2.0, paint_width_for(200.0, 2.0))
    in_seconds = longer_request(app, replace(draft_loop, bpm=None, bars=None))
    assert (in_seconds.bars, in_seconds.settings["width"]) == (None, 448)
    assert {request.session_options["htp_performance_mode"] for request in (on_grid, in_seconds)} == {NPU_MODE}


def test_refine_keeps_the_seed_and_runs_the_panels_steps_at_full_quality(window, draft_loop):
    from engine.speeds import SPEED_PRESETS
    from ui.app.job_requests import refined_request

    values = window.generate_panel.values()
    request = refined_request(window.settings, draft_loop, values)
    assert request.settings["seed"] == 42
    assert request.settings["quality"] == SPEED_PRESETS["full"]["quality"]
    assert request.settings["steps"] == values.steps
