"""The generate panel: prompt and negative prompt (completed from history), seed with lock and dice,
length in bars at a BPM or in seconds, quality, and the advanced options folded away.

It only collects choices: `values()` is a frozen GenerateValues, turned into a job by the window. A tempo
written in the prompt is shown beside the Tempo box, and where it disagrees with the box the panel asks which
to use (ui/app/tempo_choice.py); the box wins until the producer chooses the prompt's."""

from __future__ import annotations

import random
from dataclasses import dataclass

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.choices import QUALITIES, SCHEDULER_NAMES
from engine.speeds import DEFAULT_SCHEDULER, DEFAULT_STEPS, DRAFT_STEPS
from plugin.musical_key import ALL_KEYS
from ui.app.prompt_tempo import tempo_in_prompt
from ui.app.tempo_choice import TempoChoice

AS_MADE = "as made"  # the Key box's first choice: no transposition
MAX_SEED = 2**31 - 1  # QSpinBox holds a signed 32-bit int; the engine takes up to 2**32 - 1


@dataclass(frozen=True)
class GenerateValues:
    prompt: str
    negative: str
    seed: int | None  # None: the engine picks (seed unlocked)
    steps: int
    guidance: float
    scheduler: str
    quality: str
    bpm: float | None  # None: seconds mode
    bars: float | None
    seconds: float
    strength: float
    prompt_bpm: float | None = None  # a tempo the prompt names (shown; the loop is made at `bpm`)

    def settings(self, width: int) -> dict:
        """The GenerationSettings dict the engine validates (the app never imports engine.generation)."""
        return {"prompt": self.prompt, "negative_prompt": self.negative, "seed": self.seed, "steps": self.steps,
                "guidance": self.guidance, "scheduler": self.scheduler, "width": width, "quality": self.quality}


class GeneratePanel(QWidget):
    generate_requested = Signal()
    draft_requested = Signal()
    riff_file_requested = Signal()  # "Riff on a file…": the window asks which file (as a drop, without dragging)
    link_toggled = Signal(bool)  # Link on: follow an Ableton Link session's tempo (the window runs it)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt = QLineEdit(objectName="prompt")
        self.prompt.setPlaceholderText("Describe a loop, e.g. funky slap bass, 100 bpm")
        self.negative = QLineEdit(objectName="negative")
        self.negative.setPlaceholderText("Negative prompt (what to avoid), e.g. vocals, noise")
        self.prompt_history = QStringListModel(self)
        self.negative_history = QStringListModel(self)
        for edit, model in ((self.prompt, self.prompt_history), (self.negative, self.negative_history)):
            completer = QCompleter(model, edit)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            edit.setCompleter(completer)

        self.generate_button = QPushButton("Generate", objectName="generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setEnabled(False)
        self.generate_button.setMinimumHeight(34)
        self.draft_button = QPushButton("Draft", objectName="draft")
        self.draft_button.setToolTip(f"A quick preview ({DRAFT_STEPS} steps, draft audio): "
                                     "refine the one you like at full settings, same seed")
        self.draft_button.setEnabled(False)
        self.draft_button.setMinimumHeight(34)
        self.riff_file_button = QPushButton("Riff on a file…", objectName="riff_on_file")
        self.riff_file_button.setToolTip("A new loop from an audio file of yours, at the strength beside this "
                                         "button (or drop a file on the window)")

        self.seed = QSpinBox(objectName="seed")
        self.seed.setRange(0, MAX_SEED)
        self.seed.setValue(random.randint(0, 99999))
        self.seed_lock = QCheckBox("Lock", objectName="seed_lock")
        self.seed_lock.setToolTip("Locked: every generate uses this seed. Unlocked: a new seed each time")
        self.dice = QToolButton(objectName="dice")
        self.dice.setText("⚄")
        self.dice.setToolTip("A new random seed")

        self.length_mode = QComboBox(objectName="length_mode")
        self.length_mode.addItems(["bars", "seconds"])
        self.bars = QDoubleSpinBox(objectName="bars", decimals=0, minimum=1, maximum=16, value=2)
        self.bpm = QDoubleSpinBox(objectName="bpm", decimals=1, minimum=40, maximum=240, value=120)
        self.bpm.setSuffix(" bpm")
        self.link = QToolButton(objectName="link", checkable=True)
        self.link.setText("Link")
        self.link.setToolTip("Follow the tempo of an Ableton Link session on your network (the link extra)")
        self.prompt_tempo = QLabel("", objectName="prompt_tempo")
        self.prompt_tempo.setToolTip("The tempo your prompt names; the loop is made at the Tempo box's")
        self.prompt_tempo.setVisible(False)
        self.tempo_choice = TempoChoice()
        self.kept_tempos: tuple[float, float] | None = None  # (prompt's, box's) the producer chose to keep
        self.seconds = QDoubleSpinBox(objectName="seconds", decimals=1, minimum=0.7, maximum=20.0, value=5.1)
        self.seconds.setSuffix(" s")
        self.key = QComboBox(objectName="session_key")
        self.key.addItem(AS_MADE, None)
        for key in sorted(ALL_KEYS, key=lambda k: (k.tonic, k.minor)):  # as the library's key filter lists them
            self.key.addItem(key.words, key.name)
        self.key.setToolTip("The session's key: each loop on the bar grid is moved into it (or its relative, keeping "
                            "its mode; at most 6 semitones, tempo kept), as `--key` does. A loop with no key found "
                            "(drums) is left as made")
        self.quality = QComboBox(objectName="quality")
        self.quality.addItems(QUALITIES)
        self.quality.setCurrentText("standard")

        self.steps = QSpinBox(objectName="steps", minimum=1, maximum=150, value=DEFAULT_STEPS)
        self.guidance = QDoubleSpinBox(objectName="guidance", decimals=1, minimum=0, maximum=30, value=7.0,
                                       singleStep=0.5)
        self.scheduler = QComboBox(objectName="scheduler")
        self.scheduler.addItems(list(SCHEDULER_NAMES))
        self.scheduler.setCurrentText(DEFAULT_SCHEDULER)
        self.strength = QSlider(Qt.Orientation.Horizontal, objectName="strength", minimum=5, maximum=100, value=75)
        self.strength.setToolTip("How far a riff may go from its file (and Riff on this from its loop): low keeps "
                                 "close to it, high paints more freely")
        self.strength_label = QLabel("0.75")

        self.advanced_toggle = QToolButton(objectName="advanced_toggle", checkable=True)
        self.advanced_toggle.setText("▸ Advanced")
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.advanced = QWidget(objectName="advanced")
        form = QFormLayout(self.advanced)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Scheduler", self.scheduler)
        self.advanced.setVisible(False)

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.addWidget(QLabel("Length"), 0, 0)
        length_row = QHBoxLayout()
        length_row.addWidget(self.bars, 1)
        length_row.addWidget(self.seconds, 1)
        length_row.addWidget(self.length_mode)
        grid.addLayout(length_row, 0, 1)
        grid.addWidget(QLabel("Tempo"), 1, 0)
        tempo_row = QHBoxLayout()
        tempo_row.addWidget(self.bpm, 1)
        tempo_row.addWidget(self.prompt_tempo)
        tempo_row.addWidget(self.link)
        grid.addLayout(tempo_row, 1, 1)
        grid.addWidget(QLabel("Seed"), 2, 0)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        seed_row.addWidget(self.seed_lock)
        grid.addLayout(seed_row, 2, 1)
        grid.addWidget(QLabel("Quality"), 3, 0)
        quality_row = QHBoxLayout()  # quality and key share a row: the strip beside a DAW has no height to spare
        quality_row.addWidget(self.quality, 1)
        key_label = QLabel("Key")
        key_label.setContentsMargins(6, 0, 0, 0)  # apart from the Quality box's arrow
        quality_row.addWidget(key_label)
        quality_row.addWidget(self.key, 1)
        grid.addLayout(quality_row, 3, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("GENERATE", objectName="section")
        layout.addWidget(title)
        layout.addWidget(self.prompt)
        layout.addWidget(self.negative)
        layout.addLayout(grid)
        layout.addWidget(self.tempo_choice)
        layout.addWidget(self.advanced_toggle)
        layout.addWidget(self.advanced)
        buttons = QHBoxLayout()
        buttons.addWidget(self.draft_button, 1)
        buttons.addWidget(self.generate_button, 2)
        layout.addLayout(buttons)
        riff_row = QHBoxLayout()  # the strength beside the button it shapes: set before the file is chosen
        riff_row.addWidget(self.riff_file_button, 2)
        riff_row.addWidget(QLabel("strength", objectName="dim"))
        riff_row.addWidget(self.strength, 1)
        riff_row.addWidget(self.strength_label)
        layout.addLayout(riff_row)

        self.prompt.textChanged.connect(self._prompt_changed)
        self.draft_button.clicked.connect(self._request_draft)
        self.riff_file_button.clicked.connect(self.riff_file_requested)
        self.prompt.returnPressed.connect(self._request)
        self.generate_button.clicked.connect(self._request)
        self.dice.clicked.connect(self.roll_seed)
        self.length_mode.currentTextChanged.connect(self._length_mode_changed)
        self.advanced_toggle.toggled.connect(self._fold)
        self.link.toggled.connect(self.link_toggled)
        self.strength.valueChanged.connect(lambda v: self.strength_label.setText(f"{v / 100:.2f}"))
        self.prompt.textChanged.connect(self._update_tempo_story)
        self.bpm.valueChanged.connect(self._update_tempo_story)
        self.tempo_choice.use_prompt_tempo.connect(self.use_prompt_tempo)
        self.tempo_choice.keep_box_tempo.connect(self.keep_box_tempo)
        self._length_mode_changed(self.length_mode.currentText())

    def _prompt_changed(self, text: str) -> None:
        for button in (self.generate_button, self.draft_button):
            button.setEnabled(bool(text.strip()))

    def _request(self) -> None:
        if self.prompt.text().strip():
            self.generate_requested.emit()

    def _request_draft(self) -> None:
        if self.prompt.text().strip():
            self.draft_requested.emit()

    def _fold(self, open_: bool) -> None:
        self.advanced.setVisible(open_)
        self.advanced_toggle.setText(("▾" if open_ else "▸") + " Advanced")

    def _length_mode_changed(self, mode: str) -> None:
        bars = mode == "bars"
        self.bars.setVisible(bars)
        self.seconds.setVisible(not bars)
        self.key.setEnabled(bars)  # a key is reached on the grid's fit; a loop in seconds is as painted
        self._update_tempo_story()

    def _update_tempo_story(self) -> None:
        """Show the prompt's tempo beside the box, and ask which to use where they disagree on the grid (in seconds
        mode there is no grid: the prompt's tempo is only words to the model)."""
        prompt_bpm = tempo_in_prompt(self.prompt.text())
        self.prompt_tempo.setText(f"prompt: {prompt_bpm:g} bpm" if prompt_bpm else "")
        self.prompt_tempo.setVisible(prompt_bpm is not None)
        box_bpm = self.bpm.value()
        conflict = (prompt_bpm is not None and self.length_mode.currentText() == "bars"
                    and abs(prompt_bpm - box_bpm) > 0.05 and self.kept_tempos != (prompt_bpm, box_bpm))
        if conflict:
            self.tempo_choice.ask(prompt_bpm, box_bpm)
        else:
            self.tempo_choice.setVisible(False)

    def use_prompt_tempo(self) -> None:
        """The producer chose the prompt's tempo: it goes into the Tempo box (the prompt stays as typed)."""
        prompt_bpm = tempo_in_prompt(self.prompt.text())
        if prompt_bpm is not None:
            self.bpm.setValue(prompt_bpm)

    def keep_box_tempo(self) -> None:
        """The producer chose the box's tempo: not asked again until either tempo changes."""
        prompt_bpm = tempo_in_prompt(self.prompt.text())
        if prompt_bpm is not None:
            self.kept_tempos = (prompt_bpm, self.bpm.value())
        self._update_tempo_story()

    def focus_prompt(self) -> None:
        self.prompt.setFocus()

    def set_tempo(self, bpm: float) -> None:
        """A tempo from outside (Ableton Link)."""
        self.bpm.setValue(bpm)

    def unlink(self) -> None:
        """Show Link off (the session stopped) without asking to stop it again."""
        self.link.blockSignals(True)
        self.link.setChecked(False)
        self.link.blockSignals(False)

    def roll_seed(self) -> None:
        self.seed.setValue(random.randint(0, MAX_SEED))

    def set_history(self, prompts: list[str], negatives: list[str]) -> None:
        self.prompt_history.setStringList(prompts)
        self.negative_history.setStringList(negatives)

    def set_session_key(self, key: str) -> None:
        """Choose `key` ("Amin"; "" = as made) in the Key box; one it does not list (an old settings file) is left."""
        index = self.key.findData(key or None)
        if index >= 0:
            self.key.setCurrentIndex(index)

    def session_key(self) -> str | None:
        """The key chosen for loops on the grid ("Amin", plugin/musical_key's spelling), or None: as made."""
        return self.key.currentData()

    def values(self, *, new_seed: bool = True) -> GenerateValues:
        """The choices now. new_seed: a job that takes the panel's seed is about to be queued, so an unlocked seed
        is rolled first (each generate gets a new one, and the box shows the one it used); False for a look at
        the choices (a refine keeps its loop's seed, an empty prompt queues nothing): the box is left alone."""
        if new_seed and not self.seed_lock.isChecked():
            self.roll_seed()
        bars_mode = self.length_mode.currentText() == "bars"
        return GenerateValues(prompt=self.prompt.text().strip(), negative=self.negative.text().strip(),
                              seed=self.seed.value(), steps=self.steps.value(), guidance=self.guidance.value(),
                              scheduler=self.scheduler.currentText(), quality=self.quality.currentText(),
                              bpm=self.bpm.value() if bars_mode else None,
                              bars=self.bars.value() if bars_mode else None, seconds=self.seconds.value(),
                              strength=self.strength.value() / 100,
                              prompt_bpm=tempo_in_prompt(self.prompt.text()))
