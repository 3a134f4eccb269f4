"""The desktop app end to end: real widgets (offscreen), a real engine process on the tiny bundle, every
XDG folder in a private home (tests/engine_fixtures.py), nothing of ours mocked."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import signal
import struct
import time
from pathlib import Path

import pytest
from app_window import event_loop_gaps
from conftest import DATA
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

TIMEOUT_MS = 120_000


def open_window(qtbot, bundle: Path | str, home: Path):
    from ui.app.settings import AppSettings
    from ui.app.theme import apply_theme
    from ui.app.window import MainWindow

    apply_theme(QApplication.instance())
    window = MainWindow(AppSettings(bundle=str(bundle), export_dir=str(home / "exports")))
    qtbot.addWidget(window)
    window.show()
    return window


def close_window(window) -> None:
    window.shutdown()
    window.hide()


def quick_settings(window, *, steps: int = 4, bars: bool = True) -> None:
    """The shortest loops the tiny model makes: 1 bar at 200 bpm (224 px), 4 steps, draft."""
    panel = window.generate_panel
    panel.steps.setValue(steps)
    panel.scheduler.setCurrentText("euler")
    panel.quality.setCurrentText("draft")
    if bars:
        panel.length_mode.setCurrentText("bars")
        panel.bars.setValue(1)
        panel.bpm.setValue(200)
    else:
        panel.length_mode.setCurrentText("seconds")
        panel.seconds.setValue(0.7)


def wait_for_loops(qtbot, window, count: int) -> None:
    qtbot.waitUntil(lambda: len(window.library_pane.loops) >= count, timeout=TIMEOUT_MS)


def complete_wav(path: str) -> bytes:
    """The file's bytes, checked to be a whole RIFF/WAVE (the RIFF size matches the file)."""
    data = Path(path).read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data)
    return data


@pytest.mark.slow
def test_prompt_ctrl_enter_runs_a_job_with_progress_and_previews_into_view_and_library(qtbot, home, fp32_bundle):
    window = open_window(qtbot, fp32_bundle, home)
    quick_settings(window)
    qtbot.keyClicks(window.generate_panel.prompt, "funky slap bass")
    qtbot.keyClick(window.generate_panel.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(window.queue.rows), timeout=TIMEOUT_MS)
    row = next(iter(window.queue.rows.values()))
    wait_for_loops(qtbot, window, 1)
    assert len(window.queue.rows) == 1  # one key press, one job
    assert row.state == "done" and row.progress.value() == 1000
    assert row.previews_seen >= 1  # a live latent preview per step
    loop = window.current
    assert loop is not None and loop.prompt == "funky slap bass" and loop.bpm == 200 and loop.bars == 1
    assert not window.result_pane.spectrogram.image.isNull() and not window.result_pane.spectrogram.is_preview
    assert window.result_pane.spectrogram.image.height() == 512
    assert "acid" in complete_wav(loop.drag_file)[:4096].decode("latin-1")
    assert Path(loop.drag_file).parent == home / "exports"
    # The model manager's line: which provider runs, and why (the engine's choose_provider sentence).
    qtbot.waitUntil(lambda: "runs on the CPU" in window.model_label.text(), timeout=TIMEOUT_MS)
    assert window.provider_line.startswith("Model ready on the CPU") and "(" in window.provider_line

    # "More like this": same settings, a new seed.
    qtbot.mouseClick(window.result_pane.more_like_this, Qt.MouseButton.LeftButton)
    wait_for_loops(qtbot, window, 2)
    qtbot.waitUntil(lambda: window.current is not None and window.current.job != loop.job, timeout=TIMEOUT_MS)
    other = window.current
    assert other.seed != loop.seed
    same = {k: v for k, v in loop.settings.items() if k != "seed"}
    assert {k: v for k, v in other.settings.items() if k != "seed"} == same
    assert (other.bpm, other.bars) == (loop.bpm, loop.bars)
    jobs = {loop.job, other.job}
    close_window(window)

    # Restart the app: the loops are still there.
    again = open_window(qtbot, fp32_bundle, home)
    assert {row.job for row in again.library_pane.loops} == jobs
    assert again.generate_panel.prompt_history.stringList() == ["funky slap bass"]
    close_window(again)


def test_draft_gives_a_quick_preview_and_refine_remakes_it_at_full_settings_with_the_same_seed(
        qtbot, home, fp32_bundle):
    from engine.speeds import SPEED_PRESETS, speed_of

    window = open_window(qtbot, fp32_bundle, home)
    quick_settings(window, steps=5)
    qtbot.keyClicks(window.generate_panel.prompt, "lofi piano")
    qtbot.mouseClick(window.generate_panel.draft_button, Qt.MouseButton.LeftButton)
    wait_for_loops(qtbot, window, 1)
    draft = window.current
    assert speed_of(draft.settings) == "draft"
    assert tuple(draft.settings["guidance_interval"]) == SPEED_PRESETS["draft"]["guidance_interval"]
    assert window.result_pane.refine.isEnabled() and "draft" in window.result_pane.result_meta.text()

    qtbot.mouseClick(window.result_pane.refine, Qt.MouseButton.LeftButton)
    wait_for_loops(qtbot, window, 2)
    qtbot.waitUntil(lambda: window.current is not None and window.current.job != draft.job, timeout=TIMEOUT_MS)
    refined = window.current
    assert refined.seed == draft.seed and refined.prompt == draft.prompt
    assert (refined.settings["steps"], refined.settings["quality"]) == (5, "standard")
    assert tuple(refined.settings["guidance_interval"]) == SPEED_PRESETS["full"]["guidance_interval"]
    assert refined.settings["width"] == draft.settings["width"]
    assert not window.result_pane.refine.isEnabled()  # a full loop has nothing to refine
    close_window(window)


@pytest.mark.slow
def test_drag_source_mime_data_holds_only_file_urls_of_complete_wavs(qtbot, home, fp32_bundle):
    window = open_window(qtbot, fp32_bundle, home)
    quick_settings(window)
    for prompt in ("lofi piano", "techno kick"):
        window.generate_panel.prompt.setText(prompt)
        window.generate_now()
    wait_for_loops(qtbot, window, 2)
    window.library_pane.library_view.selectAll()
    indexes = window.library_pane.library_view.selectionModel().selectedIndexes()
    mime = window.library_pane.library_model.mimeData(indexes)
    # (Qt 6's hasText() is true for URLs too: what matters is that no text/plain format is offered.)
    assert mime.hasUrls() and mime.formats() == ["text/uri-list"] and not mime.hasFormat("text/plain")
    urls = mime.urls()
    assert len(urls) == 2 and all(url.isLocalFile() for url in urls)
    for url in urls:
        data = complete_wav(url.toLocalFile())
        assert b"acid" in data and b"smpl" in data
        assert Path(url.toLocalFile()).parent == home / "exports"
    assert window.library_pane.library_model.supportedDragActions() == Qt.DropAction.CopyAction
    # The spectrogram's drag carries the same kind of data.
    from ui.app.drag import file_mime_data

    single = file_mime_data(window.drag_paths()[:1])
    assert single.formats() == ["text/uri-list"]

    # "Same seed, longer": the same seed over twice the bars.
    base = window.current
    qtbot.mouseClick(window.result_pane.longer, Qt.MouseButton.LeftButton)
    wait_for_loops(qtbot, window, 3)
    longer = window.library_pane.loops[0]
    assert (longer.seed, longer.bars, longer.prompt) == (base.seed, base.bars * 2, base.prompt)
    assert longer.settings["width"] > base.settings["width"] and longer.duration_s > base.duration_s

    # Search (FTS5, prefixes) and Del with its confirmation: the loop and its files go.
    other = "lofi piano" if base.prompt == "techno kick" else "techno kick"
    window.library_pane.search.setText(other.split()[0][:-1])  # a prefix of a word
    assert [loop.prompt for loop in window.library_pane.loops] == [other]
    window.library_pane.library_view.setCurrentIndex(window.library_pane.library_model.index(0))
    doomed = window.current
    answer = []

    def say_yes() -> None:
        from PySide6.QtWidgets import QMessageBox

        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            answer.append(box.text())
            box.button(QMessageBox.StandardButton.Yes).click()
        else:
            QTimer.singleShot(50, say_yes)

    QTimer.singleShot(50, say_yes)
    window.library_pane.library_view.setFocus()
    qtbot.keyClick(window.library_pane.library_view, Qt.Key.Key_Delete)
    assert answer and "Delete 1 loop" in answer[0]
    window.library_pane.search.clear()
    assert doomed.job not in {loop.job for loop in window.library_pane.loops}
    assert not Path(doomed.folder).exists() and not Path(doomed.export).exists()
    close_window(window)


def test_dropping_a_wav_on_the_window_queues_a_riff_on_this_job(qtbot, home, fp32_bundle):
    window = open_window(qtbot, fp32_bundle, home)
    quick_settings(window, bars=False)
    window.generate_panel.prompt.setText("drum riff")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(DATA / "audio" / "drums.wav"))])
    event = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert event.isAccepted()
    qtbot.waitUntil(lambda: any(r.title.text() == "riff on drums.wav" for r in window.queue.rows.values()),
                    timeout=TIMEOUT_MS)
    wait_for_loops(qtbot, window, 1)
    loop = window.library_pane.loops[0]
    assert loop.settings["init_audio"] == str((DATA / "audio" / "drums.wav").resolve())
    assert loop.settings["strength"] == pytest.approx(0.75)
    close_window(window)


@pytest.mark.slow
def test_engine_killed_mid_job_shows_the_banner_and_the_job_completes_without_blocking(qtbot, home, fp32_bundle):
    window = open_window(qtbot, fp32_bundle, home)
    quick_settings(window, steps=30, bars=False)
    with event_loop_gaps(20) as gaps:
        window.generate_panel.prompt.setText("survivor bass")
        window.generate_now()
        qtbot.waitUntil(lambda: any(r.progress.value() > 0 for r in window.queue.rows.values()),
                        timeout=TIMEOUT_MS)
        pid = window.controller.client().pid
        os.kill(pid, signal.SIGKILL)
        qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=TIMEOUT_MS)
        assert "restarted" in window.banner_label.text() and "SIGKILL" in window.banner_label.text()
        wait_for_loops(qtbot, window, 1)
    assert window.library_pane.loops[0].prompt == "survivor bass"
    assert window.controller.client().pid != pid
    assert max(gaps) < 0.25, f"the GUI thread stalled for {max(gaps):.3f} s"
    close_window(window)


def test_cancel_in_the_queue_stops_a_running_job(qtbot, home, fp32_bundle):
    window = open_window(qtbot, fp32_bundle, home)
    quick_settings(window, steps=60, bars=False)
    window.generate_panel.prompt.setText("never mind")
    window.generate_now()
    qtbot.waitUntil(lambda: any(r.progress.value() > 0 for r in window.queue.rows.values()), timeout=TIMEOUT_MS)
    row = next(iter(window.queue.rows.values()))
    qtbot.mouseClick(row.cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.state == "cancelled", timeout=TIMEOUT_MS)
    assert window.library_pane.loops == [] and not row.cancel.isEnabled()
    close_window(window)


def test_play_without_an_audio_device_says_no_audio_output_once(qtbot, home, tmp_path):
    from ui.app.playback import NO_AUDIO, Player

    try:
        import sounddevice

        sounddevice.query_devices(kind="output")
        pytest.skip("this machine has an audio output")
    except Exception:
        pass
    player = Player()
    messages = []
    player.unavailable.connect(messages.append)
    wav = str(DATA / "audio" / "drums.wav")
    player.play(wav)
    qtbot.waitUntil(lambda: bool(messages), timeout=10_000)
    player.play(wav)
    qtbot.wait(300)
    assert messages == [NO_AUDIO] and not player.playing


def test_no_bundle_shows_the_empty_state_not_an_error(qtbot, home):
    window = open_window(qtbot, "", home)
    assert window.empty_state.isVisible() and "model bundle" in window.empty_state.text.text()
    assert not window.model_message.isVisible()
    window.generate_panel.prompt.setText("anything")
    window.generate_now()
    assert "choose a model bundle" in window.statusBar().currentMessage()
    assert window.controller._client is None  # no engine started for nothing
    close_window(window)


def test_a_broken_bundle_gives_one_line_in_the_window(qtbot, home, tmp_path):
    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ not json")
    window = open_window(qtbot, broken, home)
    qtbot.waitUntil(lambda: window.model_message.isVisible(), timeout=10_000)
    text = window.model_message.text()
    assert text.startswith("riffstudio: ") and "\n" not in text and "Traceback" not in text
    assert not window.empty_state.isVisible()
    close_window(window)


def engine_loop_while_the_app_is_closed(bundle: Path, prompt: str) -> str:
    """A loop made through the engine by another client (the CLI, a batch) while no window is open."""
    from engine.client import EngineClient
    from engine.process import protocol as p

    settings = {"prompt": prompt, "steps": 4, "seed": 3, "width": 64, "quality": "draft", "scheduler": "euler"}
    with EngineClient(name="test") as client:
        done = client.submit(settings, bundle).wait(timeout=120)
    assert isinstance(done, p.Done)
    return done.job


def test_a_loop_the_engine_finished_while_the_app_was_closed_appears_at_start(qtbot, home, fp32_bundle):
    job = engine_loop_while_the_app_is_closed(fp32_bundle, "night shift pad")
    window = open_window(qtbot, fp32_bundle, home)
    assert [loop.job for loop in window.library_pane.loops] == [job]
    qtbot.waitUntil(lambda: bool(window.library.get(job).export), timeout=30_000)  # exported for dragging
    complete_wav(window.library.get(job).export)
    # The model's own status line first (it would replace the one below when it comes in later).
    qtbot.waitUntil(lambda: "runs on the" in window.model_label.text(), timeout=60_000)
    # Play with no audio device on this machine: one line in the status bar, nothing raised.
    window.toggle_play()
    qtbot.waitUntil(lambda: window.audio_message_shown, timeout=10_000)
    from ui.app.playback import NO_AUDIO

    assert window.statusBar().currentMessage() == NO_AUDIO and "Settings" in NO_AUDIO  # what to check, too
    close_window(window)


@pytest.mark.slow
def test_a_job_still_running_when_the_app_closes_is_followed_at_the_next_start(qtbot, home, fp32_bundle):
    window = open_window(qtbot, fp32_bundle, home)
    quick_settings(window, steps=40, bars=False)
    window.generate_panel.prompt.setText("left running")
    window.generate_now()
    qtbot.waitUntil(lambda: bool(window.queue.rows), timeout=TIMEOUT_MS)
    job = next(iter(window.queue.rows))
    close_window(window)
    again = open_window(qtbot, fp32_bundle, home)
    wait_for_loops(qtbot, again, 1)
    assert again.library_pane.loops[0].job == job and again.library_pane.loops[0].prompt == "left running"
    close_window(again)


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise AssertionError("no free X display number")


def _lines(process, into: list[str]) -> None:
    for line in process.stdout:
        into.append(line.strip())


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool") and ctypes.util.find_library("xcb-cursor")),
                    reason="needs xvfb, xdotool and libxcb-cursor0 (Qt's xcb plugin since 6.5; .ci/run installs them)")
def test_a_real_drag_across_processes_delivers_the_file_url_over_xdnd(home, fp32_bundle):
    import subprocess
    import sys
    import threading

    from conftest import REPO

    engine_loop_while_the_app_is_closed(fp32_bundle, "xdnd bass")
    number = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "2600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peers = []
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            assert time.monotonic() < deadline and xvfb.poll() is None, "Xvfb did not start"
            time.sleep(0.05)
        env = {**os.environ, "DISPLAY": f":{number}", "QT_QPA_PLATFORM": "xcb"}
        script = str(REPO / "tests" / "xdnd_peers.py")
        outputs: list[list[str]] = []
        for args in (["target", "2100", "150"], ["source", str(fp32_bundle), str(home / "exports")]):
            process = subprocess.Popen([sys.executable, script, *args], cwd=REPO, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            lines: list[str] = []
            threading.Thread(target=_lines, args=(process, lines), daemon=True).start()
            peers.append(process)
            outputs.append(lines)
        target_lines, source_lines = outputs

        def line(lines: list[str], prefix: str, timeout: float = 60) -> str:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                found = [text for text in lines if text.startswith(prefix)]
                if found:
                    return found[0]
                time.sleep(0.05)
            raise AssertionError(f"no {prefix} line; got {lines}")

        line(target_lines, "TARGET")
        _, x, y, export = line(source_lines, "READY").split(" ", 3)
        assert int(x) < 2000, "the app's window would cover the drop target"

        def xdotool(*args: str) -> None:
            subprocess.run(["xdotool", *args], env=env, check=True, timeout=10)

        xdotool("mousemove", x, y)
        time.sleep(0.3)
        xdotool("mousedown", "1")
        for step in range(1, 21):  # move in steps: Qt starts a drag past startDragDistance, then XDND takes over
            xdotool("mousemove", str(int(x) + (2250 - int(x)) * step // 20), str(int(y) + (300 - int(y)) * step // 20))
            time.sleep(0.05)
        time.sleep(0.3)
        xdotool("mouseup", "1")
        _, formats, url = line(target_lines, "DROP", timeout=20).split(" ", 2)
    finally:
        for process in peers:
            process.kill()
            process.wait(timeout=10)
        xvfb.kill()
        xvfb.wait(timeout=10)
    # Our QMimeData holds text/uri-list alone (test above); on X11, Qt's xcb plugin itself also offers each
    # uri-list as text/x-moz-url and text/plain (QXcbMime::mimeAtomsForFormat), so only uri-list is asserted.
    assert formats.split(",")[0] == "text/uri-list"
    dropped = QUrl(url)
    assert dropped.isLocalFile() and dropped.toLocalFile() == export
    complete_wav(dropped.toLocalFile())
