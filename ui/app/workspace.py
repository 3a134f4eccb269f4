"""The three panes, side by side on a laptop or a desk, in one column in a strip beside the DAW.

Why one splitter that turns: the panes keep their widgets and state (a job's preview, the list's selection)
while the window is resized; below `NARROW_WIDTH` the splitter lays them top to bottom (prompt, result,
library), above it left to right. The threshold sits above the side-by-side minimum, so turning never makes
the window grow."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QSplitter, QWidget

NARROW_WIDTH = 960  # below this (the workspace's width), one column
SIDE_WIDTHS = (330, 440)  # generate and library, side by side, when there is room
SIDE_MINIMUMS = (280, 300)


class Workspace(QSplitter):
    """generate | result | library, or stacked; `turned` says which (True: one column)."""

    turned = Signal(bool)

    def __init__(self, generate: QWidget, result: QWidget, library: QWidget) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        for pane in (generate, result, library):
            self.addWidget(pane)
            if pane.layout() is not None:  # the splitter's handles already part them: slim margins
                pane.layout().setContentsMargins(6, 4, 6, 4)
        generate.setMinimumWidth(SIDE_MINIMUMS[0])
        library.setMinimumWidth(SIDE_MINIMUMS[1])
        for index, stretch in enumerate((0, 1, 0)):
            self.setStretchFactor(index, stretch)
        self.setChildrenCollapsible(False)
        self.one_column = False
        self._fitted_width = 0

    def minimumSizeHint(self) -> QSize:
        """One column's width whatever the layout now: the window may be made narrow, and this turns before
        its panes are laid out at that width (a side-by-side minimum would have refused the size)."""
        widths = [self.widget(index).minimumSizeHint().expandedTo(self.widget(index).minimumSize()).width()
                  for index in range(self.count())]
        return QSize(max(widths, default=0), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        one_column = event.size().width() < NARROW_WIDTH
        if one_column != self.one_column:
            self.one_column = one_column
            self.setOrientation(Qt.Orientation.Vertical if one_column else Qt.Orientation.Horizontal)
            self._fitted_width = 0
            self.turned.emit(one_column)
        super().resizeEvent(event)
        if not self._fitted_width:
            self._fitted_width = event.size().width()
            self.fit(event.size().width(), event.size().height())

    def fit(self, width: int, height: int) -> None:
        """Sizes for a fresh layout: the side panes at their widths and the result the rest (side by side);
        stacked, the prompt at its natural height, the library a fifth, the result the rest."""
        if self.one_column:
            generate = self.widget(0).sizeHint().height()
            library = max(height // 5, self.widget(2).minimumSizeHint().height())
            self.setSizes([generate, max(height - generate - library, 1), library])
        else:
            left, right = SIDE_WIDTHS
            self.setSizes([left, max(width - left - right, 300), right])
