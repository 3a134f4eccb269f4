"""The three panes, side by side on a laptop or a desk, in one column in a strip beside the DAW.

Why one splitter that turns: the panes keep their widgets and state (a job's preview, the list's selection)
while the window is resized. Above `NARROW_WIDTH` the splitter lays them left to right. Below it the splitter
stands up with two parts: the prompt over the result in a column of their own that scrolls, and under it the
library, always on screen with room for four rows or more (library_pane.LIST_ROWS). The library is a sample
browser: a list of one row in a scroll inside the window's scroll (the first strip) could neither be browsed
nor seen while the prompt grew (the tempo notice, Advanced). The threshold sits above the side-by-side minimum,
so turning never makes the window grow."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QVBoxLayout, QWidget

NARROW_WIDTH = 960  # below this (the workspace's width), one column
SIDE_WIDTHS = (330, 440)  # generate and library, side by side, when there is room
SIDE_MINIMUMS = (280, 300)
LIBRARY_SHARE = 0.35  # of a fresh one-column layout's height, at the least (the handle moves it)


class Workspace(QSplitter):
    """generate | result | library, or (generate over result) over library; `turned` says which (True: one
    column). `column` is the scrolling part of the one-column layout."""

    turned = Signal(bool)

    def __init__(self, generate: QWidget, result: QWidget, library: QWidget) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.panes = (generate, result, library)
        for pane in self.panes:
            if pane.layout() is not None:  # the splitter's handles already part them: slim margins
                pane.layout().setContentsMargins(6, 4, 6, 4)
        generate.setMinimumWidth(SIDE_MINIMUMS[0])
        library.setMinimumWidth(SIDE_MINIMUMS[1])
        self.column = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.column.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.column.setMinimumHeight(80)  # a peek at the prompt, whatever the library asks
        inner = QWidget(objectName="panel")
        self._column_layout = QVBoxLayout(inner)
        self._column_layout.setContentsMargins(0, 0, 0, 0)
        self._column_layout.setSpacing(0)
        self.column.setWidget(inner)
        self.column.hide()
        self.setChildrenCollapsible(False)
        self.one_column = False
        self._side_by_side()
        self._fitted_width = 0

    def _side_by_side(self) -> None:
        for index, pane in enumerate(self.panes):
            self.insertWidget(index, pane)  # out of the column, if it was there
            self.setStretchFactor(index, (0, 1, 0)[index])
        self.column.hide()
        self.column.setParent(None)  # out of the splitter (kept, empty, for the next turn)
        self.setOrientation(Qt.Orientation.Horizontal)

    def _stacked(self) -> None:
        generate, result, _ = self.panes
        self._column_layout.addWidget(generate)
        self._column_layout.addWidget(result, 1)
        self.insertWidget(0, self.column)
        self.column.show()
        self.setOrientation(Qt.Orientation.Vertical)
        self.setStretchFactor(0, 1)
        self.setStretchFactor(1, 0)

    def minimumSizeHint(self) -> QSize:
        """One column's width whatever the layout now: the window may be made narrow, and this turns before
        its panes are laid out at that width (a side-by-side minimum would have refused the size)."""
        widths = [pane.minimumSizeHint().expandedTo(pane.minimumSize()).width() for pane in self.panes]
        return QSize(max(widths, default=0), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        one_column = event.size().width() < NARROW_WIDTH
        if one_column != self.one_column:
            self.one_column = one_column
            if one_column:
                self._stacked()
            else:
                self._side_by_side()
            self._fitted_width = 0
            self.turned.emit(one_column)
        super().resizeEvent(event)
        if not self._fitted_width:
            self._fitted_width = event.size().width()
            self.fit(event.size().width(), event.size().height())

    def bring_result_into_view(self) -> None:
        """In one column, scroll the column so the result pane's top (title and spectrogram) is on screen: a
        finished loop in the strip otherwise lands below the prompt, out of sight. Side by side it always is."""
        if self.one_column:
            result = self.panes[1]
            self.column.ensureVisible(0, result.y(), 0, min(result.height(), self.column.viewport().height()))

    def fit(self, width: int, height: int) -> None:
        """Sizes for a fresh layout: the side panes at their widths and the result the rest (side by side);
        stacked, the library `LIBRARY_SHARE` of the height (or its minimum, if more) and the column the rest."""
        if self.one_column:
            library = max(int(height * LIBRARY_SHARE), self.panes[2].minimumSizeHint().height())
            self.setSizes([max(height - library, 1), library])
        else:
            left, right = SIDE_WIDTHS
            self.setSizes([left, max(width - left - right, 300), right])
