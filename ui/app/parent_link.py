"""The line under a loop's title that says what it came from ("refined from “warm keys · seed 9”") and, when that
loop is still in the library, takes the producer there on a click.

Why a wrapped label and not a button: the parent's prompt can be as long as any prompt, and the result pane must
keep every word at the narrow width beside a DAW (#26); a button's words cannot wrap, a label's can."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel

from ui.app.library import LibraryLoop
from ui.app.library_model import came_from


class ParentLink(QLabel):
    """What the shown loop came from, wrapped; `parent_requested(job)` on a click when the parent is listed."""

    parent_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__("", objectName="parent_link")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)  # the whole line is the link
        self.parent_job = ""  # the parent to go to on a click ("": none, or not in the library)
        self.words = ""  # the line as a producer reads it (without its markup)
        self.setVisible(False)

    def show_parent(self, loop: LibraryLoop | None) -> None:
        """`loop`'s parent in words (hidden for a new loop); a link when the parent is in the library."""
        words = self.words = came_from(loop) if loop is not None else ""
        self.parent_job = loop.parent if words and loop is not None and loop.parent_listed else ""
        self.setVisible(bool(words))
        if self.parent_job:
            self.setText(f"<a href='#'>{html.escape(words)}</a>")
            self.setCursor(Qt.CursorShape.PointingHandCursor)
            self.setToolTip("Select it in the library")
        else:
            self.setText(html.escape(words))
            self.unsetCursor()
            riffed_file = words and loop is not None and Path(loop.parent).is_absolute()
            self.setToolTip(loop.parent if riffed_file else "")  # a riff on a file: where that file is

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.parent_job and self.rect().contains(event.position()
                                                                                                     .toPoint()):
            self.parent_requested.emit(self.parent_job)
        super().mouseReleaseEvent(event)

