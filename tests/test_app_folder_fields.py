"""A long folder path in Export… and Settings reads at both ends (#26): the fields cut it at the left
("ome/Music/Riffstudio", shots 33 and 56). Shown elided in the middle, the whole path in the tooltip, and what the
dialog returns is the whole path. The real dialogs, offscreen, in the app's theme."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_fixtures import engine_home
from PySide6.QtWidgets import QApplication, QLineEdit

LONG = "/home/producer/Music/Riffstudio/sessions/2026 december/a long session name/exports for the mix"


@pytest.fixture
def themed():
    from ui.app.theme import apply_theme

    apply_theme(QApplication.instance(), "dark")
    yield
    QApplication.instance().setStyleSheet("")


def shown_whole_ends(qtbot, field: QLineEdit, path: str) -> None:
    """`field`, as its dialog opens (not being edited), shows the path's start and its last folder's name, and
    fits its room."""
    QApplication.processEvents()
    assert not field.hasFocus()  # a dialog opening on the field would show it scrolled to its end, as before
    shown = field.shown_text()
    assert shown != path and "…" in shown
    assert shown.startswith("/home/") and shown.endswith("exports for the mix")
    assert field.fontMetrics().horizontalAdvance(shown) <= field.text_room().width()
    assert field.toolTip() == path


def export_dialog_with_a_long_folder(qtbot, tmp_path):
    """Export… shown, its folder field holding LONG."""
    from ui.app.export_dialog import ExportChoice, ExportDialog

    dialog = ExportDialog(ExportChoice(folder=tmp_path), 1)
    qtbot.addWidget(dialog)
    dialog.folder.setText(LONG)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_the_export_folder_reads_at_both_ends(qtbot, themed, tmp_path):
    dialog = export_dialog_with_a_long_folder(qtbot, tmp_path)
    dialog.resize(420, dialog.height())
    QApplication.processEvents()
    shown_whole_ends(qtbot, dialog.folder, LONG)
    assert str(dialog.value().folder) == LONG


def test_the_settings_folders_read_at_both_ends(qtbot, monkeypatch, themed):
    from ui.app.settings import AppSettings
    from ui.app.settings_dialog import SettingsDialog

    with engine_home(monkeypatch):
        dialog = SettingsDialog(AppSettings(export_dir=LONG, models_dir=LONG))
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        dialog.resize(420, dialog.height())
        QApplication.processEvents()
        for field in (dialog.export_dir, dialog.models_dir):
            shown_whole_ends(qtbot, field, LONG)
        assert (dialog.value().export_dir, dialog.value().models_dir) == (LONG, LONG)


def test_the_whole_path_is_edited_when_focused(qtbot, themed, tmp_path):
    """Typing works on the whole path: focused, the field shows it as a line edit does."""
    dialog = export_dialog_with_a_long_folder(qtbot, tmp_path)
    dialog.activateWindow()
    dialog.folder.setFocus()
    qtbot.waitUntil(dialog.folder.hasFocus)
    assert dialog.folder.shown_text() == LONG
    qtbot.keyClicks(dialog.folder, "/2")
    assert str(dialog.value().folder) == LONG + "/2"


@pytest.mark.parametrize(("path", "ends"), [
    (LONG, "…/exports for the mix"),
    ("C:\\Users\\producer\\Music\\Riffstudio\\exports for the mix", "…\\exports for the mix"),
    ("/" + "a-folder-name-longer-than-any-field-could-show" * 3, "show"),
])
def test_a_path_keeps_its_start_and_its_last_folder(qtbot, path, ends):
    from PySide6.QtGui import QFontMetrics

    from ui.app.folder_field import elided_path

    metrics = QFontMetrics(QApplication.font())
    width = metrics.horizontalAdvance("/home/producer/…/exports for the mix")
    shown = elided_path(path, width, metrics)
    assert shown.endswith(ends) and shown[:3] == path[:3] and "…" in shown
    assert metrics.horizontalAdvance(shown) <= width
    assert elided_path(path, metrics.horizontalAdvance(path), metrics) == path


def test_the_batch_windows_paths_read_at_both_ends(qtbot, themed):
    """The batch window's preset file and its loops' folder, the same way."""
    from ui.app.batch_runner import BatchRunner
    from ui.app.batch_window import BatchWindow

    batch = BatchWindow(BatchRunner(), lambda: Path(LONG), lambda: "")
    qtbot.addWidget(batch)
    batch.set_presets(Path(LONG) / "pack.toml")
    batch.show()
    qtbot.waitExposed(batch)
    batch.resize(420, batch.height())
    QApplication.processEvents()
    assert not batch.presets.hasFocus() and not batch.out.hasFocus()
    assert batch.presets.shown_text().endswith("…/pack.toml") and batch.presets.toolTip().endswith("/pack.toml")
    assert batch.out.shown_text().startswith("/home/") and batch.out.text() == str(Path(LONG).parent / "pack")
