"""The seed box shows the seed a job uses, and only a job that takes the panel's seed rolls it (a producer
tried it: a refine and an empty prompt re-rolled the box, and a riff used another random seed than the box
showed, even with Lock on). Through the real widget tree, jobs recorded as the controller would queue them."""

from __future__ import annotations

import pytest
from app_window import recording_window
from library_loops import finish
from PySide6.QtCore import Qt


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with recording_window(qtbot, monkeypatch, tmp_path) as win:
        yield win


def press(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


@pytest.mark.parametrize("locked", [False, True])
def test_a_riff_uses_the_seed_the_box_shows(window, tmp_path, locked):
    kick = tmp_path / "kick.wav"
    kick.write_bytes(b"RIFF")
    panel = window.generate_panel
    panel.seed.setValue(1234)
    panel.seed_lock.setChecked(locked)
    window.riff_on_file(str(kick))
    assert window.submitted[-1].settings["seed"] == panel.seed.value()
    assert (panel.seed.value() == 1234) == locked


def test_a_refine_keeps_its_loops_seed_and_leaves_the_box_alone(qtbot, window, tmp_path):
    panel = window.generate_panel
    panel.prompt.setText("warm keys")
    press(qtbot, panel.draft_button)
    finish(window, window.submitted[-1], tmp_path, seed=9)
    shown = panel.seed.value()
    press(qtbot, window.result_pane.refine)
    assert window.submitted[-1].settings["seed"] == 9
    assert panel.seed.value() == shown


def test_an_empty_prompt_queues_nothing_keeps_the_seed_and_says_why(qtbot, window):
    panel = window.generate_panel
    shown = panel.seed.value()
    window.generate_now()
    assert window.submitted == [] and panel.seed.value() == shown
    assert window.statusBar().currentMessage().startswith("Type a prompt first")


def test_more_like_this_takes_a_new_seed_and_the_box_shows_it(qtbot, window, tmp_path):
    panel = window.generate_panel
    panel.prompt.setText("warm keys")
    press(qtbot, panel.generate_button)
    finish(window, window.submitted[-1], tmp_path, seed=9)
    press(qtbot, window.result_pane.more_like_this)
    seed = window.submitted[-1].settings["seed"]
    assert seed != 9 and panel.seed.value() == seed
