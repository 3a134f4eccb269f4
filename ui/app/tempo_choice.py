"""The inline choice when the prompt names one tempo and the Tempo box holds another.

Why ask before generating: the model reads "100 bpm" in the prompt as words, while the loop is fitted to the
Tempo box's grid, so "funky slap bass, 100 bpm" came out at 120 bpm with both numbers in its name. The box
wins unless the producer takes the prompt's tempo here; the prompt's text is never changed. A view only:
it shows the two tempos and forwards the choice as signals (the generate panel acts on them)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ui.app.flow_layout import FlowBox


class TempoChoice(QFrame):
    use_prompt_tempo = Signal()  # set the Tempo box to the prompt's tempo
    keep_box_tempo = Signal()  # keep the box's (the default); the notice goes until either tempo changes

    def __init__(self) -> None:
        super().__init__(objectName="tempo_choice")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.words = QLabel("", objectName="tempo_conflict")
        self.words.setWordWrap(True)
        self.use_button = QPushButton("", objectName="use_prompt_tempo")
        self.keep_button = QPushButton("", objectName="keep_box_tempo")
        self.use_button.clicked.connect(self.use_prompt_tempo)
        self.keep_button.clicked.connect(self.keep_box_tempo)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(FlowBox([self.use_button, self.keep_button]), 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.words)
        layout.addLayout(buttons)
        self.setVisible(False)

    def ask(self, prompt_bpm: float, box_bpm: float) -> None:
        """Show the two tempos and the choice between them."""
        self.words.setText(f"The prompt says {prompt_bpm:g} bpm, the Tempo box {box_bpm:g} bpm: the loop is "
                           f"made at {box_bpm:g} unless you choose the prompt's.")
        self.use_button.setText(f"Use {prompt_bpm:g} bpm")
        self.use_button.setToolTip("Set the Tempo box to the prompt's tempo (the prompt is left as it is)")
        self.keep_button.setText(f"Keep {box_bpm:g} bpm")
        self.keep_button.setToolTip("Make the loop at the Tempo box's tempo")
        self.setVisible(True)
