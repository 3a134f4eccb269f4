"""The result pane: the loop's title and details, its spectrogram, and what to do with it (play, loop,
volume, favourite, more like this, riff on this, same seed longer, export, copy, reveal). Widgets only;
the window connects them."""

from __future__ import annotations

from PySide6.QtCore import Qt
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

from ui.app.spectrogram_view import SpectrogramView


class ResultPane(QWidget):
    def __init__(self, *, loop_playback: bool = True, volume: float = 0.8) -> None:
        super().__init__()
        self.spectrogram = SpectrogramView()
        self.result_title = QLabel("", objectName="title")
        self.result_title.setWordWrap(True)
        self.result_meta = QLabel("", objectName="dim")
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
        self.drag_hint = QLabel("Drag the spectrogram (or library rows) into your DAW · wheel zooms, Shift+wheel "
                                "scrolls, click seeks", objectName="dim")
        self.colour_map = QComboBox(objectName="colour_map")
        self.colour_map.addItems(["heat", "painted"])
        self.colour_map.setToolTip("heat: the painted pixels through a colour map; painted: the image exactly as the "
                                   "model painted it (riffusion paints loud as dark)")
        hint_row = QHBoxLayout()
        hint_row.addWidget(self.drag_hint, 1)
        hint_row.addWidget(self.colour_map)
        transport = QHBoxLayout()
        for widget in (self.play_button, self.loop_toggle, QLabel("Vol"), self.volume, self.favourite):
            transport.addWidget(widget)
        transport.addStretch(1)
        for widget in (self.refine, self.more_like_this, self.riff_on_this, self.longer, self.export_button,
                       self.copy_button, self.reveal_button):
            transport.addWidget(widget)
        self.result_actions = [self.play_button, self.favourite, self.refine, self.more_like_this, self.riff_on_this,
                               self.longer, self.export_button, self.copy_button, self.reveal_button]
        centre_layout = QVBoxLayout(self)
        centre_layout.addWidget(QLabel("RESULT", objectName="section"))
        centre_layout.addWidget(self.result_title)
        centre_layout.addWidget(self.result_meta)
        centre_layout.addWidget(self.spectrogram, 1)
        centre_layout.addLayout(hint_row)
        centre_layout.addLayout(transport)
