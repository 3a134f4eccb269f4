"""The model manager: pick a bundle folder, convert a checkpoint into one, run `model check`, and see
which provider runs it. Conversion and checking run as `riffstudio` child processes (QProcess): they
import torch or open every ONNX session, which must never happen in the window's process."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QProcess, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class ModelDialog(QDialog):
    bundle_chosen = Signal(str)

    def __init__(self, bundle: str, provider_line: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(640, 460)
        self.bundle = QLineEdit(bundle, objectName="bundle_path")
        browse = QPushButton("Choose folder…")
        self.provider = QLabel(provider_line or "Not loaded yet", objectName="dim")
        self.provider.setWordWrap(True)
        self.check = QPushButton("Run model check")
        self.source = QLineEdit(objectName="convert_source")
        self.source.setPlaceholderText("diffusers folder, .ckpt/.safetensors file, or riffusion/riffusion-model-v1")
        self.precision = QComboBox()
        self.precision.addItems(["int8", "fp32", "qnn"])
        self.out = QLineEdit(objectName="convert_out")
        self.out.setPlaceholderText("folder for the new bundle")
        self.convert = QPushButton("Convert")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setPlaceholderText("Output of model check / convert appears here. Converting takes minutes and "
                                    "needs the export extra (torch); a qnn bundle compiles for the NPU on its "
                                    "first load, which takes minutes once and is cached in the bundle.")
        self.process: QProcess | None = None

        pick = QHBoxLayout()
        pick.addWidget(self.bundle, 1)
        pick.addWidget(browse)
        form = QFormLayout()
        form.addRow("Bundle", pick)
        form.addRow("Runs on", self.provider)
        form.addRow("", self.check)
        convert_row = QHBoxLayout()
        convert_row.addWidget(self.precision)
        convert_row.addWidget(self.out, 1)
        convert_row.addWidget(self.convert)
        form.addRow("Convert from", self.source)
        form.addRow("into", convert_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.log, 1)
        layout.addWidget(buttons)

        browse.clicked.connect(self._browse)
        self.check.clicked.connect(lambda: self._run(["model", "check", self.bundle.text()]))
        self.convert.clicked.connect(self._convert)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model bundle folder", self.bundle.text())
        if folder:
            self.bundle.setText(folder)

    def _convert(self) -> None:
        if self.source.text().strip() and self.out.text().strip():
            self._run(["model", "convert", self.source.text().strip(), "--out", self.out.text().strip(),
                       "--precision", self.precision.currentText()], then_use=self.out.text().strip())

    def _run(self, args: list[str], then_use: str | None = None) -> None:
        if self.process is not None:
            return
        self.log.appendPlainText("$ riffstudio " + " ".join(args))
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(
            lambda: self.log.appendPlainText(bytes(process.readAllStandardOutput()).decode(errors="replace").rstrip()))

        def finished(code: int, _status) -> None:
            self.log.appendPlainText(f"(exit code {code})")
            self.process = None
            if code == 0 and then_use:
                self.bundle.setText(then_use)

        process.finished.connect(finished)
        process.setWorkingDirectory(str(Path(__file__).resolve().parents[2]))
        # The same `riffstudio` as this app: this interpreter from source, `riffstudio-cli` in the app folder.
        from engine.process.launch import riffstudio_command

        command = riffstudio_command()
        process.start(command[0], [*command[1:], *args])
        self.process = process

    def _accept(self) -> None:
        self.bundle_chosen.emit(self.bundle.text().strip())
        self.accept()
