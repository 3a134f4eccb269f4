"""Rendering a batch in the desktop app: File > Render a batch… runs `riffstudio batch --engine --json` as a child
process (ui/app/batch_runner.py) on the tiny test bundle; the batch window shows n of N loops, the one rendering
and the time left; a bad preset file is refused with the parser's one line before anything starts; Stop ends
the child and leaves a batch that Render carries on; a second batch is refused while one renders.

Real widgets (offscreen), real child processes and the real engine, every user folder in a private home
(tests/engine_fixtures.py, which also stops the engine at the end)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from app_window import event_loop_gaps
from PySide6.QtCore import Qt

from plugin.batch import SUMMARY
from plugin.grid_loop import is_complete

TIMEOUT_MS = 180_000
# Fast items on the tiny model: 2 beats at 200 bpm paint a 144 px image; Euler steps, draft decoding.
FAST = 'scheduler = "euler"\nquality = "draft"\nbpm = 200\nbeats = 2\n'


def preset_file(folder: Path, *, steps: int = 2, seeds: tuple[int, ...] = (1, 2), name: str = "pack") -> Path:
    """A preset file naming no model (the app's renders it): "funk bass" with `seeds`, and one "lofi keys"."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(f"""[defaults]
steps = {steps}
{FAST}
[[preset]]
name = "funk bass"
prompt = "funky slap bass"
seeds = {list(seeds)}

[[preset]]
name = "lofi keys"
prompt = "lofi piano chords"
seeds = [9]
""", encoding="utf-8")
    return path


def open_window(qtbot, home: Path, bundle: Path | str = ""):
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    window = MainWindow(AppSettings(bundle=str(bundle), export_dir=str(home / "Music" / "Riffstudio")))
    qtbot.addWidget(window)
    window.show()
    return window


def record(signal) -> list:
    seen: list = []
    signal.connect(lambda *args: seen.append(args[0] if args else True))
    return seen


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def summary_of(out: Path) -> dict:
    return json.loads((out / SUMMARY).read_text(encoding="utf-8"))


def loop_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name not in (SUMMARY, "summary.csv"))


def batch_jobs_in_the_engine(states: tuple[str, ...]) -> list:
    from engine.client import EngineClient

    with EngineClient(start=False, name="test") as client:
        return [job for job in client.jobs(limit=100) if job.priority == "batch" and job.state in states]


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_a_batch_renders_in_the_engine_with_n_of_n_progress_and_hands_its_folder_on(qtbot, home, fp32_bundle):
    from engine.process.connection_file import live_engine

    window = open_window(qtbot, home, fp32_bundle)
    presets = preset_file(home / "presets")
    batch = window.open_batch(presets)
    out = home / "Music" / "pack"  # beside the export folder, named after the preset file
    assert batch.isVisible() and batch.out.text() == str(out)
    runner = window.batch_runner
    progress, finished = record(runner.progress), record(runner.finished)
    with event_loop_gaps(10) as gaps:
        click(qtbot, batch.render_button)
        assert runner.state == "rendering" and not batch.render_button.isEnabled() and batch.stop_button.isEnabled()
        qtbot.waitUntil(lambda: bool(finished), timeout=TIMEOUT_MS)

    assert finished == [str(out)]  # the hook the library imports from
    assert batch.progress.value() == batch.progress.maximum() and batch.progress.text() == "3 of 3 loops"
    assert batch.status.text() == f"Rendered 3 loops into {out}"
    assert window.statusBar().currentMessage() == f"Batch rendered into {out}: 3 loops in the library"
    listed = [loop for loop in window.library_pane.loops if loop.origin == "batch"]
    assert sorted(Path(loop.drag_file).name for loop in listed) == sorted(
        Path(entry["audio"]).name for entry in summary_of(out)["items"])  # the loops as written, on their grid
    assert {loop.collection for loop in listed} == {"pack"} and {loop.bpm for loop in listed} == {200}
    assert [p.finished for p in progress] == sorted(p.finished for p in progress) and progress[-1].finished == 3
    assert {p.label for p in progress if p.label} == {"funk bass (seed 1)", "funk bass (seed 2)",
                                                      "lofi keys (seed 9)"}
    assert any(p.eta >= 0 for p in progress) and "left" in next(p for p in progress if p.eta >= 0).describe()
    summary = summary_of(out)
    assert summary["counts"] == {"done": 3}
    for entry in summary["items"]:
        audio = out / entry["audio"]
        assert is_complete(audio, entry["key"])
        sidecar = json.loads(audio.with_suffix(".json").read_text(encoding="utf-8"))
        assert sidecar["engine_job"] and sidecar["settings"]["steps"] == 2  # rendered by the engine
    assert len(loop_files(out)) == 6
    assert "funk bass (seed 1)" in batch.log.toPlainText()
    assert live_engine() is not None  # the engine the app and the batch share
    assert max(gaps) < 0.5, f"the window stalled for {max(gaps):.2f} s while the batch rendered"
    window.shutdown()


def test_a_bad_preset_file_shows_the_parsers_line_and_starts_nothing(qtbot, home, tmp_path):
    from engine.process.connection_file import live_engine

    window = open_window(qtbot, home)  # no model: nothing of the app's own starts an engine either
    presets = tmp_path / "broken.toml"
    presets.write_text('[[preset]]\nprompt = "funky slap bass"\nbpm = "fast"\n', encoding="utf-8")
    batch = window.open_batch(presets)
    refused = record(window.batch_runner.refused)
    click(qtbot, batch.render_button)
    qtbot.waitUntil(lambda: bool(refused), timeout=60_000)  # the child's check, before anything else
    assert batch.message.isVisible()
    line = batch.message.text()
    assert line.startswith("broken.toml:3: bpm: ") and "\n" not in line, line  # the app says it, not the CLI
    assert window.batch_runner.state == "idle" and not window.batch_runner.child.running
    assert not Path(batch.out.text()).exists()  # nothing written
    assert live_engine() is None  # no engine asked for
    assert batch.render_button.isEnabled() and batch.status.text() == ""
    window.shutdown()


@pytest.mark.slow
def test_stop_ends_the_child_and_render_carries_on_where_it_stopped(qtbot, home, fp32_bundle):
    from ui.app.batch_runner import BatchRun

    window = open_window(qtbot, home, fp32_bundle)
    presets = preset_file(home / "presets", steps=2, seeds=(1, 2, 3))
    batch = window.open_batch(presets)
    out = Path(batch.out.text())
    runner = window.batch_runner
    progress, stopped = record(runner.progress), record(runner.stopped)
    click(qtbot, batch.render_button)
    qtbot.waitUntil(lambda: any(p.finished >= 1 for p in progress), timeout=TIMEOUT_MS)
    pid = runner.child.pid()
    assert pid > 0

    # A second batch while this one renders: refused, with a line saying which one renders; nothing else starts.
    other = preset_file(home / "presets", name="other")
    window.open_batch(other)
    assert batch.message.isVisible() and batch.message.text().startswith("A batch is already rendering (pack.toml")
    assert not runner.start(BatchRun(presets=other, out=home / "other"))
    assert runner.child.pid() == pid and not (home / "other").exists()

    click(qtbot, batch.stop_button)
    qtbot.waitUntil(lambda: bool(stopped), timeout=30_000)
    assert stopped == [str(out)] and runner.state == "idle"
    assert process_gone(pid)  # the child has ended (no orphan)
    assert batch_jobs_in_the_engine(("done",))  # the engine's journal lists the batch's loops...
    assert batch_jobs_in_the_engine(("queued", "running")) == []  # ...and none still going: cancelled there too
    summary = summary_of(out)
    done = {e["audio"]: (out / e["audio"]).stat().st_ino for e in summary["items"] if e["state"] == "done"}
    assert 1 <= len(done) < 4 and summary["counts"]["pending"] == 4 - len(done)
    assert batch.status.text().startswith(f"Stopped: {len(done)} of 4 loops are in {out}. Render again to carry "
                                          "on where it stopped")
    assert len(loop_files(out)) == 2 * len(done)  # finished loops and their sidecars, nothing half-written

    finished = record(runner.finished)
    click(qtbot, batch.render_button)  # the same preset file into the same folder: carries on
    qtbot.waitUntil(lambda: bool(finished), timeout=TIMEOUT_MS)
    assert runner.outcome.skipped == len(done) and runner.outcome.done == 4 - len(done)
    assert f"({len(done)} were already there)" in batch.status.text()
    assert summary_of(out)["counts"] == {"done": 4} and len(loop_files(out)) == 8
    for audio, inode in done.items():
        assert (out / audio).stat().st_ino == inode  # kept, not rendered again
    window.shutdown()


def test_closing_the_window_stops_a_batch_and_leaves_no_child(qtbot, home, fp32_bundle):
    window = open_window(qtbot, home, fp32_bundle)
    batch = window.open_batch(preset_file(home / "presets", seeds=(1, 2, 3)))
    runner = window.batch_runner
    started = record(runner.planned)
    click(qtbot, batch.render_button)
    qtbot.waitUntil(lambda: bool(started), timeout=TIMEOUT_MS)
    pid = runner.child.pid()
    window.close()
    assert process_gone(pid)


def test_the_loops_go_beside_the_export_folder_in_a_folder_of_the_preset_files_name(tmp_path):
    from ui.app.batch_runner import default_out_folder

    export = tmp_path / "Music" / "Riffstudio"
    presets = tmp_path / "presets" / "drums.toml"
    assert default_out_folder(presets, export) == tmp_path / "Music" / "drums"
    (tmp_path / "Music" / "drums").mkdir(parents=True)
    assert default_out_folder(presets, export) == tmp_path / "Music" / "drums"  # empty: used
    (tmp_path / "Music" / "drums" / "my kick.wav").write_bytes(b"RIFF")  # someone's own folder: left alone
    assert default_out_folder(presets, export) == tmp_path / "Music" / "drums-batch"
    (tmp_path / "Music" / "drums-batch").mkdir()
    (tmp_path / "Music" / "drums-batch" / SUMMARY).write_text(json.dumps({"presets": "drums.toml"}))
    assert default_out_folder(presets, export) == tmp_path / "Music" / "drums-batch"  # this file's: carry on


@pytest.mark.parametrize("code", ["0", "3"])
def test_a_child_that_ends_without_its_done_line_is_a_failure_with_its_last_line(qtbot, tmp_path, fp32_bundle,
                                                                                 code):
    """The runner on its own, with a child that is not the batch: the window is told why, in one line."""
    import sys

    from ui.app.batch_runner import BatchRun, BatchRunner

    child = ("import sys\nprint('{\"event\": \"planned\", \"total\": 2, \"complete\": 1}', flush=True)\n"
             f"sys.stderr.write('Traceback...\\nriffstudio: the last line\\n')\nsys.exit({code})\n")
    runner = BatchRunner(command=[sys.executable, "-c", child])
    presets = preset_file(tmp_path)
    planned, failed, finished = record(runner.planned), record(runner.failed), record(runner.finished)
    assert runner.start(BatchRun(presets=presets, out=tmp_path / "out", bundle=str(fp32_bundle)))
    qtbot.waitUntil(lambda: bool(failed), timeout=30_000)
    assert planned[0].finished == 1 and planned[0].describe() == "1 of 2 loops"
    assert failed == ["riffstudio: the last line"] and not finished and runner.state == "idle"


def test_a_run_of_a_complete_batch_says_nothing_was_left_to_render(tmp_path):
    from ui.app.batch_runner import BatchOutcome

    out = tmp_path / "pack"
    assert BatchOutcome(done=0, skipped=2, failed=0, remaining=0).describe(out) == (
        f"Nothing to render: all 2 loops were already in {out}")
    assert BatchOutcome(done=1, skipped=2, failed=0, remaining=0).describe(out) == (
        f"Rendered 3 loops into {out} (2 were already there)")


def test_a_typed_preset_path_moves_the_default_folder_but_not_a_chosen_one(qtbot, home, tmp_path):
    window = open_window(qtbot, home)
    try:
        batch = window.open_batch(preset_file(tmp_path / "a", name="first"))
        assert batch.out.text() == str(home / "Music" / "first")
        batch.presets.setText(str(preset_file(tmp_path / "b", name="second")))
        batch.presets.editingFinished.emit()
        assert batch.out.text() == str(home / "Music" / "second")
        batch.out.setText(str(tmp_path / "mine"))  # the producer's own folder stays
        batch.presets.setText(str(preset_file(tmp_path / "c", name="third")))
        batch.presets.editingFinished.emit()
        assert batch.out.text() == str(tmp_path / "mine")
    finally:
        window.shutdown()
