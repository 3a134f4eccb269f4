"""The theme keeps every word readable (#26): a drop-down list's popup draws its current choice in a colour that
stands out from the row behind it (the dark theme drew the current row's words in the highlight's near-black on
the list's near-black background: a blank line in Sort, bars, key and Export's four lists). Read from the pixels
the real popup paints, offscreen, in both themes."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QComboBox


def luminance(colour: QColor) -> float:
    """WCAG's relative luminance of an sRGB colour."""
    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(colour.redF()) + 0.7152 * linear(colour.greenF()) + 0.0722 * linear(colour.blueF())


def contrast(first: QColor, second: QColor) -> float:
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def words_contrast(image: QImage) -> float:
    """The contrast between a painted row's background (the commonest colour of its top line, above the words)
    and its most distant pixel (the words' strokes): near 1 when the words are painted in the background's
    colour."""
    top = [image.pixel(x, 0) for x in range(image.width())]
    background = QColor.fromRgb(max(set(top), key=top.count))
    pixels = {image.pixel(x, y) for y in range(image.height()) for x in range(image.width())}
    return max(contrast(background, QColor.fromRgb(pixel)) for pixel in pixels)


def painted_row(view, index) -> QImage:
    """The pixels of `index`'s row as the popup paints them (its rect can reach past the viewport: cut there)."""
    rect = view.visualRect(index).intersected(view.viewport().rect())
    assert rect.height() > 0 and rect.width() > 0
    return view.viewport().grab(rect).toImage()


def current_row_contrast(qtbot, combo: QComboBox) -> float:
    """Open `combo`'s popup and read the pixels of its current row."""
    combo.show()
    qtbot.waitExposed(combo)
    combo.showPopup()
    view = combo.view()
    qtbot.waitUntil(lambda: view.isVisible())
    QApplication.processEvents()
    try:
        return words_contrast(painted_row(view, combo.model().index(combo.currentIndex(), 0)))
    finally:
        combo.hidePopup()


@pytest.fixture(params=["dark", "light"])
def themed(request):
    from ui.app.theme import apply_theme

    apply_theme(QApplication.instance(), request.param)
    yield request.param
    QApplication.instance().setStyleSheet("")


def test_the_library_lists_show_their_current_choice(qtbot, themed):
    from ui.app.library_pane import LibraryPane

    pane = LibraryPane()
    qtbot.addWidget(pane)
    pane.filters_toggle.setChecked(True)
    for combo in (pane.sort, pane.bars, pane.key):
        assert current_row_contrast(qtbot, combo) >= 3, combo.objectName()


def test_the_export_lists_show_their_current_choice(qtbot, themed, tmp_path):
    from ui.app.export_dialog import ExportChoice, ExportDialog

    dialog = ExportDialog(ExportChoice(folder=tmp_path), 1)
    qtbot.addWidget(dialog)
    dialog.show()
    for combo in (dialog.audio_format, dialog.sample_rate, dialog.bit_depth, dialog.loudness):
        assert current_row_contrast(qtbot, combo) >= 3, combo.objectName()


def test_a_hovered_row_keeps_its_words_too(qtbot, themed):
    """The row under the pointer (what the popup highlights while choosing) is as readable as the current one."""
    from ui.app.library_pane import LibraryPane

    pane = LibraryPane()
    qtbot.addWidget(pane)
    combo = pane.sort
    combo.show()
    qtbot.waitExposed(combo)
    combo.showPopup()
    view = combo.view()
    qtbot.waitUntil(lambda: view.isVisible())
    other = combo.model().index(2, 0)
    view.selectionModel().setCurrentIndex(other, view.selectionModel().SelectionFlag.ClearAndSelect)
    QApplication.processEvents()
    try:
        assert words_contrast(painted_row(view, other)) >= 3
    finally:
        combo.hidePopup()


def test_a_link_in_a_label_reads_on_the_window(qtbot, themed):
    """The result header's "refined from …" is a link: drawn in the palette's link colour, which must stand out
    from the window behind it (Qt's default dark blue on the dark theme's near-black did not)."""
    from PySide6.QtGui import QPalette

    palette = QApplication.instance().palette()
    assert contrast(palette.color(QPalette.ColorRole.Link), palette.color(QPalette.ColorRole.Window)) >= 4.5


def test_a_toggle_reads_as_a_button_and_shows_when_it_is_on(qtbot, themed):
    """"fits" looked like plain text when off (found trying the app): the library's toggles have an edge, and
    turned on they are painted in the accent."""
    from ui.app.library_pane import LibraryPane

    pane = LibraryPane()
    qtbot.addWidget(pane)
    pane.filters_toggle.setChecked(True)
    pane.show()
    qtbot.waitExposed(pane)
    fits = pane.fits
    from ui.app.theme import DARK, LIGHT

    off = fits.grab().toImage()
    border = (DARK if themed == "dark" else LIGHT)["border"]
    assert QColor.fromRgb(off.pixel(0, off.height() // 2)).name() == QColor(border).name()
    fits.setChecked(True)
    on = fits.grab().toImage()
    from ui.app.theme import ACCENT

    assert QColor.fromRgb(on.pixel(on.width() // 2, 3)).name() == QColor(ACCENT).name()
