"""Export…: where, and in which form, the selected loops are written: format (wav, flac, aiff), sample rate
(44.1 or 48 kHz), bit depth (16, 24, 32-bit float) and loudness (off, -14 or -23 LUFS, or a value).

Why here and not only in the CLI: `riffstudio loop` offered these and the app wrote 44.1 kHz at the settings'
bit depth only. The choices are engine/choices.py's lists and are applied by plugin/ (GridOptions,
LoopFileSettings) through ui/app/exports.py; this dialog only collects them as an ExportChoice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QWidget,
)

from engine.choices import BIT_DEPTHS, LOOP_FILE_FORMATS, SAMPLE_RATES
from ui.app.folder_field import FolderField

BIT_DEPTH_WORDS = {"16": "16-bit", "24": "24-bit", "32f": "32-bit float"}
# (label, target): None is off (peak at -1 dBFS); "other" shows the value box.
LOUDNESS = (("Off (peak at -1 dBFS)", None), ("-14 LUFS (streaming)", -14.0), ("-23 LUFS (broadcast)", -23.0),
            ("Other…", "other"))


@dataclass(frozen=True)
class ExportChoice:
    """What Export… writes: the folder and the file's form (what ui/app/exports.ExportRequest takes)."""

    folder: Path
    audio_format: str = "wav"
    sample_rate: int = 44100
    bit_depth: str = "24"
    normalize_lufs: float | None = None


class ExportDialog(QDialog):
    def __init__(self, choice: ExportChoice, count: int, parent: QWidget | None = None) -> None:
        from plugin.loop_file import MAX_LUFS, MIN_LUFS  # the range LoopFileSettings accepts

        super().__init__(parent)
        self.setWindowTitle(f"Export {count} loop" + ("" if count == 1 else "s"))
        self.folder = FolderField(str(choice.folder), objectName="export_folder")
        browse = QPushButton("Choose…", objectName="export_browse")
        browse.clicked.connect(self._browse)
        self.audio_format = QComboBox(objectName="export_format")
        self.audio_format.addItems(list(LOOP_FILE_FORMATS))
        self.audio_format.setCurrentText(choice.audio_format)
        self.sample_rate = QComboBox(objectName="export_rate")
        for rate in SAMPLE_RATES:
            self.sample_rate.addItem(f"{rate / 1000:g} kHz", rate)
        self.sample_rate.setCurrentIndex(max(self.sample_rate.findData(choice.sample_rate), 0))
        self.bit_depth = QComboBox(objectName="export_bit_depth")
        for depth in BIT_DEPTHS:
            self.bit_depth.addItem(BIT_DEPTH_WORDS[depth], depth)
        self.bit_depth.setCurrentIndex(max(self.bit_depth.findData(choice.bit_depth), 0))
        self.loudness = QComboBox(objectName="export_loudness")
        for label, target in LOUDNESS:
            self.loudness.addItem(label, target)
        self.lufs = QDoubleSpinBox(objectName="export_lufs", decimals=1, minimum=MIN_LUFS, maximum=MAX_LUFS,
                                   value=-16.0, singleStep=0.5, suffix=" LUFS")
        self.lufs.setToolTip("Integrated loudness (ITU-R BS.1770), true peak kept below -1 dBTP")
        preset = self.loudness.findData(choice.normalize_lufs)
        if choice.normalize_lufs is not None and preset < 0:
            self.lufs.setValue(choice.normalize_lufs)
            preset = self.loudness.findData("other")
        self.loudness.setCurrentIndex(max(preset, 0))
        folder = QHBoxLayout()
        folder.addWidget(self.folder, 1)
        folder.addWidget(browse)
        loudness = QHBoxLayout()
        loudness.addWidget(self.loudness, 1)
        loudness.addWidget(self.lufs)
        form = QFormLayout(self)
        form.addRow("Folder", folder)
        form.addRow("Format", self.audio_format)
        form.addRow("Sample rate", self.sample_rate)
        form.addRow("Bit depth", self.bit_depth)
        form.addRow("Loudness", loudness)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        # Opened on Export, not in the folder's field: Enter exports, and the path shows both its ends (a field
        # being edited shows the path scrolled to its end).
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setFocus()
        self.audio_format.currentTextChanged.connect(self._format_changed)
        self.loudness.currentIndexChanged.connect(lambda _: self.lufs.setVisible(self._other_loudness()))
        self._format_changed(self.audio_format.currentText())
        self.lufs.setVisible(self._other_loudness())

    def _other_loudness(self) -> bool:
        return self.loudness.currentData() == "other"

    def _format_changed(self, audio_format: str) -> None:
        """FLAC holds integers only: 32-bit float is not offered for it (24-bit instead)."""
        flac = audio_format == "flac"
        model = self.bit_depth.model()
        float_row = self.bit_depth.findData("32f")
        model.item(float_row).setEnabled(not flac)
        if flac and self.bit_depth.currentData() == "32f":
            self.bit_depth.setCurrentIndex(self.bit_depth.findData("24"))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def value(self) -> ExportChoice:
        target = self.lufs.value() if self._other_loudness() else self.loudness.currentData()
        return ExportChoice(folder=Path(self.folder.text().strip()), audio_format=self.audio_format.currentText(),
                            sample_rate=int(self.sample_rate.currentData()),
                            bit_depth=str(self.bit_depth.currentData()),
                            normalize_lufs=None if target is None else float(target))
