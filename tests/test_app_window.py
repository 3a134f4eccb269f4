"""The desktop app's main window, driven through a real Qt widget tree."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt

from ui.main_window import MainWindow


def test_generate_is_enabled_only_with_a_prompt(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    assert not window.generate_button.isEnabled()
    qtbot.keyClicks(window.prompt, "   ")
    assert not window.generate_button.isEnabled()
    qtbot.keyClicks(window.prompt, "funky slap bass, 100 bpm")
    assert window.generate_button.isEnabled()


def test_generate_button_emits_the_trimmed_prompt(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    qtbot.keyClicks(window.prompt, "  lofi piano  ")
    with qtbot.waitSignal(window.generate_requested) as signal:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert signal.args == ["lofi piano"]


def test_app_command_opens_a_window_and_exits_cleanly(run_cli):
    result = run_cli("app", "--quit-after", "0.3", env={"QT_QPA_PLATFORM": "offscreen"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert os.environ.get("QT_QPA_PLATFORM") == "offscreen"
