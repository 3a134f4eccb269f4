"""The window says what happened in plain words (issue #26): Ctrl+Q, an empty search, Reveal without a file
manager, the drag line following the loop shown, the model's short status line. Real widget tree, no engine."""

from __future__ import annotations

import pytest
from app_window import plain_window
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

ENGINE_LINE = ("Model ready on the CPU in 0.4 s (CPU: int8 bundle (the QNN provider is not installed "
               "(pip install onnxruntime-qnn); use --provider cpu))")


@pytest.fixture
def window(qtbot, monkeypatch):
    with plain_window(qtbot, monkeypatch) as win:
        yield win


def a_loop(tmp_path, job: str, *, exported: bool):
    from ui.app.library import LibraryLoop

    audio = tmp_path / f"{job}.wav"
    audio.write_bytes(b"RIFF")
    export = tmp_path / f"{job}-export.wav"
    if exported:
        export.write_bytes(b"RIFF")
    return LibraryLoop(job=job, prompt=f"loop {job}", negative="", settings={}, seed=1, bundle_identity="",
                       folder=str(tmp_path), audio=str(audio), image="", export=str(export) if exported else "",
                       duration_s=5.0, bpm=None, bars=None, rating=0, favourite=False, created=0.0)


def test_ctrl_q_closes_the_window_through_its_normal_close(qtbot, window):
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.closed, timeout=2000)  # shutdown(): the engine keeps its jobs, settings saved
    assert not window.isVisible()


def test_an_empty_search_says_no_loops_match_and_an_empty_library_says_what_to_do(qtbot, window):
    pane = window.library_pane
    window.show()
    assert pane.empty_note.isVisible() and "Ctrl+Enter" in pane.empty_note.text()  # no loops yet
    pane.set_loops([a_loop_for_pane()])
    assert not pane.empty_note.isVisible() and pane.library_view.isVisible()
    pane.search.setText("tuba")
    pane.set_loops([])
    assert pane.empty_note.isVisible() and pane.empty_note.text().startswith("No loops match")
    assert "tuba" in pane.empty_note.text()


def a_loop_for_pane():
    from ui.app.library import LibraryLoop

    return LibraryLoop(job="a", prompt="bass", negative="", settings={}, seed=1, bundle_identity="", folder="",
                       audio="", image="", export="", duration_s=5.0, bpm=None, bars=None, rating=0,
                       favourite=False, created=0.0)


def test_reveal_without_a_file_manager_copies_the_path_and_says_so(qtbot, window, tmp_path, monkeypatch):
    import subprocess

    from PySide6.QtGui import QDesktopServices

    def no_file_manager(*args, **kwargs):
        raise FileNotFoundError("no file manager")

    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: False)  # Linux: no handler for folders
    monkeypatch.setattr(subprocess, "Popen", no_file_manager)  # Windows, macOS: explorer / open missing
    loop = a_loop(tmp_path, "a", exported=True)
    window._show_loop(loop)
    QApplication.clipboard().clear()
    qtbot.mouseClick(window.result_pane.reveal_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == loop.playable_file
    assert "copied" in window.statusBar().currentMessage().lower()


def test_ready_to_drag_follows_the_loop_shown(qtbot, window, tmp_path):
    first, second = a_loop(tmp_path, "a", exported=True), a_loop(tmp_path, "b", exported=False)
    window.library_pane.set_loops([first, second])
    window.library_pane.select("a")
    window.statusBar().showMessage(f"Ready to drag: {first.export.rsplit('/', 1)[-1]}")
    window.library_pane.select("b")
    assert window.current.job == "b"
    assert "a-export.wav" not in window.statusBar().currentMessage()


def test_the_model_status_line_is_short_and_the_whole_sentence_is_its_tooltip(qtbot, window, tmp_path,
                                                                             monkeypatch):
    bundle = str(tmp_path / "riffusion-v1-int8")
    monkeypatch.setattr(window.controller, "load_model", lambda path, provider: None)  # no engine here
    window.set_bundle(bundle, check=False)
    window.controller.bundle_checked.emit(bundle, "", "int8")
    window.controller.model_loaded.emit("cpu", ENGINE_LINE)
    QApplication.processEvents()
    assert window.statusBar().currentMessage() == "Model ready · runs on the CPU (int8)"
    assert window.statusBar().toolTip() == ENGINE_LINE
    assert window.model_label.toolTip() == ENGINE_LINE


def test_the_delete_question_says_what_goes_and_what_stays():
    """Loops the CLI or a batch wrote only leave the library: the question no longer offers to delete files it
    then says it keeps ("Delete 1 loop(s) and their files? (1 made by the CLI or a batch stay on disk…)")."""
    from ui.app.window import delete_words

    assert delete_words(1, 0) == "Delete 1 loop and its files?"
    assert delete_words(3, 0) == "Delete 3 loops and their files?"
    assert delete_words(1, 1) == "Remove 1 loop made by the CLI or a batch from the library (its file stays on disk)?"
    assert delete_words(3, 1) == ("Delete 2 loops and their files, and remove 1 loop made by the CLI or a batch from "
                                  "the library (its file stays on disk)?")


def test_the_window_keys_get_through_a_text_box_that_claims_them(qtbot):
    """The header promises Ctrl+E export, but under GNOME's and KDE's key themes a text box claims Ctrl+E as "end
    of line" (found trying the app under X11). A line edit that claims it as they do (offscreen Qt's own key
    theme does not bind it) swallows the shortcut; with the window's filter, the shortcut fires."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeySequence, QShortcut
    from PySide6.QtWidgets import QLineEdit, QVBoxLayout, QWidget

    from ui.app.window import WindowKeysThrough

    class ClaimsCtrlE(QLineEdit):
        def event(self, event) -> bool:
            if event.type() == QEvent.Type.ShortcutOverride and QKeySequence(event.keyCombination()) == \
                    QKeySequence("Ctrl+E"):
                event.accept()
                return True
            return super().event(event)

    def fired(filtered: bool) -> list[bool]:
        window = QWidget()
        qtbot.addWidget(window)
        box = ClaimsCtrlE(window)
        QVBoxLayout(window).addWidget(box)
        seen: list[bool] = []
        QShortcut(QKeySequence("Ctrl+E"), window, activated=lambda: seen.append(True))
        if filtered:
            box.installEventFilter(WindowKeysThrough((QKeySequence("Ctrl+E"),), window))
        window.show()
        qtbot.waitExposed(window)
        box.setFocus()
        qtbot.waitUntil(box.hasFocus)
        qtbot.keyClick(box, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
        return seen

    assert fired(filtered=False) == []  # the claim bites, as under GNOME
    assert fired(filtered=True) == [True]
