"""What the app says when a folder picked as the model is not one: in its own words, with the next step.

Why: picking a wrong folder unloaded the working model and answered with CLI advice ("convert one with
`riffstudio model convert SRC --out BUNDLE`") inside an app that has a Convert button. The window checks a
picked folder before switching, so the model in use stays; this notice says why the folder was not taken and
offers "Convert this folder?" (the Model dialog's convert, with the folder filled in). It only renders and
forwards the click."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

MANIFEST_NAME = "manifest.json"  # what makes a folder a bundle (engine/bundle/manifest.py)


def refusal_words(folder: str, problem: str, *, in_use: str) -> tuple[str, bool]:
    """(what to say, whether converting the folder is the next step) for a picked `folder` that did not open.

    A folder without a manifest is not a bundle (perhaps a model to convert); one with a manifest is a bundle
    that is damaged, and the engine's reason stays in the words, without its command-line advice."""
    name = Path(folder).name or folder
    stays = f" {Path(in_use).name} stays in use." if in_use else ""
    if not (Path(folder) / MANIFEST_NAME).is_file():
        return f"“{name}” is not a model bundle.{stays} A model folder or checkpoint can be converted into one.", True
    reason = problem.split(": convert one with")[0].split(" (use `riffstudio")[0]
    return f"“{name}” is a model bundle that cannot be used: {reason}.{stays}", False


class FolderNotice(QFrame):
    convert_requested = Signal(str)  # the folder, for the Model dialog's convert

    def __init__(self) -> None:
        super().__init__(objectName="banner")
        self.folder = ""
        self.words = QLabel("", objectName="folder_notice")
        self.words.setWordWrap(True)
        self.convert_button = QPushButton("Convert this folder?", objectName="convert_folder")
        self.convert_button.setToolTip("Open the Model dialog's Convert with this folder as the source")
        self.convert_button.clicked.connect(lambda: self.convert_requested.emit(self.folder))
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.words, 1)
        layout.addWidget(self.convert_button)
        layout.addWidget(close)
        self.hide()

    def show_refusal(self, folder: str, words: str, *, offer_convert: bool) -> None:
        self.folder = folder
        self.words.setText(words)
        self.convert_button.setVisible(offer_convert)
        self.show()
