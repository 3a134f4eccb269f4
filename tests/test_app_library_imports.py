"""Every loop the engine made for this user is in the library as it was written (#26: `generate --engine` loops
came back "as raw 5.1 s clips without their grid or sidecar, and batch renders never appear"): a real CLI
`generate --engine` job (on the grid and as painted), a plain in-process `generate` and a real batch render on
the tiny bundle, then the app started in the same private home. Plus the library side alone: a painting adopted
before its loop was registered gives way to the loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile

FAST = ["--steps", "2", "--scheduler", "euler", "--quality", "draft", "--provider", "cpu"]


def open_window(qtbot, home: Path):
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    window = MainWindow(AppSettings(export_dir=str(home / "exports")))
    qtbot.addWidget(window)
    window.set_bundle(str(home / "no-bundle"), check=False)  # no model load: no engine started by the app
    return window


def seconds(path: str) -> float:
    info = soundfile.info(path)
    return info.frames / info.samplerate


@pytest.mark.slow
def test_cli_engine_loops_and_a_batch_render_appear_at_start_with_their_grid(qtbot, qtlog, home, run_cli,
                                                                             fp32_bundle, tmp_path):
    from engine.process.paths import results_dir
    from ui.app.library_model import BADGES_ROLE
    from ui.app.spectrogram_view import NO_PAINTING_MESSAGE

    on_grid, painted = tmp_path / "cli" / "bass_150.wav", tmp_path / "cli" / "pad.wav"
    done = run_cli("generate", "bass", "--model", fp32_bundle, *FAST, "--seed", "5", "--bpm", "150", "--bars", "1",
                   "--engine", "--out", on_grid)
    assert done.returncode == 0, done.stderr
    done = run_cli("generate", "pad", "--model", fp32_bundle, *FAST, "--seed", "6", "--width", "64", "--engine",
                   "--out", painted)
    assert done.returncode == 0, done.stderr
    in_process = tmp_path / "cli" / "keys.wav"  # plain generate, no engine: listed too
    done = run_cli("generate", "keys", "--model", fp32_bundle, *FAST, "--seed", "4", "--width", "64", "--out",
                   in_process)
    assert done.returncode == 0, done.stderr
    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\nsteps = 2\nscheduler = "euler"\nquality = "draft"\n'
                       'bpm = 200\nbeats = 2\n[[preset]]\nprompt = "funky slap bass"\nseeds = [1, 2]\n')
    done = run_cli("batch", presets, "--out", tmp_path / "pack-out")
    assert done.returncode == 0, done.stderr
    engine_jobs = sorted(folder.name for folder in results_dir().iterdir())
    assert len(engine_jobs) == 2  # the two CLI jobs' raw paintings (the batch ran in its own process)

    window = open_window(qtbot, home)
    try:
        loops = {Path(loop.audio).name: loop for loop in window.library_pane.loops}
        batch = json.loads((tmp_path / "pack-out" / "summary.json").read_text())["items"]
        batch_files = [Path(item["audio"]).name for item in batch]
        # no raw painting beside them
        assert sorted(loops) == sorted(["bass_150.wav", "pad.wav", "keys.wav", *batch_files])
        grid_loop = loops["bass_150.wav"]
        assert (grid_loop.bpm, grid_loop.bars, grid_loop.origin) == (150.0, 1.0, "cli")
        assert grid_loop.drag_file == str(on_grid.resolve())  # its DAW file is the file the CLI wrote
        assert grid_loop.duration_s == pytest.approx(seconds(grid_loop.drag_file)) == pytest.approx(1.6, abs=1e-3)
        assert grid_loop.engine_job in engine_jobs and loops["pad.wav"].engine_job in engine_jobs
        assert loops["pad.wav"].duration_s == pytest.approx(seconds(str(painted)))
        assert loops["keys.wav"].drag_file == str(in_process.resolve()) and not loops["keys.wav"].engine_job
        # The engine's loops show their job's painting (their writers keep only the audio and sidecar)
        for name in ("bass_150.wav", "pad.wav"):
            assert loops[name].image == str(results_dir() / loops[name].engine_job / "loop.png")
        assert loops["keys.wav"].image == ""  # made in the CLI's own process: no painting kept
        window.library_pane.select(loops["keys.wav"].job)  # shown and listed without a painting: said so, no errors
        qtbot.waitUntil(lambda: window.current is not None and window.current.job == loops["keys.wav"].job)
        assert window.result_pane.spectrogram.message == NO_PAINTING_MESSAGE
        window.library_pane.library_view.viewport().grab()
        assert not [record for record in qtlog.records if "No file name specified" in record.message]
        for name in batch_files:
            loop = loops[name]
            assert (loop.bpm, loop.bars, loop.collection, loop.origin) == (200.0, 0.5, "pack", "batch")
            assert loop.duration_s == pytest.approx(seconds(loop.drag_file)) == pytest.approx(0.6, abs=1e-3)
            assert loop.drag_file == str((tmp_path / "pack-out" / "funky-slap-bass" / name).resolve())
        model = window.library_pane.library_model
        assert model.index(model.row_of(grid_loop.job)).data(BADGES_ROLE) == ["CLI"]
        assert model.index(model.row_of(loops[batch_files[0]].job)).data(BADGES_ROLE) == ["pack"]
    finally:
        window.shutdown()


def test_a_painting_adopted_before_its_loop_was_registered_gives_way_to_the_loop(tmp_path, home):
    """The app started while the CLI was still fitting: it adopted the engine's painting. Once the loop is
    registered, the next start lists the loop in its place, keeping the producer's rating and favourite."""
    import numpy as np
    from library_loops import write_result

    from engine.loop_files import plain_audio, write_loop
    from plugin.made_loops import remember_loop
    from ui.app.library import Library
    from ui.app.library_imports import import_made_elsewhere, import_results

    results = tmp_path / "results"
    write_result(results / "e1", {"prompt": "bass", "seed": 5}, seconds=5.1)
    library = Library(tmp_path / "library.sqlite3")
    try:
        assert import_results(library, results) == ["e1"]
        library.set_rating("e1", 4)
        library.set_favourite("e1", True)
        loop_file = tmp_path / "cli" / "bass.wav"
        loop_file.parent.mkdir()
        write_loop(loop_file, plain_audio(np.zeros((70560, 2), np.float32), 44100),
                   {"settings": {"prompt": "bass", "seed": 5}, "grid": {"bpm": 150.0, "bars": 1.0},
                    "engine_job": "e1"})
        assert remember_loop(loop_file) == ""
        [job] = import_made_elsewhere(library)
        assert import_results(library, results) == [] and library.get("e1") is None
        loop = library.get(job)
        assert (loop.bpm, loop.bars, loop.duration_s, loop.rating, loop.favourite) == (150.0, 1.0, 1.6, 4, True)
        assert import_made_elsewhere(library) == []  # once
        library.delete(job)
        assert import_made_elsewhere(library) == [] and import_results(library, results) == []  # forgotten stays so
        assert loop_file.is_file()
    finally:
        library.close()


def test_deleting_a_cli_loop_in_the_app_removes_it_from_the_library_and_leaves_its_file(qtbot, monkeypatch,
                                                                                        tmp_path):
    import numpy as np
    from app_window import plain_window

    from engine.loop_files import plain_audio, write_loop
    from ui.app.library_imports import import_loop_file

    loop_file = tmp_path / "mine" / "bass.wav"
    loop_file.parent.mkdir()
    write_loop(loop_file, plain_audio(np.zeros((4410, 2), np.float32), 44100), {"settings": {"prompt": "bass"}})
    with plain_window(qtbot, monkeypatch) as window:
        job = import_loop_file(window.library, loop_file, origin="cli")
        window.refresh_library()
        window.library_pane.select(job)
        asked = []
        monkeypatch.setattr(window, "confirm", lambda words: asked.append(words) or True)
        window.delete_selection()
        assert window.library.get(job) is None and window.library_pane.loops == []
        assert asked[0].startswith("Remove 1 loop made by the CLI") and "stays on disk" in asked[0]
    assert sorted(p.name for p in loop_file.parent.iterdir()) == ["bass.json", "bass.wav"]
