"""The library tells loops apart (#26: "a draft and its refinement look identical"): each row's badge says what
kind of loop it is (draft, refined, riff, longer, variation) and its tooltip what it came from. Driven through
the real widget tree: the buttons a producer presses, the jobs finished as the controller reports them."""

from __future__ import annotations

import pytest
from app_window import recording_window
from library_loops import finish
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from ui.app.library_model import BADGE_COLOURS, BADGES_ROLE


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with recording_window(qtbot, monkeypatch, tmp_path) as win:
        yield win


def row(window, job: str):
    model = window.library_pane.library_model
    return model.index(model.row_of(job))


def press(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_a_draft_and_its_refinement_wear_different_badges_and_the_refinement_names_its_draft(qtbot, window,
                                                                                            tmp_path):
    window.generate_panel.prompt.setText("warm keys")
    press(qtbot, window.generate_panel.draft_button)
    draft = finish(window, window.submitted[-1], tmp_path, seed=9)
    assert window.current.job == draft
    assert row(window, draft).data(BADGES_ROLE) == ["draft"]
    press(qtbot, window.result_pane.refine)
    refined = finish(window, window.submitted[-1], tmp_path)
    index = row(window, refined)
    assert index.data(BADGES_ROLE) == ["refined"]
    assert "refined from “warm keys · seed 9”" in index.data(Qt.ItemDataRole.ToolTipRole)
    assert window.library.get(refined).parent == draft


PARENT = "“warm keys · seed 9”"


@pytest.mark.parametrize(("button", "badge", "words"), [("riff_on_this", "riff", f"riff on {PARENT}"),
                                                        ("longer", "longer", f"longer version of {PARENT}"),
                                                        ("more_like_this", "variation", f"more like {PARENT}")])
def test_each_action_on_a_loop_gives_its_badge_and_its_parent(qtbot, window, tmp_path, button, badge, words):
    window.generate_panel.prompt.setText("warm keys")
    press(qtbot, window.generate_panel.generate_button)
    first = finish(window, window.submitted[-1], tmp_path, seed=9)
    assert row(window, first).data(BADGES_ROLE) == []  # a new loop: no badge
    press(qtbot, getattr(window.result_pane, button))
    made = finish(window, window.submitted[-1], tmp_path)
    index = row(window, made)
    assert index.data(BADGES_ROLE) == [badge]
    assert words in index.data(Qt.ItemDataRole.ToolTipRole)


def test_a_riff_on_a_dropped_file_names_the_file(qtbot, window, tmp_path):
    kick = tmp_path / "kick.wav"
    kick.write_bytes(b"RIFF")
    window.generate_panel.prompt.setText("warm keys")
    window.riff_on_file(str(kick))
    made = finish(window, window.submitted[-1], tmp_path)
    assert "riff on “kick.wav”" in row(window, made).data(Qt.ItemDataRole.ToolTipRole)


@pytest.mark.parametrize("width", [1280, 560])
def test_the_badges_are_painted_on_the_rows_within_the_list(qtbot, window, tmp_path, width):
    """Rows are as wide as the list, whatever width the window had when they came in (a row sized before the
    window was laid out once ran off the list's right edge, badges and ♥ with it)."""
    window.generate_panel.prompt.setText("warm keys")
    press(qtbot, window.generate_panel.draft_button)
    finish(window, window.submitted[-1], tmp_path)
    press(qtbot, window.result_pane.refine)
    finish(window, window.submitted[-1], tmp_path)
    window.resize(width, 900)
    window.show()
    view = window.library_pane.library_view
    qtbot.waitExposed(view)
    assert all(view.visualRect(row(window, loop.job)).right() < view.viewport().width()
               for loop in window.library_pane.loops)
    picture = view.viewport().grab().toImage()
    colours = {picture.pixelColor(x, y).name() for x in range(0, picture.width(), 2)
               for y in range(0, picture.height(), 2)}
    assert QColor(BADGE_COLOURS["refined"]).name() in colours and QColor(BADGE_COLOURS["draft"]).name() in colours


# -- the parent in the result pane's header --------------------------------------------------------------------


def test_the_header_names_the_parent_and_a_click_on_it_selects_the_parent(qtbot, window, tmp_path):
    window.generate_panel.prompt.setText("warm keys")
    press(qtbot, window.generate_panel.draft_button)
    draft = finish(window, window.submitted[-1], tmp_path, seed=9)
    header = window.result_pane.parent_link
    assert not header.isVisibleTo(window)  # a new loop came from nothing
    press(qtbot, window.result_pane.refine)
    refined = finish(window, window.submitted[-1], tmp_path)
    assert window.current.job == refined
    assert header.isVisibleTo(window) and header.words == "refined from “warm keys · seed 9”"
    press(qtbot, header)
    assert window.current.job == draft
    assert [loop.job for loop in window.library_pane.selected_loops()] == [draft]
    assert not header.isVisibleTo(window) and not window.player.playing


def test_a_parent_the_search_hides_is_shown_and_the_status_says_why_its_row_is_not(qtbot, window, tmp_path):
    window.generate_panel.prompt.setText("warm keys")
    press(qtbot, window.generate_panel.generate_button)
    first = finish(window, window.submitted[-1], tmp_path, seed=9)
    press(qtbot, window.result_pane.longer)
    longer = finish(window, window.submitted[-1], tmp_path)
    window.library_pane.search.setText("nothing like it")  # the list is empty now; the longer loop stays shown
    assert window.current.job == longer
    assert window.result_pane.parent_link.words == f"longer version of {PARENT}"
    press(qtbot, window.result_pane.parent_link)
    assert window.current.job == first and "hidden by the library's search" in window.statusBar().currentMessage()


def test_a_riff_on_a_file_or_on_a_deleted_loop_names_it_without_a_link(qtbot, window, tmp_path, monkeypatch):
    kick = tmp_path / "kick.wav"
    kick.write_bytes(b"RIFF")
    window.generate_panel.prompt.setText("warm keys")
    window.riff_on_file(str(kick))
    made = finish(window, window.submitted[-1], tmp_path)
    header = window.result_pane.parent_link
    assert window.current.job == made and header.words == "riff on “kick.wav”"
    assert header.toolTip() == str(kick) and not header.parent_job
    press(qtbot, header)
    assert window.current.job == made  # nothing to go to

    press(qtbot, window.generate_panel.generate_button)
    first = finish(window, window.submitted[-1], tmp_path, seed=9)
    press(qtbot, window.result_pane.more_like_this)
    variation = finish(window, window.submitted[-1], tmp_path)
    window.library_pane.select(first)
    monkeypatch.setattr(window, "confirm", lambda words: True)
    window.delete_selection()
    window.library_pane.select(variation)
    assert window.current.job == variation and not header.parent_job
    assert header.words == "more like a loop no longer in the library"
    press(qtbot, header)
    assert window.current.job == variation


def test_a_rows_details_keep_whole_words_when_the_row_is_narrow(qtbot):
    """A row drops its last details whole where they do not fit (the age was cut to "1 …" or "j…" at 1280 px)."""
    from PySide6.QtGui import QFont, QFontMetrics

    from ui.app.library_model import SEPARATOR, fitted_details

    metrics = QFontMetrics(QFont())
    parts = ["4.8 s", "100 bpm", "2 bars", "Emaj", "seed 1000", "just now"]
    whole = SEPARATOR.join(parts)
    assert fitted_details(parts, metrics, metrics.horizontalAdvance(whole)) == whole
    cut = fitted_details(parts, metrics, metrics.horizontalAdvance(whole) - 5)
    assert cut == SEPARATOR.join(parts[:5]) and "…" not in cut
    first = fitted_details(["100.5 bpm"], metrics, metrics.horizontalAdvance("100.5 bpm") - 2)
    assert first.endswith("…")  # even the first alone does not fit: elided
