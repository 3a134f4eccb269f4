"""A wrong model folder keeps the working one (#26): picking a folder that is not a bundle unloaded the model in
use and answered with CLI advice ("convert one with `riffstudio model convert SRC --out BUNDLE`"). Now the
folder is checked first (the real check, engine.bundle on the controller's worker: no engine starts), the model
in use stays, and the app says so in its words, offering "Convert this folder?"."""

from __future__ import annotations

import pytest
from app_window import recording_window
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with recording_window(qtbot, monkeypatch, tmp_path) as win:
        win.loaded = []
        monkeypatch.setattr(win.controller, "load_model", lambda path, provider="auto": win.loaded.append(path))
        win.resize(1280, 720)
        win.show()
        yield win


def pick(monkeypatch, folder) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))


def test_a_folder_that_is_not_a_bundle_leaves_the_model_in_use(qtbot, window, monkeypatch, tmp_path):
    working = window.settings.bundle
    label = window.model_label.text()
    folder = tmp_path / "riffusion-model-v1"  # a diffusers folder, say: not a bundle
    (folder / "unet").mkdir(parents=True)
    pick(monkeypatch, folder)
    window.choose_bundle()
    notice = window.folder_notice
    qtbot.waitUntil(notice.isVisible, timeout=5000)
    assert window.settings.bundle == working and window.bundle_problem == "" and window.loaded == []
    assert window.model_label.text() == label and not window.model_message.isVisible()
    words = notice.words.text()
    assert "“riffusion-model-v1” is not a model bundle" in words and "bundle stays in use" in words
    for said in (words, window.statusBar().currentMessage(), window.statusBar().toolTip()):
        assert "riffstudio model convert" not in said and "`" not in said
    assert notice.convert_button.isVisible() and notice.convert_button.text() == "Convert this folder?"
    qtbot.keyClicks(window.generate_panel.prompt, "dusty drums")
    qtbot.mouseClick(window.generate_panel.generate_button, Qt.MouseButton.LeftButton)
    [request] = window.submitted
    assert request.bundle == working  # still generates with the model in use


def test_convert_this_folder_opens_the_model_dialogs_convert_with_it(qtbot, window, monkeypatch, tmp_path):
    from ui.app.model_dialog import ModelDialog

    folder = tmp_path / "some-checkpoint"
    folder.mkdir()
    pick(monkeypatch, folder)
    window.choose_bundle()
    qtbot.waitUntil(window.folder_notice.isVisible, timeout=5000)
    qtbot.mouseClick(window.folder_notice.convert_button, Qt.MouseButton.LeftButton)
    [dialog] = [d for d in window.findChildren(ModelDialog) if d.isVisible()]
    assert dialog.source.text() == str(folder)
    dialog.reject()


def test_a_damaged_bundle_is_refused_with_its_reason_and_no_convert(qtbot, window, monkeypatch, tmp_path):
    folder = tmp_path / "half-copied"
    folder.mkdir()
    (folder / "manifest.json").write_text("{ half a manifest")
    pick(monkeypatch, folder)
    window.choose_bundle()
    qtbot.waitUntil(window.folder_notice.isVisible, timeout=5000)
    assert window.settings.bundle == str(tmp_path / "bundle")
    assert "“half-copied” is a model bundle that cannot be used" in window.folder_notice.words.text()
    assert not window.folder_notice.convert_button.isVisible()


def test_a_folder_that_opens_becomes_the_model(qtbot, window, monkeypatch, tmp_path):
    folder = str(tmp_path / "riffusion-v1-int8")
    monkeypatch.setattr(window.controller, "check_bundle",
                        lambda path: window.controller.bundle_checked.emit(path, "", "int8"))
    pick(monkeypatch, folder)
    window.choose_bundle()
    assert window.settings.bundle == folder and window.loaded == [folder]
    assert not window.folder_notice.isVisible()
