"""One tempo story (#26): the README's own prompt, "funky slap bass, 100 bpm", rendered at the Tempo box's 120
and was named `funky-slap-bass-100-bpm_120bpm_2bars_seed843741631.wav`. The prompt's tempo is shown beside the
box; where they disagree the panel asks before generating (the box wins by default, the prompt is left
alone); the job renders at the tempo chosen, and the exported name carries that one tempo."""

from __future__ import annotations

import pytest
from app_window import recording_window
from conftest import DATA
from PySide6.QtCore import Qt

PROMPT = "funky slap bass, 100 bpm"


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with recording_window(qtbot, monkeypatch, tmp_path) as win:
        win.resize(1280, 720)
        win.show()
        yield win


@pytest.mark.parametrize("prompt", [PROMPT, "funky slap bass 100bpm", "funky slap bass, 100 BPM"])
def test_the_prompts_tempo_is_shown_and_its_conflict_asked_before_generating(qtbot, window, prompt):
    panel = window.generate_panel
    assert panel.bpm.value() == 120 and not panel.tempo_choice.isVisible()
    qtbot.keyClicks(panel.prompt, prompt)
    assert panel.prompt_tempo.isVisible() and "100 bpm" in panel.prompt_tempo.text()
    assert panel.tempo_choice.isVisible()
    words = panel.tempo_choice.words.text()
    assert "100 bpm" in words and "120 bpm" in words
    assert (panel.tempo_choice.use_button.text(), panel.tempo_choice.keep_button.text()) == ("Use 100 bpm",
                                                                                            "Keep 120 bpm")


def test_the_box_wins_by_default_and_the_prompt_is_left_alone(qtbot, window):
    panel = window.generate_panel
    qtbot.keyClicks(panel.prompt, PROMPT)
    qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    [request] = window.submitted
    assert request.bpm == 120 and request.settings["prompt"] == PROMPT
    assert "120 bpm" in window.statusBar().currentMessage() and "100 bpm" in window.statusBar().currentMessage()


def test_choosing_the_prompts_tempo_renders_at_it(qtbot, window):
    from ui.app.exports import paint_width_for

    panel = window.generate_panel
    qtbot.keyClicks(panel.prompt, PROMPT)
    qtbot.mouseClick(panel.tempo_choice.use_button, Qt.MouseButton.LeftButton)
    assert panel.bpm.value() == 100 and not panel.tempo_choice.isVisible()
    assert panel.prompt.text() == PROMPT
    qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    [request] = window.submitted
    assert request.bpm == 100 and request.settings["prompt"] == PROMPT
    assert request.settings["width"] == paint_width_for(100, 2)


def test_keeping_the_boxs_tempo_stops_asking_until_a_tempo_changes(qtbot, window):
    panel = window.generate_panel
    qtbot.keyClicks(panel.prompt, PROMPT)
    qtbot.mouseClick(panel.tempo_choice.keep_button, Qt.MouseButton.LeftButton)
    assert not panel.tempo_choice.isVisible() and panel.bpm.value() == 120
    panel.bpm.setValue(90)
    assert panel.tempo_choice.isVisible()
    panel.bpm.setValue(100)
    assert not panel.tempo_choice.isVisible()  # they agree


def test_seconds_mode_has_no_grid_so_nothing_to_choose(qtbot, window):
    panel = window.generate_panel
    panel.length_mode.setCurrentText("seconds")
    qtbot.keyClicks(panel.prompt, PROMPT)
    assert panel.prompt_tempo.isVisible() and not panel.tempo_choice.isVisible()


@pytest.mark.parametrize(("prompt", "stem"), [
    (PROMPT, "funky-slap-bass_120bpm_2bars_seed843741631"),
    ("funky slap bass 100bpm, dry", "funky-slap-bass-dry_120bpm_2bars_seed843741631"),
    ("120 BPM", "loop_120bpm_2bars_seed843741631"),
])
def test_the_export_name_carries_one_tempo_the_rendered_one(prompt, stem):
    from ui.app.exports import export_stem

    assert export_stem(prompt, bpm=120, bars=2, seed=843741631) == stem


def test_in_seconds_mode_the_prompts_tempo_is_the_only_one_and_stays():
    from ui.app.exports import export_stem

    assert export_stem(PROMPT, bpm=None, bars=None, seed=7) == "funky-slap-bass-100-bpm_seed7"


def test_the_app_exports_the_readmes_prompt_under_one_bpm(tmp_path):
    """The file export_loop writes (the app's one export), not only the stem."""
    from ui.app.exports import ExportRequest, export_loop

    out = export_loop(ExportRequest(audio=str(DATA / "audio" / "drums.wav"),
                                    image=str(DATA / "golden" / "drums.riffusion.png"),
                                    sidecar={"settings": {"prompt": PROMPT, "seed": 843741631}},
                                    folder=tmp_path, bpm=120.0, bars=2.0))
    assert out.name == "funky-slap-bass_120bpm_2bars_seed843741631.wav"
