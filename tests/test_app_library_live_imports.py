"""Loops made outside the app while it is open appear in its library without a restart (#26: CLI and batch loops
were imported only at start): a real CLI `generate` run beside the open window on the tiny bundle, and the
registry's and a batch folder's changes on the library side (a burst of lines, a replaced registry, a batch's
loops landing one by one). The loop shown stays shown and selected, and nothing starts playing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from app_window import plain_window
from library_loops import write_result

FAST = ["--steps", "2", "--scheduler", "euler", "--quality", "draft", "--provider", "cpu"]
REPO = Path(__file__).resolve().parents[1]
SETTLED_MS = 5000  # "within a few seconds"


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    """The window with one loop of its own, shown and selected (what an import must not take away)."""
    with plain_window(qtbot, monkeypatch, export_dir=str(tmp_path / "exports")) as win:
        paths = write_result(tmp_path / "mine", {"prompt": "my own loop", "seed": 1}, seconds=0.5)
        win.library.add_result("mine", paths, json.loads(Path(paths["sidecar"]).read_text()))
        win.refresh_library()
        win.library_pane.select("mine")
        win.imports = []
        win.made_loops_watch.added.connect(win.imports.append)
        yield win


def loop_file(path: Path, prompt: str, *, batch: str = "") -> Path:
    """A finished loop (audio + sidecar) through the one loop writer, as the CLI or a batch leaves it."""
    from engine.loop_files import plain_audio, write_loop

    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"settings": {"prompt": prompt, "seed": 3}, "grid": {"bpm": 120.0, "bars": 1.0}}
    if batch:
        record["batch"] = {"presets": batch}
    write_loop(path, plain_audio(np.zeros((88200, 2), np.float32), 44100), record)
    return path


def listed(window) -> list[str]:
    return sorted(Path(loop.audio).name for loop in window.library_pane.loops)


def assert_undisturbed(window) -> None:
    assert window.current is not None and window.current.job == "mine"
    assert [loop.job for loop in window.library_pane.selected_loops()] == ["mine"]
    assert not window.player.playing


def test_a_burst_of_registered_loops_appears_at_once_and_leaves_the_loop_shown(qtbot, window, tmp_path):
    from plugin.made_loops import registry_path, remember_loop

    assert not registry_path().exists()  # the registry is made after the app started
    for name in ("bass", "keys", "pad"):
        assert remember_loop(loop_file(tmp_path / "cli" / f"{name}.wav", name)) == ""
    qtbot.waitUntil(lambda: listed(window) == ["bass.wav", "keys.wav", "loop.wav", "pad.wav"], timeout=SETTLED_MS)
    assert len(window.imports) == 1 and len(window.imports[0]) == 3  # one import for the burst
    assert_undisturbed(window)
    assert "3 loops from the CLI or a batch added" in window.statusBar().currentMessage()


def test_a_registry_replaced_by_an_atomic_writer_is_still_followed(qtbot, window, tmp_path):
    from plugin.made_loops import registry_path, remember_loop

    remember_loop(loop_file(tmp_path / "cli" / "bass.wav", "bass"))
    qtbot.waitUntil(lambda: "bass.wav" in listed(window), timeout=SETTLED_MS)
    registry = registry_path()
    replacement = registry.with_name("made-loops.jsonl.tmp")
    line = json.dumps({"loop": str(loop_file(tmp_path / "cli" / "drums.wav", "drums").resolve())})
    replacement.write_text(registry.read_text() + line + "\n")
    os.replace(replacement, registry)  # a new file under the old name: the old one's watch ends
    qtbot.waitUntil(lambda: "drums.wav" in listed(window), timeout=SETTLED_MS)
    remember_loop(loop_file(tmp_path / "cli" / "hats.wav", "hats"))  # and appends to the new file are seen
    qtbot.waitUntil(lambda: "hats.wav" in listed(window), timeout=SETTLED_MS)
    assert_undisturbed(window)


def test_a_batch_running_beside_the_app_lands_loop_by_loop(qtbot, window, tmp_path):
    """A batch registers its folder when it starts; each loop it renders (its summary rewritten after) appears,
    and the folder is let go once its summary says the batch is done (a watched folder cannot be deleted or
    renamed on Windows)."""
    from engine.atomic import atomic_path
    from plugin.made_loops import remember_batch

    out = tmp_path / "pack-out"
    out.mkdir()
    remember_batch(out)
    qtbot.waitUntil(lambda: str(out.resolve()) in window.made_loops_watch.watched(), timeout=SETTLED_MS)
    for number in (1, 2):
        loop_file(out / "funky-bass" / f"bass_{number}.wav", "funky bass", batch="pack.toml")
        with atomic_path(out / "summary.json") as temporary:  # as plugin/batch.py's write_summary counts them
            temporary.write_text(json.dumps({"counts": {"done": number, **({"pending": 1} if number < 2 else {})}}))
        qtbot.waitUntil(lambda number=number: f"bass_{number}.wav" in listed(window), timeout=SETTLED_MS)
    batch = [loop for loop in window.library_pane.loops if loop.origin == "batch"]
    assert sorted(loop.collection for loop in batch) == ["pack", "pack"]
    assert_undisturbed(window)
    assert str(out.resolve()) not in window.made_loops_watch.watched()  # done: let go


@pytest.mark.slow
def test_a_cli_generate_run_while_the_app_is_open_appears_in_its_library(qtbot, home, fp32_bundle, tmp_path):
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    window = MainWindow(AppSettings(export_dir=str(home / "exports")))
    qtbot.addWidget(window)
    window.set_bundle(str(home / "no-bundle"), check=False)  # no model load: the window starts no engine
    try:
        assert window.library_pane.loops == []
        out = tmp_path / "cli" / "bass_150.wav"
        child = subprocess.Popen([sys.executable, "-m", "ui.cli.main", "generate", "bass", "--model", str(fp32_bundle),
                                  *FAST, "--seed", "5", "--bpm", "150", "--bars", "1", "--out", str(out)],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            qtbot.waitUntil(lambda: child.poll() is not None, timeout=300_000)  # the window's events run meanwhile
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 0, child.stderr.read()
        finished = time.monotonic()
        qtbot.waitUntil(lambda: len(window.library_pane.loops) == 1, timeout=SETTLED_MS)
        print(f"listed {time.monotonic() - finished:.2f} s after the CLI ended")
        [loop] = window.library_pane.loops
        assert (Path(loop.drag_file), loop.bpm, loop.bars, loop.origin) == (out.resolve(), 150.0, 1.0, "cli")
        assert window.current is None and not window.player.playing  # listed, not shown or played
    finally:
        window.shutdown()


def test_a_list_scrolled_down_keeps_its_rows_in_view_when_loops_land(qtbot, window, tmp_path):
    from plugin.made_loops import remember_loop

    for number in range(30):
        paths = write_result(tmp_path / f"older{number}", {"prompt": f"older loop {number}", "seed": number})
        window.library.add_result(f"older{number}", paths, json.loads(Path(paths["sidecar"]).read_text()),
                                  created=number)
    window.refresh_library()
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    pane = window.library_pane
    pane.library_view.verticalScrollBar().setValue(pane.library_view.verticalScrollBar().maximum() // 2)
    top = pane.top_row()
    assert top and top != "mine"
    remember_loop(loop_file(tmp_path / "cli" / "bass.wav", "bass"))
    qtbot.waitUntil(lambda: "bass.wav" in listed(window), timeout=SETTLED_MS)
    assert pane.top_row() == top  # what the producer was looking at stays put
    assert_undisturbed(window)
    pane.library_view.verticalScrollBar().setValue(0)  # at the top, a new loop shows at the top
    remember_loop(loop_file(tmp_path / "cli" / "keys.wav", "keys"))
    qtbot.waitUntil(lambda: "keys.wav" in listed(window), timeout=SETTLED_MS)
    assert Path(pane.loops[0].audio).name == "keys.wav" and pane.library_view.verticalScrollBar().value() == 0


def test_a_batch_folder_is_rendering_while_its_summary_has_items_pending_and_moves(tmp_path):
    from ui.app.made_loops_watch import STALLED_S, rendering

    out = tmp_path / "pack-out"
    assert not rendering(out)  # not there (yet)
    out.mkdir()
    assert rendering(out)  # registered, no summary yet: just started
    summary = out / "summary.json"
    summary.write_text(json.dumps({"counts": {"pending": 2, "done": 1}}))
    assert rendering(out)
    stalled = time.time() - STALLED_S - 60
    os.utime(summary, (stalled, stalled))
    assert not rendering(out)  # stopped or killed long ago
    summary.write_text(json.dumps({"counts": {"done": 3}}))
    assert not rendering(out)
    summary.write_text("{half a summ")
    assert not rendering(out)
