"""The desktop app's main window, driven through a real Qt widget tree (no engine needed for these)."""

from __future__ import annotations

import pytest
from app_window import plain_window
from engine_fixtures import engine_home
from PySide6.QtCore import Qt


@pytest.fixture
def window(qtbot, monkeypatch):
    with plain_window(qtbot, monkeypatch) as win:
        yield win


def test_generate_is_enabled_only_with_a_prompt(qtbot, window):
    assert not window.generate_panel.generate_button.isEnabled()
    qtbot.keyClicks(window.generate_panel.prompt, "   ")
    assert not window.generate_panel.generate_button.isEnabled()
    qtbot.keyClicks(window.generate_panel.prompt, "funky slap bass, 100 bpm")
    assert window.generate_panel.generate_button.isEnabled()


def test_generate_button_asks_for_a_job(qtbot, window):
    qtbot.keyClicks(window.generate_panel.prompt, "  lofi piano  ")
    with qtbot.waitSignal(window.generate_panel.generate_requested):
        qtbot.mouseClick(window.generate_panel.generate_button, Qt.MouseButton.LeftButton)
    assert window.generate_panel.values().prompt == "lofi piano"


def test_advanced_options_are_folded_away_with_sensible_defaults(qtbot, window):
    panel = window.generate_panel
    window.show()
    assert not panel.advanced.isVisible()
    from engine.speeds import DEFAULT_SCHEDULER, DEFAULT_STEPS

    assert (panel.steps.value(), panel.guidance.value(), panel.scheduler.currentText()) == (
        DEFAULT_STEPS, 7.0, DEFAULT_SCHEDULER)
    qtbot.mouseClick(panel.advanced_toggle, Qt.MouseButton.LeftButton)
    assert panel.advanced.isVisible()


def test_worker_news_already_queued_when_the_window_closes_is_dropped(qtbot, window):
    """A worker's signal queued just before shutdown() must not reach the closed library (CI once saw a
    bundle check land after the close: 'Cannot operate on a closed database' in the event loop)."""
    import threading

    worker = threading.Thread(target=window.controller.bundle_checked.emit, args=(window.settings.bundle, "", "fp32"))
    worker.start()
    worker.join()
    window.shutdown()
    qtbot.wait(100)  # the queued call is delivered here; an exception in it fails the test (pytest-qt)
    assert window.closed


def test_an_unlocked_seed_changes_each_time_a_locked_one_stays(window):
    panel = window.generate_panel
    panel.prompt.setText("x")
    seeds = {panel.values().seed for _ in range(5)}
    assert len(seeds) > 1
    panel.seed_lock.setChecked(True)
    panel.seed.setValue(1234)
    assert {panel.values().seed for _ in range(3)} == {1234}


def test_the_link_toggle_without_the_link_extra_says_why_and_turns_off(qtbot, window):
    import importlib.util

    if importlib.util.find_spec("aalink") is not None:
        pytest.skip("aalink is installed here")
    qtbot.mouseClick(window.generate_panel.link, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.generate_panel.link.isChecked(), timeout=10_000)
    assert "riffstudio[link]" in window.statusBar().currentMessage()


def test_mel_axis_ticks_are_not_linear_and_low_frequencies_sit_at_the_bottom():
    from engine.codec.params import SpectrogramParams
    from ui.app.axes import frequency_ticks, time_ticks

    ticks = dict((label, fraction) for fraction, label in frequency_ticks(SpectrogramParams()))
    assert 0 < ticks["100"] < ticks["1k"] < ticks["10k"] == pytest.approx(1.0)
    assert ticks["1k"] > 0.3  # mel: 1 kHz is far above 10% of the height
    bars = time_ticks(0, 4.0, bpm=120)
    assert [label for _, label, major in bars if major] == ["1", "2", "3"]


def test_app_command_opens_a_window_and_exits_cleanly(run_cli, monkeypatch):
    with engine_home(monkeypatch):
        result = run_cli("app", "--quit-after", "0.3", env={"QT_QPA_PLATFORM": "offscreen"}, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_app_process_never_imports_the_generation_code_or_onnx_runtime():
    import subprocess
    import sys

    code = ("import sys\nimport ui.app.window, ui.app.controller, ui.app.exports, ui.app.screenshot\n"
            "print(sorted(m for m in sys.modules if m.startswith(('engine.generation', 'onnxruntime', 'torch'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.stdout.strip() == "[]"


def test_spectrogram_click_seeks_and_the_wheel_zooms_around_the_pointer(qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QImage

    from ui.app.spectrogram_view import SpectrogramView

    view = SpectrogramView()
    qtbot.addWidget(view)
    view.resize(844, 300)
    view.show()
    image = QImage(500, 512, QImage.Format.Format_Grayscale8)
    image.fill(128)
    view.set_image(image, bpm=120)
    assert view.duration_s == pytest.approx(5.0)
    with qtbot.waitSignal(view.seek_requested) as seek:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(44 + 396, 150))  # half-way across the plot
    assert seek.args[0] == pytest.approx(2.5, abs=0.02)
    view.zoom_by(4.0, anchor_s=2.5)
    start, end = view._visible()
    assert end - start == pytest.approx(1.25) and start < 2.5 < end


def test_settings_survive_a_restart(monkeypatch):
    from dataclasses import replace

    from ui.app.settings import AppSettings, load_settings, save_settings

    with engine_home(monkeypatch) as home:
        chosen = replace(AppSettings(), export_dir=str(home / "loops"), bit_depth="16", theme="light",
                         engine_threads=2, loop_playback=False, volume=0.5)
        save_settings(chosen)
        assert load_settings() == chosen


def test_the_model_manager_runs_model_check_in_a_child_process(qtbot, fp32_bundle, tmp_path):
    from ui.app.model_dialog import ModelDialog

    dialog = ModelDialog(str(fp32_bundle), "", models=tmp_path / "models")
    qtbot.addWidget(dialog)
    qtbot.mouseClick(dialog.check, Qt.MouseButton.LeftButton)
    assert dialog.child.running  # running, and the dialog (the GUI thread) is free meanwhile
    qtbot.waitUntil(lambda: not dialog.child.running, timeout=120_000)
    assert "(exit code 0)" in dialog.log.toPlainText()


def test_a_drag_carries_only_finished_files_in_the_export_folder(qtbot, tmp_path):
    """When a loop's export failed the drag fell back to the engine's results WAV (outside the export folder,
    gone when results are cleared), and the mime data did not check that a file existed."""
    from ui.app.library import LibraryLoop
    from ui.app.library_model import LibraryModel

    results, exports = tmp_path / "results", tmp_path / "exports"
    results.mkdir()
    exports.mkdir()

    def loop(job: str, export: str) -> LibraryLoop:
        audio = results / f"{job}.wav"
        audio.write_bytes(b"RIFF")
        return LibraryLoop(job=job, prompt="bass", negative="", settings={}, seed=1, bundle_identity="",
                           folder=str(results), audio=str(audio), image="", export=export, duration_s=5.0,
                           bpm=None, bars=None, rating=0, favourite=False, created=0.0)

    exported = exports / "bass_seed1.wav"
    exported.write_bytes(b"RIFF")
    gone = exports / "moved-away.wav"
    loops = [loop("a", str(exported)), loop("b", ""), loop("c", str(gone))]
    model = LibraryModel()
    model.set_loops(loops)
    urls = [url.toLocalFile() for url in model.mimeData([model.index(row) for row in range(3)]).urls()]
    assert urls == [str(exported)]
    assert [item.drag_file for item in loops] == [str(exported), "", ""]
    assert [item.playable_file for item in loops] == [str(exported), loops[1].audio, loops[2].audio]


def test_the_result_pane_forwards_each_button_as_its_intent(qtbot):
    from ui.app.result_pane import ResultPane

    pane = ResultPane()
    qtbot.addWidget(pane)
    for button, intent in ((pane.play_button, pane.play_requested), (pane.refine, pane.refine_requested),
                           (pane.more_like_this, pane.more_like_this_requested),
                           (pane.riff_on_this, pane.riff_requested), (pane.longer, pane.longer_requested),
                           (pane.export_button, pane.export_requested), (pane.copy_button, pane.copy_requested),
                           (pane.reveal_button, pane.reveal_requested)):
        button.setEnabled(True)
        with qtbot.waitSignal(intent, timeout=1000):
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(pane.volume_changed, timeout=1000) as volume:
        pane.volume.setValue(40)
    assert volume.args == [pytest.approx(0.4)]
    with qtbot.waitSignal(pane.play_requested, timeout=1000):
        qtbot.keyClick(pane.spectrogram, Qt.Key.Key_Space)


def test_the_library_pane_asks_to_play_rate_and_delete_from_the_keyboard(qtbot):
    from ui.app.library import LibraryLoop
    from ui.app.library_pane import LibraryPane

    pane = LibraryPane()
    qtbot.addWidget(pane)
    pane.set_loops([LibraryLoop(job="a", prompt="bass", negative="", settings={}, seed=1, bundle_identity="",
                                folder="", audio="", image="", export="", duration_s=5.0, bpm=None, bars=None,
                                rating=0, favourite=False, created=0.0)])
    assert pane.library_count.text() == "1 loop"
    with qtbot.waitSignal(pane.loop_chosen, timeout=1000) as chosen:
        pane.select("a")
    assert chosen.args[0].job == "a"
    with qtbot.waitActive(pane):  # the Delete shortcut is the list's own: it needs focus in an active window
        pane.show()
        pane.activateWindow()
    pane.library_view.setFocus()
    with qtbot.waitSignal(pane.play_requested, timeout=1000):
        qtbot.keyClick(pane.library_view, Qt.Key.Key_Space)
    with qtbot.waitSignal(pane.rating_requested, timeout=1000) as rated:
        qtbot.keyClick(pane.library_view, Qt.Key.Key_4)
    assert rated.args == [4]
    with qtbot.waitSignal(pane.delete_requested, timeout=1000):
        qtbot.keyClick(pane.library_view, Qt.Key.Key_Delete)
    with qtbot.waitSignal(pane.query_changed, timeout=1000):
        pane.search.setText("ba")
    assert (pane.loop_query().text, pane.loop_query().favourites_only) == ("ba", False)


def test_the_window_holds_no_copies_of_its_panes_widgets(window):
    """The window reaches a pane's widgets only through the pane (issue #24: 22 widgets were copied onto it)."""
    from PySide6.QtWidgets import QWidget

    panes = (window.generate_panel, window.result_pane, window.library_pane)
    pane_widgets = {id(widget) for pane in panes for widget in pane.findChildren(QWidget)}
    aliases = [name for name, value in vars(window).items() if id(value) in pane_widgets]
    assert aliases == []
