"""The library as a Qt list model (rows = LibraryLoop, in the pane's order) and the row painter.

Each row carries its badges (draft, refined, riff, longer, variation; CLI; the batch collection) and says in its
tooltip what it came from ("refined from “warm keys · seed 9”"), so a draft and its refinement no longer
look alike. Dragging rows is Qt's own item-view drag: `mimeData` gives file URLs only (see drag.py), so a
multi-selection drags several WAVs at once. Thumbnails are loaded once per row, scaled on read."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImageReader, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ui.app.drag import file_mime_data
from ui.app.library import GONE_PARENT, LibraryLoop

SEPARATOR = "  ·  "  # between a row's details

LOOP_ROLE = Qt.ItemDataRole.UserRole + 1
BADGES_ROLE = Qt.ItemDataRole.UserRole + 2  # the row's badges, as badges() words them
THUMB = QSize(84, 44)
ROW_HEIGHT = THUMB.height() + 12  # a row: the thumbnail and its margins
BADGE_COLOURS = {"draft": "#8a90a0", "refined": "#3dbf7f", "riff": "#b07cff", "longer": "#3d9bff",
                 "variation": "#e0b040", "CLI": "#5a6070"}  # anything else (a batch collection): BATCH_COLOUR
BATCH_COLOUR = "#ff8a3d"
BADGE_INK = "#111111"  # a badge's word on its colour (and its pill on a selected row)
# What each kind came from, in the tooltip: "refined from “warm keys · seed 9”".
FROM_WORDS = {"refined": "refined from", "riff": "riff on", "longer": "longer version of",
              "variation": "more like"}


class LibraryModel(QAbstractListModel):
    def __init__(self) -> None:
        super().__init__()
        self.loops: list[LibraryLoop] = []
        self._thumbs: dict[str, QPixmap] = {}
        self.colour_map = "heat"

    def set_colour_map(self, name: str) -> None:
        self.beginResetModel()
        self.colour_map = name
        self._thumbs.clear()
        self.endResetModel()

    def set_loops(self, loops: list[LibraryLoop]) -> None:
        self.beginResetModel()
        self.loops = list(loops)
        self.endResetModel()

    def row_of(self, job: str) -> int:
        return next((row for row, loop in enumerate(self.loops) if loop.job == job), -1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.loops)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.loops):
            return None
        loop = self.loops[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return loop.prompt
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(loop)
        if role == BADGES_ROLE:
            return badges(loop)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(loop)
        if role == LOOP_ROLE:
            return loop
        return None

    def thumbnail(self, loop: LibraryLoop) -> QPixmap:
        pixmap = self._thumbs.get(loop.job)
        if pixmap is None:
            from ui.app.spectrogram_view import coloured

            if loop.image and Path(loop.image).is_file():
                reader = QImageReader(loop.image)
                reader.setScaledSize(THUMB)
                pixmap = QPixmap.fromImage(coloured(reader.read(), self.colour_map))
            else:  # no painting kept (a loop the CLI made in its own process): an empty tile, not a read error
                pixmap = QPixmap(THUMB)
                pixmap.fill(Qt.GlobalColor.transparent)
            self._thumbs[loop.job] = pixmap
        return pixmap

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes) -> QMimeData:
        rows = sorted({index.row() for index in indexes if index.isValid()})
        return file_mime_data([self.loops[row].drag_file for row in rows])


class LoopDelegate(QStyledItemDelegate):
    """A row like a sample browser's: thumbnail, prompt, then seed / length / tempo / rating / favourite."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(THUMB.width() + 120, ROW_HEIGHT)  # the width: the view's (rows never scroll sideways)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        loop: LibraryLoop = index.data(LOOP_ROLE)
        painter.save()
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(option.rect, palette.highlight())
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(option.rect, palette.alternateBase())
        rect = option.rect.adjusted(6, 6, -6, -6)
        thumb = index.data(Qt.ItemDataRole.DecorationRole)
        thumb_rect = QRect(rect.left(), rect.top(), THUMB.width(), THUMB.height())
        if isinstance(thumb, QPixmap) and not thumb.isNull():
            painter.drawPixmap(thumb_rect, thumb)
        text_rect = rect.adjusted(THUMB.width() + 10, 0, 0, 0)
        color = palette.highlightedText().color() if selected else palette.text().color()
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(color)
        metrics = painter.fontMetrics()
        small = QFont(option.font)
        small.setPointSizeF(max(option.font.pointSizeF() * 0.8, 6.0))
        pills = _badge_rects(badges(loop), QFontMetrics(small), text_rect.right() - 22, text_rect.top() + 2)
        room = text_rect.width() - 22 - sum(rect.width() + 4 for _, rect in pills)
        title = metrics.elidedText(loop.prompt, Qt.TextElideMode.ElideRight, max(room, 24))
        painter.drawText(text_rect.adjusted(0, 2, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, title)
        painter.setFont(small)
        for word, rect in pills:
            # A selected row is the accent, as a pack's badge is (and too close to the others): there the pill
            # gets a dark ring, so its shape stands out and it still wears its colour.
            painter.setPen(QPen(QColor(BADGE_INK), 2) if selected else Qt.PenStyle.NoPen)
            painter.setBrush(QColor(BADGE_COLOURS.get(word, BATCH_COLOUR)))
            painter.drawRoundedRect(rect, 4, 4)
            painter.setPen(QColor(BADGE_INK))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, word)
        painter.setFont(bold)
        if loop.favourite:
            painter.setPen(QColor("#ff5c8a"))
            painter.drawText(text_rect.adjusted(0, 2, 0, 0), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
                             "♥")
        painter.setFont(option.font)
        dim = QColor(color)
        dim.setAlpha(150)
        painter.setPen(dim)
        details = fitted_details(detail_parts(loop), painter.fontMetrics(), text_rect.width())
        painter.drawText(text_rect.adjusted(0, 0, 0, -2), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                         details)
        painter.restore()


def badges(loop: LibraryLoop) -> list[str]:
    """The words on a row's badges: its kind (and "draft" for a loop at the draft speed of another kind), then
    where it was made when not in the app (CLI, or its batch collection)."""
    from ui.app.library_drafts import is_draft

    words = [loop.kind] if loop.kind else []
    if loop.kind != "draft" and is_draft(loop.settings):
        words.append("draft")
    if loop.origin == "cli":
        words.append("CLI")
    elif loop.origin == "batch":
        words.append(loop.collection or "batch")
    return words


def came_from(loop: LibraryLoop) -> str:
    """What the loop came from, in words ("refined from “warm keys · seed 9”"), or "" for a new loop."""
    if not loop.parent_label or loop.kind not in FROM_WORDS:
        return ""
    quoted = loop.parent_label if loop.parent_label == GONE_PARENT else f"“{loop.parent_label}”"
    return f"{FROM_WORDS[loop.kind]} {quoted}"


def tooltip(loop: LibraryLoop) -> str:
    """The row's tooltip: the prompt, what it came from, where it was made, its key, and the file a drag hands out."""
    from plugin.musical_key import MusicalKey

    lines = [loop.prompt]
    if came_from(loop):
        lines.append(came_from(loop))
    if loop.origin == "cli":
        lines.append("made with riffstudio generate")
    elif loop.origin == "batch":
        lines.append(f"batch render of {loop.collection or 'a preset file'}")
    if loop.musical_key:
        lines.append(f"key: {MusicalKey.parse(loop.musical_key).words}")
    lines.append(loop.drag_file or "not exported")
    return "\n".join(lines)


def _badge_rects(words: list[str], metrics: QFontMetrics, right: int, top: int) -> list[tuple[str, QRect]]:
    """The badges' rectangles, right-aligned before `right` on the title line, in reading order."""
    rects, x = [], right
    for word in reversed(words):
        width = metrics.horizontalAdvance(word) + 8
        x -= width
        rects.append((word, QRect(x, top + 1, width, metrics.height() + 2)))
        x -= 4
    return rects[::-1]


def fitted_details(parts: list[str], metrics: QFontMetrics, width: int) -> str:
    """As many whole details as fit `width`, from the first (length, tempo, bars, key come before the seed and the
    age): a detail cut to "1 …" or "j…" says nothing; only a first detail too long alone is elided."""
    for count in range(len(parts), 0, -1):
        line = SEPARATOR.join(parts[:count])
        if metrics.horizontalAdvance(line) <= width:
            return line
    return metrics.elidedText(parts[0] if parts else "", Qt.TextElideMode.ElideRight, width)


def detail_parts(loop: LibraryLoop) -> list[str]:
    """A row's details, most telling first."""
    from ui.app.loop_length import loop_length

    parts = [f"{loop_length(loop).seconds:.1f} s"]
    if loop.bpm:
        parts.append(f"{loop.bpm:g} bpm")
    if loop.bars:
        parts.append(f"{loop.bars:g} bar" + ("" if loop.bars == 1 else "s"))
    if loop.musical_key:
        parts.append(loop.musical_key)
    if loop.rating:
        parts.append("★" * loop.rating + "☆" * (5 - loop.rating))
    parts.append(f"seed {loop.seed}")
    parts.append(_age(loop.created))
    return parts


def _age(created: float) -> str:
    seconds = max(time.time() - created, 0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return time.strftime("%d %b", time.localtime(created))
