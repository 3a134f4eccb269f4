"""The model manager: the bundles in the models folder (size, precision; use, reveal or remove one), pick a
bundle folder, convert a checkpoint into one, run `model check`, and see which provider runs it. Conversion
and checking run as `riffstudio` children (ui/app/child_output.RiffstudioChild, as `model get` and batch do):
they import torch or open every ONNX session, which must never happen in the window's process; their words
go to the log as they come, and a failure shows the child's one line."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.choices import GET_PRECISIONS
from engine.errors import RiffstudioError
from engine.model_get.installed import (
    InstalledBundle,
    bundle_name,
    list_bundles,
    models_folder,
    remove_bundle,
    size_text,
)

COLUMNS = ("Bundle", "Precision", "Size", "Source", "Created")


class ModelDialog(QDialog):
    bundle_chosen = Signal(str)
    bundle_removed = Signal(str)

    def __init__(self, bundle: str, provider_line: str, parent: QWidget | None = None,
                 models: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(760, 600)
        self.models = Path(models) if models is not None else models_folder()
        self.installed: list[InstalledBundle] = []
        self.bundles = QTreeWidget(objectName="installed_bundles")
        self.bundles.setHeaderLabels(list(COLUMNS))
        self.bundles.setRootIsDecorated(False)
        self.bundles.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.use = QPushButton("Use")
        self.reveal = QPushButton("Reveal")
        self.remove = QPushButton("Remove…")
        self.status = QLabel("", objectName="model_status")  # the last failure's one line
        self.status.setStyleSheet("color: #ff6b6b;")
        self.status.setWordWrap(True)
        self.status.setVisible(False)
        self.bundle = QLineEdit(bundle, objectName="bundle_path")
        browse = QPushButton("Choose folder…")
        self.provider = QLabel(provider_line or "Not loaded yet", objectName="dim")
        self.provider.setWordWrap(True)
        self.check = QPushButton("Run model check")
        self.source = QLineEdit(objectName="convert_source")
        self.source.setPlaceholderText("diffusers folder, .ckpt/.safetensors file, or riffusion/riffusion-model-v1")
        self.precision = QComboBox()
        self.precision.addItems(list(GET_PRECISIONS[1:]))
        self.out = QLineEdit(objectName="convert_out")
        self.out.setPlaceholderText("folder for the new bundle (default: in the models folder)")
        self.convert = QPushButton("Convert")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setPlaceholderText("Output of model check / convert appears here. Converting takes minutes and "
                                    "needs the export extra (torch); a qnn bundle compiles for the NPU on its "
                                    "first load, which takes minutes once and is cached in the bundle.")
        from ui.app.child_output import RiffstudioChild

        self.child = RiffstudioChild(self)  # check or convert, one at a time
        self.asked: list[str] = []  # the arguments of the child running ([]: none)
        self.then_use = ""  # the bundle a convert running makes: the one to use when it ends well
        self.child.said.connect(self.log.appendPlainText)
        self.child.ended.connect(self._ended)

        pick = QHBoxLayout()
        pick.addWidget(self.bundle, 1)
        pick.addWidget(browse)
        actions = QHBoxLayout()
        actions.addWidget(QLabel(f"In the models folder ({self.models})", objectName="dim"), 1)
        for button in (self.use, self.reveal, self.remove):
            actions.addWidget(button)
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
        layout.addLayout(actions)
        layout.addWidget(self.bundles, 1)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.log, 1)
        layout.addWidget(buttons)

        self.use.clicked.connect(self._use_selected)
        self.reveal.clicked.connect(self._reveal_selected)
        self.remove.clicked.connect(self._remove_selected)
        self.bundles.itemDoubleClicked.connect(lambda *_: self._use_selected())
        self.bundles.itemSelectionChanged.connect(self._selection_changed)
        browse.clicked.connect(self._browse)
        self.check.clicked.connect(lambda: self._run(["model", "check", self.bundle.text()]))
        self.convert.clicked.connect(self._convert)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.refresh()

    # -- the models folder ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """List the models folder's bundles again (newest first), the one in use selected."""
        self.installed = list_bundles(self.models)
        self.bundles.clear()
        for bundle in self.installed:
            item = QTreeWidgetItem([bundle.name, bundle.precision or "unreadable", size_text(bundle.size_bytes),
                                    bundle.source, bundle.created.replace("T", " ")[:16]])
            item.setToolTip(0, str(bundle.path))
            self.bundles.addTopLevelItem(item)
            if str(bundle.path) == self.bundle.text().strip():
                item.setSelected(True)
        for column in range(len(COLUMNS)):
            self.bundles.resizeColumnToContents(column)
        self._selection_changed()

    def selected(self) -> InstalledBundle | None:
        items = self.bundles.selectedItems()
        return self.installed[self.bundles.indexOfTopLevelItem(items[0])] if items else None

    def select(self, path: Path) -> None:
        for row, bundle in enumerate(self.installed):
            self.bundles.topLevelItem(row).setSelected(bundle.path == Path(path))

    def _selection_changed(self) -> None:
        chosen = self.selected()
        for button in (self.use, self.reveal, self.remove):
            button.setEnabled(chosen is not None)
        self.use.setEnabled(chosen is not None and chosen.usable)

    def _use_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None and chosen.usable:
            self.bundle.setText(str(chosen.path))
            self._accept()

    def _reveal_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(chosen.path)))

    def _remove_selected(self) -> None:
        chosen = self.selected()
        if chosen is None:
            return
        question = (f"Remove the model bundle {chosen.name} ({chosen.precision or 'unreadable'}, "
                    f"{size_text(chosen.size_bytes)})? Its folder is deleted: {chosen.path}")
        if QMessageBox.question(self, "Riffstudio", question) != QMessageBox.StandardButton.Yes:
            return
        try:
            remove_bundle(chosen.path, self.models)
        except RiffstudioError as error:
            self._show_status(f"riffstudio: {error}")
        else:
            self._show_status("")
            if self.bundle.text().strip() == str(chosen.path):
                self.bundle.clear()
            self.bundle_removed.emit(str(chosen.path))
        self.refresh()

    def _show_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    # -- a bundle folder, conversion, checking -------------------------------------------------------

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model bundle folder", self.bundle.text())
        if folder:
            self.bundle.setText(folder)

    def _convert(self) -> None:
        """Convert the source into the folder given, or into the models folder (named as `model get` names)."""
        source = self.source.text().strip()
        if not source:
            self.source.setFocus()
            return
        precision = self.precision.currentText()
        name = Path(source).stem if Path(source).suffix in (".ckpt", ".safetensors") else source
        out = self.out.text().strip() or str(self.models / bundle_name(name, precision))
        self._run(["model", "convert", source, "--out", out, "--precision", precision], then_use=out)

    def _run(self, args: list[str], then_use: str = "") -> None:
        """`riffstudio ARGS` as a child (unless one is running), its words in the log; `then_use`: the bundle it
        makes, filled in as the one to use when it ends well."""
        if self.child.running:
            return
        self._show_status("")
        self.log.appendPlainText("$ riffstudio " + " ".join(args))
        self.asked, self.then_use = list(args), then_use
        self.child.start(args)

    def _ended(self, code: int, crashed: bool, last_line: str) -> None:
        args, self.asked = self.asked, []
        self.log.appendPlainText(f"(exit code {code})")
        if code != 0 or crashed:
            self._show_status(last_line or f"riffstudio {' '.join(args[:2])} stopped (exit code {code})")
        elif self.then_use:
            self.bundle.setText(self.then_use)
        self.refresh()

    def _accept(self) -> None:
        self.bundle_chosen.emit(self.bundle.text().strip())
        self.accept()
