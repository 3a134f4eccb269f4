"""Settings: export folder and format, audio device, provider, NPU mode, engine threads, theme, the models
folder and the precision "Get Riffusion" makes. Edits a copy; the window gets a new frozen AppSettings on OK."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from engine.choices import BIT_DEPTHS, GET_PRECISIONS, PROVIDERS
from engine.qnn import HTP_PERFORMANCE_MODES
from ui.app.audio_devices import CHECK_OUTPUT, NO_OUTPUTS_FOUND
from ui.app.folder_field import FolderField
from ui.app.settings import EXPORT_FORMATS, THEMES, AppSettings


def output_devices(saved: str = ""):
    """The outputs to offer (ui/app/audio_devices.py: one per host API, keyed "HOST API: NAME") and the key of
    the saved choice (an older bare name resolved), or ([], saved) without PortAudio (sounddevice is imported
    only here, when asked)."""
    try:
        import sounddevice

        from ui.app.audio_devices import output_devices as outputs
        from ui.app.audio_devices import resolve

        devices, host_apis = sounddevice.query_devices(), sounddevice.query_hostapis()
        chosen = resolve(saved, devices, host_apis)
        return outputs(devices, host_apis), chosen.key if chosen is not None else saved
    except Exception:
        return [], saved

MODELS_FOLDER_WORDS = "Where Get Riffusion puts model bundles, and where the app looks for them"


class SettingsDialog(QDialog):
    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.original = settings
        self.export_dir = FolderField(str(settings.export_folder()), objectName="export_dir")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        self.export_format = QComboBox()
        self.export_format.addItems(list(EXPORT_FORMATS))
        self.bit_depth = QComboBox()
        self.bit_depth.addItems(list(BIT_DEPTHS))
        self.bit_depth.setCurrentText(str(settings.bit_depth))
        self.device = QComboBox(objectName="audio_output")
        devices, chosen = output_devices(settings.audio_device)
        # No outputs: the list says so (an empty list, or a "System default" that plays nowhere, told nothing).
        self.device.addItem("System default" if devices else NO_OUTPUTS_FOUND, "")
        for device in devices:
            self.device.addItem(device.label, device.key)
        if chosen and self.device.findData(chosen) < 0:  # saved, but not here now (unplugged): kept, not lost
            self.device.addItem(f"{chosen} (not connected)", chosen)
        self.device.setCurrentIndex(max(self.device.findData(chosen), 0))
        self.device_hint = QLabel(CHECK_OUTPUT, objectName="audio_output_hint", wordWrap=True)
        self.device_hint.setVisible(not devices)
        if not devices:
            self.device.setToolTip(CHECK_OUTPUT)
        self.provider = QComboBox()
        self.provider.addItems(list(PROVIDERS))
        self.provider.setCurrentText(settings.provider)
        self.npu_mode = QComboBox()
        self.npu_mode.addItems(list(HTP_PERFORMANCE_MODES))
        self.npu_mode.setCurrentText(settings.npu_mode)
        self.threads = QSpinBox(minimum=0, maximum=64, value=settings.engine_threads)
        self.threads.setSpecialValueText("physical cores")
        self.theme = QComboBox()
        self.theme.addItems(list(THEMES))
        self.theme.setCurrentText(settings.theme)
        self.models_dir = FolderField(str(settings.models_folder()), objectName="models_dir")
        browse_models = QPushButton("Choose…")
        browse_models.setToolTip(MODELS_FOLDER_WORDS)  # the field's own tooltip is its whole path
        browse_models.clicked.connect(self._browse_models)
        self.get_precision = QComboBox()
        self.get_precision.addItems(list(GET_PRECISIONS))
        self.get_precision.setCurrentText(settings.get_precision)
        self.get_precision.setToolTip("auto: qnn for the NPU of a Snapdragon laptop, else int8 for the CPU; "
                                      "fp32 is the reference (largest, slowest)")
        folder = QHBoxLayout()
        folder.addWidget(self.export_dir, 1)
        folder.addWidget(browse)
        models = QHBoxLayout()
        models.addWidget(self.models_dir, 1)
        models.addWidget(browse_models)
        form = QFormLayout(self)
        form.addRow("Export folder", folder)
        form.addRow("Format", self.export_format)
        form.addRow("Bit depth", self.bit_depth)
        form.addRow("Audio output", self.device)
        form.addRow("", self.device_hint)
        form.addRow("Provider", self.provider)
        form.addRow("NPU mode", self.npu_mode)
        form.addRow("Engine threads", self.threads)
        form.addRow("Theme", self.theme)
        models_label = QLabel("Models folder")
        models_label.setToolTip(MODELS_FOLDER_WORDS)
        form.addRow(models_label, models)
        form.addRow("Get Riffusion as", self.get_precision)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setFocus()  # not in a folder's field: see FolderField

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.export_dir.text())
        if folder:
            self.export_dir.setText(folder)

    def _browse_models(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)

    def value(self) -> AppSettings:
        from engine.model_get.installed import models_folder

        models = self.models_dir.text().strip()
        return replace(self.original, export_dir=self.export_dir.text().strip(),
                       export_format=self.export_format.currentText(), bit_depth=self.bit_depth.currentText(),
                       audio_device=self.device.currentData() or "", provider=self.provider.currentText(),
                       npu_mode=self.npu_mode.currentText(), engine_threads=self.threads.value(),
                       theme=self.theme.currentText(), get_precision=self.get_precision.currentText(),
                       models_dir="" if not models or models == str(models_folder()) else models)
