"""The library's rows read on every background (#26): a batch collection's badge ("pack") is the accent's orange,
and on a selected row (the accent too) it vanished into the row (shot 46). Read from the pixels the real list
paints, offscreen, in the app's theme."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication
from test_app_theme import contrast

from ui.app.library import LibraryLoop


def loop(job: str, **fields) -> LibraryLoop:
    return LibraryLoop(job=job, prompt="punchy kick drum", negative="", settings={}, seed=2, bundle_identity="",
                       folder="", audio="", image="", export="", duration_s=4.8, bpm=100.0, bars=2.0, rating=0,
                       favourite=False, created=0.0, **fields)


def painted_row(qtbot, pane, item: LibraryLoop, *, selected: bool) -> QImage:
    pane.set_loops([item, loop("other")])
    view = pane.library_view
    view.selectionModel().clearSelection()
    view.clearFocus()
    index = pane.library_model.index(0)
    if selected:
        view.setCurrentIndex(index)
    else:
        view.setCurrentIndex(pane.library_model.index(1))
    QApplication.processEvents()
    return view.viewport().grab(view.visualRect(index)).toImage()


@pytest.fixture
def pane(qtbot):
    from ui.app.library_pane import LibraryPane
    from ui.app.theme import apply_theme

    apply_theme(QApplication.instance(), "dark")
    pane = LibraryPane()
    qtbot.addWidget(pane)
    pane.resize(440, 400)
    pane.show()
    qtbot.waitExposed(pane)
    yield pane
    QApplication.instance().setStyleSheet("")


def badge_edge(with_badge: QImage, without: QImage) -> QColor:
    """The commonest colour on the edge of the box where the two rows differ: the badge's pill's outline (its
    fill, or a ring around it), which is what sets its shape off from the row."""
    points = [(x, y) for y in range(with_badge.height()) for x in range(with_badge.width())
              if with_badge.pixel(x, y) != without.pixel(x, y)]
    assert points, "no badge painted"
    left, right = min(x for x, _ in points), max(x for x, _ in points)
    top, bottom = min(y for _, y in points), max(y for _, y in points)
    edge = [(x, y) for x in range(left, right + 1) for y in (top, bottom)] + \
           [(x, y) for y in range(top, bottom + 1) for x in (left, right)]
    counts: dict[int, int] = {}
    for x, y in edge:
        counts[with_badge.pixel(x, y)] = counts.get(with_badge.pixel(x, y), 0) + 1
    return QColor.fromRgb(max(counts, key=counts.get))


@pytest.mark.parametrize("selected", [False, True])
@pytest.mark.parametrize("badge", [{"origin": "batch", "collection": "pack"}, {"kind": "riff"}, {"kind": "draft"},
                                   {"origin": "cli"}])
def test_a_badge_stands_out_from_its_row_selected_or_not(qtbot, pane, badge, selected):
    with_badge = painted_row(qtbot, pane, loop("badged", **badge), selected=selected)
    plain = painted_row(qtbot, pane, loop("badged"), selected=selected)
    row_colour = QColor.fromRgb(plain.pixel(plain.width() - 3, 3))
    assert contrast(badge_edge(with_badge, plain), row_colour) >= 2.5
