"""The empty state: no model yet. "Get Riffusion" first (its size and time from `model get --plan`), the other
ways beside it; while getting, a progress bar with the bytes, speed and time left, then each build stage, and
Pause/Resume and Cancel. It renders what the window tells it and forwards clicks; the window runs the child
(ui/app/model_get_runner.py)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from engine.model_get.installed import size_text
from ui.app.model_get_runner import GetPlan, GetProgress

EMPTY_STATE = ("No model yet. Get Riffusion: it is downloaded once and then runs on this machine, nothing sent "
               "anywhere. Or use a model bundle folder you have, or convert a checkpoint.")
GETTING = ("Getting Riffusion: downloaded once, then it runs on this machine. Pause keeps the download so far, as "
           "closing the app does: the next start offers to continue it.")
UNPLANNED = ("Could not check the download's size just now (no connection?): Get Riffusion tries again when you "
             "press it.")
STEPS = 1000  # the progress bar's resolution


def offer_label(plan: GetPlan) -> str:
    """"Get Riffusion (2.1 GB download, about 6 minutes here)", or "Resume getting Riffusion (1.3 GB left)" when
    part of the download is kept from an earlier get."""
    if plan.resuming:
        if plan.remaining_bytes:
            return f"Resume getting Riffusion ({size_text(plan.remaining_bytes)} left)"
        return "Resume getting Riffusion (downloaded: the build is left)"
    minutes = max(1, round(plan.estimated_build_seconds / 60))
    return f"Get Riffusion ({size_text(plan.total_bytes)} download, about {minutes} minute{'s' * (minutes > 1)} here)"


class GetModelPanel(QFrame):
    get_requested = Signal()  # Get, Resume, Try again
    pause_requested = Signal()
    cancel_requested = Signal()
    browse_requested = Signal()
    convert_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="empty_state")
        self.text = QLabel(EMPTY_STATE)
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.get_button = QPushButton("Get Riffusion", objectName="get_model")
        self.reason = QLabel("", objectName="get_model_reason")  # why the plan or the get failed: one line
        self.reason.setWordWrap(True)
        self.reason.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.progress = QProgressBar(maximum=STEPS, textVisible=False)
        self.progress.setFixedHeight(8)
        self.status = QLabel("", objectName="dim")  # the download's bytes, speed, time left; the build's stage
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel")
        self.browse_button = QPushButton("Use a bundle folder…")
        self.convert_button = QPushButton("Convert a checkpoint…")

        getting = QHBoxLayout()
        getting.addStretch(1)
        for button in (self.pause_button, self.resume_button, self.cancel_button):
            getting.addWidget(button)
        getting.addStretch(1)
        others = QHBoxLayout()
        others.addStretch(1)
        others.addWidget(QLabel("or", objectName="dim"))
        others.addWidget(self.browse_button)
        others.addWidget(self.convert_button)
        others.addStretch(1)
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(self.progress, 3)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.text)
        layout.addWidget(self.get_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addLayout(getting)
        layout.addWidget(self.reason)
        layout.addLayout(others)
        layout.addStretch(1)

        self.get_button.clicked.connect(self.get_requested)
        self.resume_button.clicked.connect(self.get_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.browse_button.clicked.connect(self.browse_requested)
        self.convert_button.clicked.connect(self.convert_requested)
        self.show_offer("Get Riffusion")

    def show_offer(self, label: str, reason: str = "") -> None:
        """Not getting: the Get button (its label says the size and the time, or "Resume…") and the other ways."""
        self.get_button.setText(label)
        self.text.setText(EMPTY_STATE)
        self._show(getting=False, paused=False)
        self.show_reason(reason)

    def show_reason(self, text: str) -> None:
        """Why a get the producer asked for failed: the child's one line, in red."""
        self.reason.setStyleSheet("color: #ff6b6b;")
        self.reason.setToolTip("")
        self.reason.setText(text)
        self.reason.setVisible(bool(text))

    def show_unplanned(self, line: str) -> None:
        """The window's own look at the download's size failed (offline, the Hub down): nobody asked, so no red
        error, a quiet line that the Get button will try again; the child's line in the tooltip."""
        self.reason.setStyleSheet("")
        self.reason.setText(UNPLANNED)
        self.reason.setToolTip(line)
        self.reason.setVisible(True)

    def show_getting(self, text: str = "starting…") -> None:
        self.text.setText(GETTING)
        self._show(getting=True, paused=False)
        self.show_reason("")
        self.status.setText(text)

    def show_progress(self, progress: GetProgress) -> None:
        self.progress.setValue(round(progress.fraction * STEPS))
        self.status.setText(progress.describe())

    def show_note(self, text: str) -> None:
        self.status.setText(text)

    def show_paused(self, text: str) -> None:
        self._show(getting=True, paused=True)
        self.status.setText(text)

    def _show(self, *, getting: bool, paused: bool) -> None:
        self.get_button.setVisible(not getting)
        for widget in (self.progress, self.status, self.cancel_button):
            widget.setVisible(getting)
        self.pause_button.setVisible(getting and not paused)
        self.resume_button.setVisible(getting and paused)
        if not getting:
            self.progress.setValue(0)
