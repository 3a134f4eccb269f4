"""The queue: one row per job with its state, a real progress bar (the engine's fraction), the live
latent preview of the current step, and cancel. Rows render what the controller reports; nothing more."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.app.elided_label import ElidedLabel

LAYOUT_LEVELS = 8  # the widgets between a new row and the scroll area around the queue, and some to spare
STAGES = {"load": "loading the model", "text": "reading the prompt", "denoise": "painting",
          "decode": "decoding", "audio": "making audio"}


def preview_image(rgb: np.ndarray) -> QImage:
    """A preview array (uint8 H x W x 3) as a QImage that owns its pixels."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, width * 3, QImage.Format.Format_RGB888).copy()


class JobRow(QFrame):
    cancel_requested = Signal(str)

    def __init__(self, job: str, label: str) -> None:
        super().__init__(objectName="job_row")
        self.job = job
        self.state = "queued"
        self.preview = QLabel(objectName="job_preview")
        self.preview.setFixedSize(64, 40)
        self.preview.setScaledContents(True)
        self.title = ElidedLabel(label, objectName="job_title")  # "…" where it does not fit, all of it as a tooltip
        # Elided too: a plain label's words set the row's least width, and a queue that grew a scrollbar then cut
        # each row's right edge, its ✕ with it (found trying the app at 1280x720 with five jobs).
        self.status = ElidedLabel("queued", objectName="job_state")
        self.progress = QProgressBar(objectName="job_progress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        self.cancel = QToolButton(objectName="job_cancel")
        self.cancel.setText("✕")
        self.cancel.setToolTip("Cancel this job")
        self.cancel.clicked.connect(lambda: self.cancel_requested.emit(self.job))
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.progress)
        text.addWidget(self.status)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.preview)
        layout.addLayout(text, 1)
        layout.addWidget(self.cancel, 0, Qt.AlignmentFlag.AlignTop)
        self.previews_seen = 0

    def set_progress(self, stage: str, fraction: float) -> None:
        self.state = "running"
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(f"{STAGES.get(stage, stage)} · {fraction:.0%}")

    def set_preview(self, image: QImage) -> None:
        self.previews_seen += 1
        self.preview.setPixmap(QPixmap.fromImage(image))

    def finish(self, state: str, text: str) -> None:
        self.state = state
        if state == "done":
            self.progress.setValue(1000)
        self.status.setText(text)
        self.cancel.setEnabled(False)


class QueuePanel(QWidget):
    cancel_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: dict[str, JobRow] = {}
        self._to_reveal: JobRow | None = None  # a row just added, to scroll into view once laid out
        self._list = QVBoxLayout()
        self._list.setSpacing(4)
        self._list.addStretch(1)
        inner = QWidget()
        inner.setLayout(self._list)
        self._scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # More rows scroll, but the newest row always has its whole height (`_keep_a_row`): with any height
        # allowed, the strip's one column gave the queue none, and Advanced on a laptop squeezed it to half a row.
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("QUEUE", objectName="section"))
        layout.addWidget(scroll, 1)

    def add(self, job: str, label: str) -> JobRow:
        row = self.rows.get(job)
        if row is None:
            row = JobRow(job, label)
            row.cancel_requested.connect(self.cancel_requested)
            self.rows[job] = row
            self._list.insertWidget(0, row)
            self._keep_a_row()
            self._to_reveal = row
            QTimer.singleShot(0, self._bring_into_view)
        return row

    def _keep_a_row(self) -> None:
        """The list's least height: one whole row while there are rows, none without."""
        height = max((row.sizeHint().height() for row in self.rows.values()), default=0)
        margins = self._list.contentsMargins()
        self._scroll.setMinimumHeight(height + margins.top() + margins.bottom() if height else 0)

    def _bring_into_view(self) -> None:
        """A job just queued scrolls into view in whatever scrolls the queue (the strip's column): its progress
        and Cancel are what a producer watches after Ctrl+Enter. The layouts settle a level at a time (the row,
        the queue, the column and its scroll range), each posting a request to the next: those are handled here
        first, so the row is where it will stay when the column scrolls to it."""
        row, self._to_reveal = self._to_reveal, None
        outer = self.parentWidget()
        while outer is not None and not isinstance(outer, QScrollArea):
            outer = outer.parentWidget()
        if row is None or self.rows.get(row.job) is not row or outer is None:
            return
        for _ in range(LAYOUT_LEVELS):
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        outer.ensureWidgetVisible(row, 0, 0)

    def row(self, job: str) -> JobRow | None:
        return self.rows.get(job)

    def set_status(self, job: str, text: str) -> None:
        row = self.rows.get(job)
        if row is not None:
            row.status.setText(text)

    def set_progress(self, job: str, stage: str, fraction: float) -> None:
        row = self.rows.get(job)
        if row is not None:
            row.set_progress(stage, fraction)

    def set_preview(self, job: str, image: QImage) -> None:
        row = self.rows.get(job)
        if row is not None:
            row.set_preview(image)

    def finish(self, job: str, state: str, text: str) -> None:
        """`job` ended (done, failed or cancelled); the oldest finished rows go."""
        row = self.rows.get(job)
        if row is not None:
            row.finish(state, text)
        self.prune()

    def prune(self, keep: int = 12) -> None:
        """Finished rows beyond the newest `keep` go (the library has them)."""
        finished = [row for row in self.rows.values() if row.state in ("done", "failed", "cancelled")]
        for row in finished[:-keep] if len(finished) > keep else []:
            self.rows.pop(row.job, None)
            row.deleteLater()
        self._keep_a_row()
