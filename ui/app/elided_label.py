"""A one-line label that fits the room it is given: its text elided with "…", the whole text in its tooltip.

Why not a plain QLabel: a QLabel asks for its text's full width, so a long bundle name or message widened the
window past a laptop's screen (issue #26). This one asks for a few characters and shows what fits."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """One line of text, elided where it does not fit; its size hints never grow with the text."""

    def __init__(self, text: str = "", parent: QWidget | None = None, *, objectName: str = "",
                 elide: Qt.TextElideMode = Qt.TextElideMode.ElideRight) -> None:
        super().__init__(text, parent, objectName=objectName)
        self.elide = elide
        self._own_tooltip = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        super().setToolTip(self._own_tooltip or text)

    def setToolTip(self, text: str) -> None:
        """A tooltip of its own (details the line leaves out); empty: the whole text."""
        self._own_tooltip = text
        super().setToolTip(text or self.text())

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance("Mm…"), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        """The text's width up to 40 characters' worth: enough to read, never a window's worth."""
        metrics = self.fontMetrics()
        wanted = min(metrics.horizontalAdvance(self.text()), metrics.averageCharWidth() * 40)
        margins = self.contentsMargins()
        return QSize(wanted + margins.left() + margins.right() + 2, super().sizeHint().height())

    def elided_text(self) -> str:
        """What is shown: the text as it fits the label's width now."""
        return self.fontMetrics().elidedText(self.text(), self.elide, self.contentsRect().width())

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment() | Qt.AlignmentFlag.AlignVCenter),
                         self.elided_text())
