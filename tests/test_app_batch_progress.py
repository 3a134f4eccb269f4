"""The batch window's bar reads as its words do (#26): at "0 of 3 loops" it was a third full (the running loop's
share) with the words at its top-left (shots 43, 44). The bar is the finished fraction, its words centred. The
real window and runner (no batch started: the runner's progress signal as it reports a batch's lines), in the
app's theme, read from the painted pixels."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication
from test_app_theme import contrast


@pytest.fixture
def batch(qtbot):
    from ui.app.batch_runner import BatchRunner
    from ui.app.batch_window import BatchWindow
    from ui.app.theme import apply_theme

    apply_theme(QApplication.instance(), "dark")
    runner = BatchRunner()
    window = BatchWindow(runner, lambda: Path("/tmp/exports"), lambda: "")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    QApplication.instance().setStyleSheet("")


def words_centre(bar) -> float:
    """The x of the middle of the bar's painted words, as a fraction of its width (where the painted pixels
    stand out from both the bar's groove and its chunk)."""
    image = bar.grab().toImage()
    groove = QColor.fromRgb(image.pixel(image.width() - 2, image.height() // 2))
    chunk = QColor.fromRgb(image.pixel(1, image.height() // 2))
    columns = [x for x in range(2, image.width() - 2)
               if any(contrast(QColor.fromRgb(image.pixel(x, y)), groove) > 1.5 and
                      contrast(QColor.fromRgb(image.pixel(x, y)), chunk) > 1.5 for y in range(image.height()))]
    assert columns, "no words painted on the bar"
    return (columns[0] + columns[-1]) / 2 / image.width()


@pytest.mark.parametrize(("finished", "fraction"), [(0, 0.33), (1, 0.5), (2, 0.9), (3, 1.0)])
def test_the_bar_is_the_finished_fraction_with_its_words_centred(qtbot, batch, finished, fraction):
    from ui.app.batch_runner import BatchProgress

    batch.runner.progress.emit(BatchProgress(total=3, finished=finished, label="test kicks (seed 1)",
                                             fraction=fraction, eta=12.0))
    QApplication.processEvents()
    bar = batch.progress
    assert bar.text() == f"{finished} of 3 loops"
    assert bar.value() == round(finished / 3 * bar.maximum())
    assert abs(words_centre(bar) - 0.5) < 0.06
