"""The batch window (File > Render a batch…): a preset file, the folder its loops go to, Render and Stop, and
the batch's progress: n of N loops, the one rendering, the time left, and a log of the batch's own lines.

It renders what ui/app/batch_runner.py reports and forwards the producer's intent to it; the runner belongs
to the main window, so closing this window leaves a batch rendering (File > Render a batch… shows it again).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.app.batch_runner import BatchProgress, BatchRun, BatchRunner, default_out_folder
from ui.app.folder_field import FolderField

RESUMABLE = "Render again to carry on where it stopped: finished loops are kept, none is rendered twice."


class BatchWindow(QDialog):
    def __init__(self, runner: BatchRunner, export_folder: Callable[[], Path], bundle: Callable[[], str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Render a batch")
        self.setModal(False)
        self.runner = runner
        self.export_folder = export_folder  # the settings' export folder, read when a preset file is chosen
        self.bundle = bundle  # the app's model, for presets that name none
        self.presets = FolderField(objectName="batch_presets")  # a file's path, shown as a folder's is
        self.presets.setPlaceholderText("a preset file (.toml)")
        choose_presets = QPushButton("Choose…")
        choose_presets.clicked.connect(self.choose_presets)
        self.out = FolderField(objectName="batch_out")
        self._default_out = ""  # the folder set_presets chose (the producer's own choice is kept)
        self.out.setPlaceholderText("the folder the loops go to")
        choose_out = QPushButton("Choose…")
        choose_out.clicked.connect(self._choose_out)
        self.render_button = QPushButton("Render", objectName="batch_render")
        self.render_button.setToolTip("Render every loop of the preset file in the engine (the app's model for "
                                      "presets that name none)")
        self.render_button.clicked.connect(self.render_batch)
        self.presets.editingFinished.connect(self._presets_typed)
        self.stop_button = QPushButton("Stop", objectName="batch_stop")
        self.stop_button.setToolTip(f"Stop now. {RESUMABLE}")
        self.stop_button.clicked.connect(self.runner.cancel)
        close = QPushButton("Close")
        close.setToolTip("Close this window; a batch keeps rendering (File > Render a batch… shows it again)")
        close.clicked.connect(self.hide)
        # The loops finished, as its words say ("1 of 3 loops"): the running loop's share moved the bar to a
        # third at "0 of 3"; how far that loop is, and the time left, are in the status line below.
        self.progress = QProgressBar(objectName="batch_progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status = QLabel("", objectName="batch_status", wordWrap=True)
        self.message = QLabel("", objectName="batch_message", wordWrap=True)
        self.message.setStyleSheet("color: #ff6b6b;")
        self.message.hide()
        self.log = QPlainTextEdit(objectName="batch_log", readOnly=True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("The batch's lines: each loop as it starts, failures")

        def row(edit: QLineEdit, button: QPushButton) -> QHBoxLayout:
            line = QHBoxLayout()
            line.addWidget(edit, 1)
            line.addWidget(button)
            return line

        form = QFormLayout()
        form.addRow("Preset file", row(self.presets, choose_presets))
        out_label = QLabel("Loops go to")
        out_label.setToolTip("Each preset's loops in a folder of their own here, with summary.csv")
        form.addRow(out_label, row(self.out, choose_out))
        buttons = QHBoxLayout()
        buttons.addWidget(self.render_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.message)
        layout.addWidget(self.log, 1)
        self.resize(560, 360)
        self.render_button.setFocus()  # not in a path's field, which shows its path whole only when not edited

        runner.started.connect(self._on_started)
        runner.refused.connect(self.show_message)
        runner.planned.connect(self._show_progress)
        runner.progress.connect(self._show_progress)
        runner.note.connect(self.log.appendPlainText)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        runner.stopped.connect(self._on_stopped)
        self._update_buttons()

    # -- what the producer does ----------------------------------------------------------------------

    def choose_presets(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Render a batch: choose a preset file",
                                              self.presets.text() or str(Path.home()), "Preset files (*.toml)")
        if path:
            self.set_presets(Path(path))

    def set_presets(self, path: Path) -> None:
        """A preset file chosen: its loops go beside the export folder, in a folder named after it."""
        self.presets.setText(str(path))
        self._default_out = str(default_out_folder(path, self.export_folder()))
        self.out.setText(self._default_out)
        self.message.hide()

    def _presets_typed(self) -> None:
        """A preset path typed in: its loops' folder follows it, unless the producer chose one of their own."""
        typed = self.presets.text().strip()
        if typed and self.out.text() in ("", self._default_out):
            self.set_presets(Path(typed))

    def _choose_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Loops go to", self.out.text() or str(Path.home()))
        if folder:
            self.out.setText(folder)

    def render_batch(self) -> bool:
        """Check the preset file and start rendering it (the runner refuses a bad one, or a second batch)."""
        presets, out = self.presets.text().strip(), self.out.text().strip()
        if not presets:
            self.show_message("Choose a preset file first (Choose…); docs/batch-presets.example.toml shows one")
            return False
        if not out:
            out = str(default_out_folder(Path(presets), self.export_folder()))
            self.out.setText(out)
        return self.runner.start(BatchRun(presets=Path(presets), out=Path(out), bundle=self.bundle()))

    # -- what the runner says ------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        """The runner's one line, in the app's words: without the CLI's "riffstudio: " in front."""
        self.message.setText(text.removeprefix("riffstudio: "))
        self.message.setVisible(bool(text))
        if self.runner.state == "idle":  # a refused batch: not "Checking…" any more
            self.status.setText("")
        self._update_buttons()

    def _on_started(self, run: BatchRun) -> None:
        self.message.hide()
        self.log.clear()
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.status.setText(f"Checking {run.presets.name}, then rendering in the engine…")
        self._update_buttons()

    def _show_progress(self, progress: BatchProgress) -> None:
        finished = progress.finished / progress.total if progress.total else 0.0
        self.progress.setValue(round(finished * self.progress.maximum()))
        self.progress.setFormat(f"{progress.finished} of {progress.total} loops")
        self.status.setText(progress.describe())
        self._update_buttons()

    def _on_finished(self, out: str) -> None:
        outcome = self.runner.outcome
        self.status.setText(outcome.describe(Path(out)) if outcome else f"Rendered into {out}")
        self._update_buttons()

    def _on_failed(self, line: str) -> None:
        self.status.setText("The batch stopped before the end. " + RESUMABLE)
        self.show_message(line)

    def _on_stopped(self, out: str) -> None:
        self.status.setText(f"Stopped: {self.progress.text()} are in {out}. {RESUMABLE}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        state = self.runner.state
        self.render_button.setEnabled(state == "idle")
        self.stop_button.setEnabled(state == "rendering")
        self.stop_button.setText("Stopping…" if state == "stopping" else "Stop")
