"""The library browses like a sample browser (#26): sort by newest, rating, BPM and length; filter by a BPM range,
a length in bars, favourites, a key and the keys that fit it. The pane's real controls on the window's real
widget tree and the library's real SQLite; the loops are real files (the one loop writer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_window import plain_window
from library_loops import write_result
from PySide6.QtCore import Qt

from ui.app.library import Intent

# job: prompt, bpm, bars, key (plugin.key's record), rating, favourite; made in this order (oldest first)
LOOPS = {
    "slow": ("slow piano", 80.0, 4.0, {"name": "Amin", "tonic": 9, "mode": "minor", "confidence": 0.7}, 2, False),
    "mid": ("mid bass", 120.0, 2.0, {"name": "Cmaj", "tonic": 0, "mode": "major", "confidence": 0.7}, 5, True),
    "fast": ("fast drums", 174.0, 1.0, None, 0, False),
    "far": ("far keys", 100.0, 2.0, {"name": "F#maj", "tonic": 6, "mode": "major", "confidence": 0.7}, 3, False),
    "free": ("free pad", None, None, {"name": "Emin", "tonic": 4, "mode": "minor", "confidence": 0.7}, 1, False),
}


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with plain_window(qtbot, monkeypatch, export_dir=str(tmp_path / "exports")) as win:
        for created, (job, (prompt, bpm, bars, key, rating, favourite)) in enumerate(LOOPS.items()):
            paths = write_result(tmp_path / job, {"prompt": prompt, "seed": created}, key=key,
                                 seconds=6.0 - created)  # the loop without a grid: 2 s of audio
            win.library.remember_intent(job, Intent(bpm=bpm, bars=bars))
            win.library.add_result(job, paths, json.loads(Path(paths["sidecar"]).read_text()), created=created)
            win.library.set_rating(job, rating)
            win.library.set_favourite(job, favourite)
        win.refresh_library()
        yield win


def listed(window) -> list[str]:
    return [loop.job for loop in window.library_pane.loops]


@pytest.mark.parametrize(("order", "jobs"), [("Newest", ["free", "far", "fast", "mid", "slow"]),
                                             ("Rating", ["mid", "far", "slow", "free", "fast"]),
                                             ("BPM", ["slow", "far", "mid", "fast", "free"]),
                                             ("Length", ["fast", "free", "mid", "far", "slow"])])
def test_the_order_box_sorts_by_newest_rating_bpm_and_length(window, order, jobs):
    window.library_pane.sort.setCurrentText(order)
    assert listed(window) == jobs


def test_filters_narrow_by_bpm_range_bars_and_favourites(qtbot, window):
    pane = window.library_pane
    qtbot.mouseClick(pane.filters_toggle, Qt.MouseButton.LeftButton)
    pane.bpm_min.setValue(90)
    pane.bpm_max.setValue(150)
    assert sorted(listed(window)) == ["far", "mid"]  # no tempo, no match
    pane.bars.setCurrentText("2 bars")
    assert sorted(listed(window)) == ["far", "mid"]
    pane.bpm_min.setValue(0)
    pane.bars.setCurrentText("4 bars")
    assert listed(window) == ["slow"]
    pane.bars.setCurrentText("Any length")
    qtbot.mouseClick(pane.favourites_only, Qt.MouseButton.LeftButton)
    assert listed(window) == ["mid"]
    qtbot.mouseClick(pane.favourites_only, Qt.MouseButton.LeftButton)
    pane.bpm_max.setValue(60)
    assert listed(window) == [] and "these filters" in pane.empty_note.text()
    qtbot.mouseClick(pane.filters_toggle, Qt.MouseButton.LeftButton)  # folded away: no longer filtering
    assert len(listed(window)) == 5


def test_the_key_filter_finds_the_key_and_fits_finds_the_keys_that_layer_with_it(qtbot, window):
    pane = window.library_pane
    qtbot.mouseClick(pane.filters_toggle, Qt.MouseButton.LeftButton)
    pane.key.setCurrentText("A minor")
    assert listed(window) == ["slow"]
    qtbot.mouseClick(pane.fits, Qt.MouseButton.LeftButton)
    # A minor fits C major (relative) and E minor (a fifth up); F# major does not; no key matches no key.
    assert sorted(listed(window)) == ["free", "mid", "slow"]
    pane.key.setCurrentText("F# major")
    assert listed(window) == ["far"]


def test_the_order_the_producer_left_is_kept_for_the_next_start(qtbot, monkeypatch):
    from engine_fixtures import engine_home

    from ui.app.settings import AppSettings, load_settings
    from ui.app.window import MainWindow

    with engine_home(monkeypatch):
        first = MainWindow(AppSettings())
        qtbot.addWidget(first)
        first.library_pane.sort.setCurrentIndex(first.library_pane.sort.findData("bpm"))
        first.close()
        again = MainWindow(load_settings())
        qtbot.addWidget(again)
        try:
            assert again.library_pane.sort.currentData() == "bpm"
            assert again.library_pane.loop_query().sort == "bpm"
        finally:
            again.shutdown()


def test_an_emptied_bpm_box_means_any_tempo(qtbot):
    """Select all and Backspace in a BPM box clears the filter ('any'), as a producer expects; a spin box alone
    put the last number back (found trying the app)."""
    from PySide6.QtCore import Qt

    from ui.app.library_pane import LibraryPane

    pane = LibraryPane()
    qtbot.addWidget(pane)
    pane.filters_toggle.setChecked(True)
    pane.show()
    qtbot.waitExposed(pane)
    pane.bpm_min.setValue(130)
    assert pane.loop_query().bpm_min == 130
    pane.bpm_min.setFocus()
    pane.bpm_min.selectAll()
    qtbot.keyClick(pane.bpm_min.lineEdit(), Qt.Key.Key_Backspace)
    pane.bpm_min.clearFocus()
    assert pane.bpm_min.text() == "any" and pane.loop_query().bpm_min is None
