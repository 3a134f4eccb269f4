"""The result pane: the loop's title and details, its spectrogram, and what to do with it (play, loop,
volume, favourite, refine, more like this, riff on this, same seed longer, export, copy, reveal).

It renders the loop it is shown (`show_loop`) and forwards intent as signals; which loop that is, the
player and the jobs belong to the window and the controller, so the pane never acts on a loop itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.app.drag import drag_files
from ui.app.elided_label import ElidedLabel
from ui.app.flow_layout import FlowBox
from ui.app.library import LibraryLoop
from ui.app.library_drafts import is_draft
from ui.app.loop_length import loop_length
from ui.app.parent_link import ParentLink
from ui.app.spectrogram_view import EMPTY_MESSAGE, NO_PAINTING_MESSAGE, SpectrogramView


class ResultPane(QWidget):
    play_requested = Signal()  # the Play button, or Space on the spectrogram
    looping_changed = Signal(bool)
    volume_changed = Signal(float)  # 0..1
    favourite_changed = Signal(bool)
    refine_requested = Signal()  # the shown loop (a draft) at full settings, same seed
    more_like_this_requested = Signal()
    riff_requested = Signal()  # audio-to-audio from the shown loop
    longer_requested = Signal()
    export_requested = Signal()
    copy_requested = Signal()
    reveal_requested = Signal()
    seek_requested = Signal(float)  # seconds into the loop
    drag_requested = Signal()  # a drag started on the spectrogram: the window says which file it carries
    colour_map_changed = Signal(str)
    parent_requested = Signal(str)  # the header's "refined from …" clicked: that loop's job

    def __init__(self, *, loop_playback: bool = True, volume: float = 0.8) -> None:
        super().__init__()
        self.spectrogram = SpectrogramView()
        self.result_title = QLabel("", objectName="title")
        self.result_title.setWordWrap(True)
        self.result_meta = ElidedLabel(objectName="dim")
        self.parent_link = ParentLink()
        self.play_button = QPushButton("▶ Play", objectName="play")
        self.play_button.setToolTip("Play / stop (Space)")
        self.loop_toggle = QCheckBox("Loop", checked=loop_playback)
        self.volume = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100,
                              value=int(volume * 100))
        self.volume.setFixedWidth(90)
        self.favourite = QToolButton(objectName="favourite", checkable=True)
        self.favourite.setText("♥")
        self.favourite.setToolTip("Favourite")
        self.more_like_this = QPushButton("More like this", objectName="more_like_this")
        self.riff_on_this = QPushButton("Riff on this", objectName="riff_on_this")
        self.longer = QPushButton("Same seed, longer", objectName="longer")
        self.refine = QPushButton("Refine", objectName="refine")
        self.refine.setToolTip("This loop again at full settings (the panel's steps, scheduler, quality), same seed")
        self.export_button = QPushButton("Export…", objectName="export")
        self.copy_button = QPushButton("Copy", objectName="copy")
        self.reveal_button = QPushButton("Reveal", objectName="reveal")
        self.drag_hint = ElidedLabel("Drag the spectrogram (or library rows) into your DAW · wheel zooms, Shift+wheel "
                                      "scrolls, click seeks", objectName="dim")
        self.colour_map = QComboBox(objectName="colour_map")
        self.colour_map.addItems(["heat", "painted"])
        self.colour_map.setToolTip("heat: the painted pixels through a colour map; painted: the image exactly as the "
                                   "model painted it (riffusion paints loud as dark)")
        hint_row = QHBoxLayout()
        hint_row.addWidget(self.drag_hint, 1)
        hint_row.addWidget(self.colour_map)
        transport = QWidget(objectName="transport")  # play, loop, volume, favourite: wrapped as one
        transport_row = QHBoxLayout(transport)
        transport_row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.play_button, self.loop_toggle, QLabel("Vol"), self.volume, self.favourite):
            transport_row.addWidget(widget)
        # Wrapped onto more rows as the pane narrows: every button keeps its words.
        actions = FlowBox([transport, self.refine, self.more_like_this, self.riff_on_this, self.longer,
                           self.export_button, self.copy_button, self.reveal_button])
        self.result_actions = [self.play_button, self.favourite, self.refine, self.more_like_this, self.riff_on_this,
                               self.longer, self.export_button, self.copy_button, self.reveal_button]
        centre_layout = QVBoxLayout(self)
        centre_layout.addWidget(QLabel("RESULT", objectName="section"))
        centre_layout.addWidget(self.result_title)
        centre_layout.addWidget(self.parent_link)
        centre_layout.addWidget(self.result_meta)
        centre_layout.addWidget(self.spectrogram, 1)
        centre_layout.addLayout(hint_row)
        centre_layout.addWidget(actions)
        self._connect()

    def _connect(self) -> None:
        """The pane's own wiring: each control to the intent it means (the window connects the intents)."""
        for button, intent in ((self.play_button, self.play_requested), (self.refine, self.refine_requested),
                               (self.more_like_this, self.more_like_this_requested),
                               (self.riff_on_this, self.riff_requested), (self.longer, self.longer_requested),
                               (self.export_button, self.export_requested), (self.copy_button, self.copy_requested),
                               (self.reveal_button, self.reveal_requested)):
            button.clicked.connect(intent)
        self.loop_toggle.toggled.connect(self.looping_changed)
        self.volume.valueChanged.connect(lambda value: self.volume_changed.emit(value / 100))
        self.favourite.toggled.connect(self.favourite_changed)
        self.spectrogram.seek_requested.connect(self.seek_requested)
        self.spectrogram.drag_requested.connect(self.drag_requested)
        self.colour_map.currentTextChanged.connect(self.spectrogram.set_colour_map)
        self.colour_map.currentTextChanged.connect(self.colour_map_changed)
        self.parent_link.parent_requested.connect(self.parent_requested)
        self.spectrogram.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Space on the spectrogram plays (it has focus after a click or seek; text boxes keep their spaces)."""
        if (watched is self.spectrogram and event.type() == QEvent.Type.KeyPress and not event.modifiers()
                and event.key() == Qt.Key.Key_Space):
            self.play_requested.emit()
            return True
        return super().eventFilter(watched, event)

    # -- state from the window ------------------------------------------------------------------------

    def show_loop(self, loop: LibraryLoop | None, region: tuple[float, float] | None = None) -> None:
        """Render `loop` (None: the empty view); Refine is offered for a draft only, the loop it improves.
        Under its title, what it came from (a link to that loop when it is in the library).

        The header states the length of the file a drag hands out (ui/app/loop_length.py), and `region` (seconds
        of the painted image the loop was cut from) is marked on the spectrogram."""
        for widget in self.result_actions:
            widget.setEnabled(loop is not None)
        self.parent_link.show_parent(loop)
        if loop is None:
            self.result_title.setText("")
            self.result_meta.setText("")
            self.spectrogram.clear(EMPTY_MESSAGE)
            return
        draft = is_draft(loop.settings)
        self.refine.setEnabled(draft)
        self.result_title.setText(loop.prompt)
        self.result_meta.setText(loop_length(loop).words() + f"  ·  seed {loop.seed}  ·  "
                                 f"{loop.settings.get('scheduler', '')} {loop.settings.get('steps', '')} steps"
                                 + ("  ·  draft: Refine for the full loop" if draft else ""))
        if loop.image and Path(loop.image).is_file():
            self.spectrogram.set_image(QImage(loop.image), bpm=loop.bpm, region=region)
        else:  # a loop made in the CLI's own process keeps no painting (its file is the loop)
            self.spectrogram.clear(NO_PAINTING_MESSAGE)
        self.favourite.blockSignals(True)
        self.favourite.setChecked(loop.favourite)
        self.favourite.blockSignals(False)

    def show_preview(self, image: QImage) -> None:
        """A running job's preview, in place of the loop until it finishes."""
        self.spectrogram.set_image(image, preview=True)

    def set_playhead(self, seconds: float | None) -> None:
        self.spectrogram.set_playhead(seconds)

    def set_playing(self, playing: bool) -> None:
        self.play_button.setText("■ Stop" if playing else "▶ Play")

    def drag_out(self, paths: Sequence[str]) -> None:
        """Drag `paths` out of the spectrogram (to a DAW), its image as the drag's picture."""
        drag_files(self.spectrogram, paths, QPixmap.fromImage(self.spectrogram.image.scaled(160, 80)))

    def looping(self) -> bool:
        return self.loop_toggle.isChecked()

    def volume_fraction(self) -> float:
        """The volume slider, 0..1 (what the settings keep)."""
        return self.volume.value() / 100
