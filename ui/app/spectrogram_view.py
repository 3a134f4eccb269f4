"""The result as the model painted it: the spectrogram image, low frequencies at the bottom (riffusion's
images are stored that way), a Hz axis on the mel scale, a time axis (seconds, or bars|beats at a BPM),
zoom (wheel / Ctrl+wheel), scroll (Shift+wheel), a playhead, click to seek, press-and-drag to the DAW; on
the grid, the span the loop was cut from (`region`) lit between two lines, the rest shaded.

It only paints and forwards intent (seek_requested, drag_requested); it never reads audio."""

from __future__ import annotations

import itertools

from PySide6.QtCore import QPoint, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

from engine.codec.params import SpectrogramParams
from ui.app.axes import column_seconds, frequency_label_order, frequency_ticks, time_ticks, unclashing

LEFT, BOTTOM, TOP = 44, 22, 6
EMPTY_MESSAGE = "Type a prompt and press Ctrl+Enter. Your loop's spectrogram appears here."
NO_PAINTING_MESSAGE = ("No spectrogram was kept for this loop (the CLI made it in its own process): play it and drag "
                       "it from the library as any other.")

PARAMS = SpectrogramParams()
COLOUR_MAPS = ("heat", "painted")
REGION_COLOUR = QColor(90, 220, 160)  # the loop region's edges: apart from the heat map's reds and the playhead


def _heat_table() -> list[int]:
    """Pixel value -> colour. Riffusion paints loud as dark (pixel = 255 - 255 (mel/max)^0.25); "heat" maps
    the same pixels, one lookup each, to dark-is-quiet colours that read on a dark screen."""
    stops = [(0.0, (8, 8, 14)), (0.35, (70, 18, 90)), (0.6, (190, 50, 60)), (0.8, (250, 140, 40)),
             (1.0, (255, 245, 200))]
    table = []
    for pixel in range(256):
        energy = 1.0 - pixel / 255.0
        for (x0, c0), (x1, c1) in itertools.pairwise(stops):
            if energy <= x1:
                t = (energy - x0) / (x1 - x0)
                table.append(QColor(*(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))).rgb())
                break
    return table


HEAT = _heat_table()


def coloured(image: QImage, colour_map: str) -> QImage:
    """The painted image through a colour lookup (grey images only; previews are RGB and shown as they are)."""
    if colour_map == "painted" or image.isNull() or not image.isGrayscale():
        return image
    grey = image.convertToFormat(QImage.Format.Format_Grayscale8)
    indexed = QImage(grey.constBits(), grey.width(), grey.height(), grey.bytesPerLine(), QImage.Format.Format_Indexed8)
    indexed.setColorTable(HEAT)
    return indexed.copy()


class SpectrogramView(QWidget):
    seek_requested = Signal(float)  # seconds
    drag_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("spectrogram")
        self.setMinimumHeight(140)  # room for the axes; fits one column beside a DAW
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.image = QImage()
        self.painted = QImage()
        self.colour_map = "heat"
        self.message = EMPTY_MESSAGE
        self.bpm: float | None = None
        self.playhead_s: float | None = None
        self.region: tuple[float, float] | None = None  # seconds of the image the DAW file was cut from
        self.zoom = 1.0  # 1 = the whole loop fits
        self.offset_s = 0.0
        self.is_preview = False
        self._press: QPoint | None = None

    # -- state from the window ------------------------------------------------------------------------

    def set_image(self, image: QImage, *, preview: bool = False, bpm: float | None = None,
                  region: tuple[float, float] | None = None) -> None:
        self.painted = image
        self.image = coloured(image, self.colour_map)
        self.is_preview = preview
        self.bpm = bpm
        self.region = None if preview else region
        if not preview:
            self.zoom, self.offset_s = 1.0, 0.0
        self.update()

    def set_colour_map(self, name: str) -> None:
        self.colour_map = name
        self.image = coloured(self.painted, name)
        self.update()

    def clear(self, message: str) -> None:
        self.image = QImage()
        self.painted = QImage()
        self.colour_map = "heat"
        self.message = message
        self.playhead_s = None
        self.region = None
        self.update()

    def set_playhead(self, seconds: float | None) -> None:
        self.playhead_s = seconds
        self.update()

    @property
    def duration_s(self) -> float:
        if self.image.isNull():
            return 0.0
        columns = self.image.width() * (8 if self.is_preview else 1)
        return columns * column_seconds(PARAMS)

    def _plot(self) -> QRectF:
        return QRectF(LEFT, TOP, max(self.width() - LEFT - 8, 10), max(self.height() - TOP - BOTTOM, 10))

    def _visible(self) -> tuple[float, float]:
        span = self.duration_s / self.zoom
        start = min(max(self.offset_s, 0.0), max(self.duration_s - span, 0.0))
        return start, start + span

    def seconds_at(self, x: float) -> float:
        plot = self._plot()
        start, end = self._visible()
        return start + (x - plot.left()) / plot.width() * (end - start)

    # -- painting -------------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.base())
        plot = self._plot()
        if self.image.isNull():
            painter.setPen(palette.placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            return
        start, end = self._visible()
        total = self.duration_s or 1.0
        source = QRectF(start / total * self.image.width(), 0, (end - start) / total * self.image.width(),
                        self.image.height())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(plot, self.image, source)
        painter.setFont(self.label_font())
        text = palette.text().color()
        faint = QColor(text)
        faint.setAlpha(60)
        for fraction, _ in frequency_ticks(PARAMS):
            y = plot.bottom() - fraction * plot.height()
            painter.setPen(QPen(faint, 1))
            painter.drawLine(int(plot.left()), int(y), int(plot.right()), int(y))
        for seconds, _, major in time_ticks(start, end, bpm=self.bpm):
            x = plot.left() + (seconds - start) / max(end - start, 1e-9) * plot.width()
            painter.setPen(QPen(faint if not major else QColor(text.red(), text.green(), text.blue(), 110), 1))
            painter.drawLine(int(x), int(plot.top()), int(x), int(plot.bottom() + (5 if major else 2)))
        painter.setPen(text)
        for rect, label, alignment in self.axis_labels():
            painter.drawText(rect, alignment, label)
        self._paint_region(painter, plot, start, end)
        if self.is_preview:
            painter.setPen(palette.highlight().color())
            painter.drawText(plot.adjusted(8, 6, -8, -6), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight,
                             "live preview")
        if self.playhead_s is not None and start <= self.playhead_s <= end:
            x = plot.left() + (self.playhead_s - start) / (end - start) * plot.width()
            painter.setPen(QPen(palette.highlight().color(), 2))
            painter.drawLine(int(x), int(plot.top()), int(x), int(plot.bottom()))

    def label_font(self) -> QFont:
        """The axes' labels' font: a point and a half under the window's."""
        small = QFont(self.font())
        small.setPointSizeF(max(small.pointSizeF() - 1.5, 7))
        return small

    def axis_labels(self) -> list[tuple[QRectF, str, Qt.AlignmentFlag]]:
        """The axes' labels as painted now, (where, words, alignment): the frequencies on the left and the
        seconds (or bars) below, only as many as fit without one drawn over another (axes.unclashing)."""
        if self.image.isNull():
            return []
        metrics = QFontMetricsF(self.label_font())
        plot = self._plot()
        labels: list[tuple[QRectF, str, Qt.AlignmentFlag]] = []
        ticks = frequency_ticks(PARAMS)
        half = metrics.height() / 2
        ys = [plot.bottom() - fraction * plot.height() for fraction, _ in ticks]
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for index in unclashing([(y - half, y + half) for y in ys], frequency_label_order(ticks)):
            labels.append((QRectF(0, ys[index] - half, LEFT - 6, 2 * half), ticks[index][1], right))
        start, end = self._visible()
        shown = [(seconds, label, major) for seconds, label, major in time_ticks(start, end, bpm=self.bpm)
                 if major or self.bpm]
        xs = [self.x_at(seconds) for seconds, _, _ in shown]
        widths = [metrics.horizontalAdvance(label) for _, label, _ in shown]
        spans = [(x - width / 2, x + width / 2) for x, width in zip(xs, widths, strict=True)]
        order = sorted(range(len(shown)), key=lambda index: (not shown[index][2], index))  # bars first
        for index in unclashing(spans, order, gap=6):
            labels.append((QRectF(xs[index] - widths[index] / 2 - 1, plot.bottom() + 4, widths[index] + 2,
                                  BOTTOM - 4), shown[index][1], Qt.AlignmentFlag.AlignHCenter))
        return labels

    def x_at(self, seconds: float) -> float:
        """The widget x of `seconds` into the image, at the current zoom and scroll."""
        plot = self._plot()
        start, end = self._visible()
        return plot.left() + (seconds - start) / max(end - start, 1e-9) * plot.width()

    def _paint_region(self, painter: QPainter, plot: QRectF, start: float, end: float) -> None:
        """Shade what lies outside the loop's region and draw a line at each of its ends."""
        if self.region is None:
            return
        left = min(max(self.x_at(self.region[0]), plot.left()), plot.right())
        right = min(max(self.x_at(self.region[1]), plot.left()), plot.right())
        shade = QColor(0, 0, 0, 150)
        painter.fillRect(QRectF(plot.left(), plot.top(), left - plot.left(), plot.height()), shade)
        painter.fillRect(QRectF(right, plot.top(), plot.right() - right, plot.height()), shade)
        painter.setPen(QPen(REGION_COLOUR, 2))
        for seconds in self.region:
            if start <= seconds <= end:
                x = int(self.x_at(seconds))
                painter.drawLine(x, int(plot.top()), x, int(plot.bottom()))

    # -- input ---------------------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.image.isNull():
            return
        steps = event.angleDelta().y() / 120 or event.angleDelta().x() / 120
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.scroll_by(-steps * 0.1)
        else:
            anchor = self.seconds_at(event.position().x())
            self.zoom_by(1.25 ** steps, anchor)
        event.accept()

    def zoom_by(self, factor: float, anchor_s: float | None = None) -> None:
        start, end = self._visible()
        anchor_s = (start + end) / 2 if anchor_s is None else anchor_s
        before = (anchor_s - start) / max(end - start, 1e-9)
        self.zoom = min(max(self.zoom * factor, 1.0), 32.0)
        span = self.duration_s / self.zoom
        self.offset_s = anchor_s - before * span
        self.update()

    def scroll_by(self, fraction_of_view: float) -> None:
        start, end = self._visible()
        self.offset_s = start + fraction_of_view * (end - start)
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is None or self.image.isNull() or self.is_preview:
            return
        if (event.position().toPoint() - self._press).manhattanLength() >= QApplication.startDragDistance():
            self._press = None
            self.drag_requested.emit()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._press is not None and not self.image.isNull() and self._plot().contains(event.position()):
            self.seek_requested.emit(max(self.seconds_at(event.position().x()), 0.0))
        self._press = None
