"""A folder's path in a dialog (Export…, Settings): typed like any line edit, shown while not being edited with
its middle elided, so the start and the folder's own name at the end both read; the whole path in its tooltip.

Why: a plain line edit scrolls a long path to its end and cuts it at the left ("ome/Music/Riffstudio"), so
neither the drive nor the first folder can be read."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QLineEdit, QStyle, QStyleOptionFrame, QWidget

TEXT_MARGIN = 2  # QLineEdit's own space between its frame's contents and the text


def elided_path(path: str, width: int, metrics: QFontMetrics) -> str:
    """`path` in `width` pixels: whole if it fits, else as much of its start as fits, "…" and its last folder's
    name whole ("/home/pro…/exports for the mix"); a name too long even for that is elided in its middle."""
    if metrics.horizontalAdvance(path) <= width:
        return path
    cut = max(path.rstrip("/\\").rfind("/"), path.rstrip("/\\").rfind("\\"))
    tail = path[cut:] if cut > 0 else ""
    if tail and metrics.horizontalAdvance("…" + tail) <= width:
        room = width - metrics.horizontalAdvance("…" + tail)
        head = path[:cut]
        while head and metrics.horizontalAdvance(head) > room:
            head = head[:-1]
        return head + "…" + tail
    return metrics.elidedText(path, Qt.TextElideMode.ElideMiddle, width)


class FolderField(QLineEdit):
    def __init__(self, path: str = "", parent: QWidget | None = None, *, objectName: str = "") -> None:
        super().__init__(path, parent, objectName=objectName)
        self.textChanged.connect(self._tooltip)
        self._tooltip(path)

    def _tooltip(self, path: str) -> None:
        self.setToolTip(path)

    def sizeHint(self) -> QSize:
        """Room for about 40 characters: most paths whole, a dialog still far narrower than a laptop's screen."""
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.fontMetrics().averageCharWidth() * 40), hint.height())

    def text_room(self) -> QRect:
        """Where the style lets the text go (inside the frame, padding and text margins)."""
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        rect = self.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, self)
        margins = self.textMargins()
        return rect.adjusted(margins.left() + TEXT_MARGIN, margins.top(), -margins.right() - TEXT_MARGIN,
                             -margins.bottom())

    def shown_text(self) -> str:
        """The path as shown now: whole while being edited, else elided before its last folder to fit."""
        if self.hasFocus():
            return self.text()
        return elided_path(self.text(), self.text_room().width(), self.fontMetrics())

    def paintEvent(self, event) -> None:
        shown = self.shown_text()
        if shown == self.text():
            super().paintEvent(event)
            return
        painter = QPainter(self)
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelLineEdit, option, painter, self)
        group = QPalette.ColorGroup.Normal if self.isEnabled() else QPalette.ColorGroup.Disabled
        painter.setPen(self.palette().color(group, QPalette.ColorRole.Text))
        painter.drawText(self.text_room(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown)
