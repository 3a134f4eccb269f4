"""The status bar in plain words: one short line, elided to the window's width, its details in a tooltip.

Why: messages such as the model's load report carry a provider's whole explanation; in the bar they cut off
mid-word and pushed at the window's width (issue #26). The line says what happened; hovering says why."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QStatusBar, QStyle, QStyleOption, QWidget

DEVICES = {"qnn": "NPU"}  # every other provider runs on the CPU


def model_ready_words(provider: str, precision: str) -> str:
    """"Model ready · runs on the CPU (int8)": where the model runs and at what precision, nothing more (the
    engine's full sentence, with its reasons, goes to the tooltip)."""
    device = DEVICES.get(provider, "CPU")
    shown = precision if precision and precision != "qnn" else ""
    return f"Model ready · runs on the {device}" + (f" ({shown})" if shown else "")


class StatusLine(QStatusBar):
    """A QStatusBar whose message is drawn elided (never clipped mid-word) with the whole message, or the
    details given with it, as the tooltip. `currentMessage()` stays the whole message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._details: dict[str, str] = {}
        self.messageChanged.connect(self._update_tooltip)

    def show_message(self, text: str, details: str = "") -> None:
        """`text` in the bar; `details` (the long explanation) in its tooltip."""
        self._details = {text: details} if details else {}
        self.showMessage(text)
        self._update_tooltip(text)

    def _update_tooltip(self, text: str) -> None:
        self.setToolTip(self._details.get(text, text))

    def paintEvent(self, event) -> None:
        text = self.currentMessage()
        if not text:
            super().paintEvent(event)
            return
        painter = QPainter(self)
        option = QStyleOption()
        option.initFrom(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelStatusBar, option, painter, self)
        room = self.rect().adjusted(6, 0, -6, 0)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(room, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room.width()))
