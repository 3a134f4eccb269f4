"""The library's count says what a search or filter left out (#26): "1 of 4 loops", not "1 loop" as if the rest
were gone. The pane's real controls on the window's real widget tree and the library's real SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_window import plain_window
from library_loops import write_result

from ui.app.library import Intent

LOOPS = {"slow": ("slow piano", 80.0), "mid": ("mid bass", 120.0), "fast": ("fast drums", 174.0),
         "far": ("far keys", 100.0)}


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with plain_window(qtbot, monkeypatch, export_dir=str(tmp_path / "exports")) as win:
        for created, (job, (prompt, bpm)) in enumerate(LOOPS.items()):
            paths = write_result(tmp_path / job, {"prompt": prompt, "seed": created})
            win.library.remember_intent(job, Intent(bpm=bpm, bars=2.0))
            win.library.add_result(job, paths, json.loads(Path(paths["sidecar"]).read_text()), created=created)
        win.library.set_favourite("mid", True)
        win.refresh_library()
        yield win


def count(window) -> str:
    return window.library_pane.library_count.text()


def test_the_count_says_how_many_of_all_the_loops_are_listed(qtbot, window):
    pane = window.library_pane
    assert count(window) == "4 loops"
    pane.search.setText("slow")
    assert count(window) == "1 of 4 loops"
    pane.search.setText("nothing like this")
    assert count(window) == "0 of 4 loops"
    pane.search.clear()
    assert count(window) == "4 loops"
    pane.favourites_only.setChecked(True)
    assert count(window) == "1 of 4 loops"
    pane.favourites_only.setChecked(False)
    pane.filters_toggle.setChecked(True)
    pane.bpm_min.setValue(100)
    assert count(window) == "3 of 4 loops"
    pane.filters_toggle.setChecked(False)  # folded away, the filters stop filtering
    assert count(window) == "4 loops"
