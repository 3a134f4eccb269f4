"""The Model dialog runs `model convert` and `model check` as every app child runs (ui/app/child_output.py's
RiffstudioChild, like `model get` and batch): the child's words in the log as they come (a terminal's redrawn bar
as it ended), a failure's last stderr line read whole however it was written, and a child that cannot start said
in one line instead of leaving the dialog waiting for it. The children here are scripted stand-ins for the
`riffstudio` program (tests/test_app_get_model.py runs the real one through the dialog, for `model check` and a
convert without the export extra)."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt

# A `riffstudio` that prints a stage line, redraws a bar, then writes its one-line error in two pieces and fails.
CHILD = r"""
import sys, time
print("25%  3s  writing the tokenizer", file=sys.stderr, flush=True)
sys.stderr.write("[####    ] 50%\r[########] 100%\n"); sys.stderr.flush()
print("a line on stdout", flush=True)
sys.stderr.write("riffstudio: cannot read the checkp"); sys.stderr.flush()
time.sleep(0.3)
sys.stderr.write("oint (not a diffusers folder): give a folder or a .ckpt\n"); sys.stderr.flush()
sys.exit(2)
"""


def dialog_running(qtbot, monkeypatch, tmp_path, *command: str):
    """The Model dialog, shown, whose `riffstudio` is `command` (engine/process/launch.py decides it for every
    child of the app)."""
    import engine.process.launch
    from ui.app.model_dialog import ModelDialog

    monkeypatch.setattr(engine.process.launch, "riffstudio_command", lambda: list(command))
    dialog = ModelDialog("", "", models=tmp_path / "models")
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def convert(qtbot, dialog, source: str) -> None:
    dialog.source.setText(source)
    qtbot.mouseClick(dialog.convert, Qt.MouseButton.LeftButton)


def test_a_convert_that_cannot_start_says_so_and_the_dialog_runs_the_next(qtbot, monkeypatch, tmp_path):
    dialog = dialog_running(qtbot, monkeypatch, tmp_path, str(tmp_path / "no-such-riffstudio-cli"))
    convert(qtbot, dialog, str(tmp_path / "checkpoint"))
    qtbot.waitUntil(lambda: dialog.status.isVisible(), timeout=10_000)
    assert dialog.status.text().startswith("riffstudio: could not start ") and not dialog.child.running
    qtbot.mouseClick(dialog.check, Qt.MouseButton.LeftButton)  # not stuck behind the child that never ran
    assert dialog.log.toPlainText().count("$ riffstudio ") == 2


def test_the_log_shows_the_childs_words_and_the_status_its_last_line_whole(qtbot, monkeypatch, tmp_path):
    dialog = dialog_running(qtbot, monkeypatch, tmp_path, sys.executable, "-c", CHILD)
    convert(qtbot, dialog, str(tmp_path / "checkpoint"))
    qtbot.waitUntil(lambda: dialog.log.toPlainText().endswith(")"), timeout=30_000)  # (exit code N)
    log = dialog.log.toPlainText().splitlines()
    assert log[0].startswith("$ riffstudio model convert ")
    assert "25%  3s  writing the tokenizer" in log and "[########] 100%" in log and "a line on stdout" in log
    line = "riffstudio: cannot read the checkpoint (not a diffusers folder): give a folder or a .ckpt"
    assert line in log and log[-1] == "(exit code 2)"
    assert dialog.status.text() == line and dialog.bundle.text() == ""  # nothing to use
