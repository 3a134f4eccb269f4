"""The main window: where a producer types a prompt and gets a loop.

Views only render and forward intent; the work happens in the engine process (see docs/architecture.md).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.version import __version__


class MainWindow(QMainWindow):
    generate_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(f"Riffstudio {__version__}")
        self.resize(900, 600)

        self.prompt = QLineEdit()
        self.prompt.setObjectName("prompt")
        self.prompt.setPlaceholderText("Describe a loop, e.g. funky slap bass, 100 bpm")
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generate")
        self.generate_button.setEnabled(False)

        prompt_row = QHBoxLayout()
        prompt_row.addWidget(self.prompt, stretch=1)
        prompt_row.addWidget(self.generate_button)

        self.spectrogram = QLabel("Your loop's spectrogram appears here.")
        self.spectrogram.setObjectName("spectrogram")
        self.spectrogram.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.spectrogram.setMinimumHeight(256)

        layout = QVBoxLayout()
        layout.addLayout(prompt_row)
        layout.addWidget(self.spectrogram, stretch=1)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)

        self.prompt.textChanged.connect(self._on_prompt_changed)
        self.prompt.returnPressed.connect(self._request_generate)
        self.generate_button.clicked.connect(self._request_generate)
        self.statusBar().showMessage("Ready")

    def _on_prompt_changed(self, text: str) -> None:
        self.generate_button.setEnabled(bool(text.strip()))

    def _request_generate(self) -> None:
        text = self.prompt.text().strip()
        if text:
            self.generate_requested.emit(text)
