"""The library pane, a sample browser: search (FTS5, Ctrl+F), favourites, the order (newest, rating, BPM,
length), and under "Filters" a BPM range, a length in bars and a key (or every key that fits it); then the
list of loops with thumbnails and badges. Rows drag out as files (multi-select drags several).

Compact on purpose: one row of search, ♥, order and Filters, and the filters folded away until asked for
(wrapped onto more rows in a strip beside the DAW), so the list keeps the room.

It shows the loops it is given (`set_loops`) and forwards intent as signals: which loops match, ratings
and deleting are the library's (through the window), so the pane holds no state of its own."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugin.musical_key import ALL_KEYS
from ui.app.flow_layout import FlowBox
from ui.app.library import SORTS, LibraryLoop, LoopQuery
from ui.app.library_model import LOOP_ROLE, ROW_HEIGHT, LibraryModel, LoopDelegate

SORT_WORDS = {"new": "Newest", "rating": "Rating", "bpm": "BPM", "length": "Length"}
BAR_CHOICES = (1, 2, 4, 8, 16)
LIST_ROWS = 4  # the fewest rows the list shows: a browser, not a slot (in a strip beside the DAW too)


def count_words(listed: int, total: int | None = None) -> str:
    """The header's count: "4 loops", or with a search or filter leaving some out "1 of 4 loops"."""
    if total is not None and total > listed:
        return f"{listed} of {total} loop{'s' * (total != 1)}"
    return f"{listed} loop{'s' * (listed != 1)}"


class LoopList(QListView):
    """The list of loops, auditioned as a sample browser's: a click on a row (or the arrow keys moving to one)
    asks for it to play from the start (`auditioned`). Only the producer's own clicks and keys do: a row made
    current by the window (at start, when a job finishes) stays silent."""

    auditioned = Signal(QModelIndex)

    def mousePressEvent(self, event) -> None:
        super().mousePressEvent(event)
        index = self.indexAt(event.position().toPoint())
        extending = event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        if event.button() == Qt.MouseButton.LeftButton and index.isValid() and not extending:
            self.auditioned.emit(index)

    def keyPressEvent(self, event) -> None:
        before = self.currentIndex()
        super().keyPressEvent(event)
        if self.currentIndex().isValid() and self.currentIndex() != before:
            self.auditioned.emit(self.currentIndex())


class LibraryPane(QWidget):
    query_changed = Signal()  # the search text, the order or a filter: the window searches again
    loop_chosen = Signal(object)  # the LibraryLoop of the list's new current row
    audition_requested = Signal(object)  # a LibraryLoop clicked or arrowed to: play it from the start
    play_requested = Signal()  # Space in the list: stop, or play again
    rating_requested = Signal(int)  # 0..5 stars for the current loop, keys 0-5 in the list
    delete_requested = Signal()  # Delete in the list: the selected loops

    def __init__(self) -> None:
        super().__init__(objectName="panel")
        self.search = QLineEdit(objectName="search")
        self.search.setPlaceholderText("Search loops (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.favourites_only = QToolButton(objectName="favourites_only", checkable=True)
        self.favourites_only.setText("♥ only")
        self.sort = QComboBox(objectName="sort")
        for name in SORTS:
            self.sort.addItem(SORT_WORDS[name], name)
        self.sort.setToolTip("Order: newest first, best rated, slowest first, shortest first")
        self.filters_toggle = QToolButton(objectName="filters_toggle", checkable=True)
        self.filters_toggle.setText("Filters")
        self.filters_toggle.setToolTip("Filter by BPM range, length in bars and key")
        self.filters = self._filters()
        self.filters.setVisible(False)
        self.library_model = LibraryModel()
        self.library_view = LoopList(objectName="library")
        self.library_view.setModel(self.library_model)
        self.library_view.setItemDelegate(LoopDelegate(self.library_view))
        self.library_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.library_view.setDragEnabled(True)
        self.library_view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.library_view.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.library_view.setMouseTracking(True)
        self.library_view.setUniformItemSizes(True)
        self.library_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows fit its width
        self.library_view.setMinimumHeight(LIST_ROWS * ROW_HEIGHT + 2 * self.library_view.frameWidth())
        right_layout = QVBoxLayout(self)
        self.library_count = QLabel("", objectName="dim")
        header = QHBoxLayout()
        header.addWidget(QLabel("LIBRARY", objectName="section"))
        header.addStretch(1)
        header.addWidget(self.library_count)
        right_layout.addLayout(header)
        search_row = QHBoxLayout()
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.favourites_only)
        search_row.addWidget(self.sort)
        search_row.addWidget(self.filters_toggle)
        right_layout.addLayout(search_row)
        right_layout.addWidget(self.filters)
        right_layout.addWidget(self.library_view, 1)
        # In place of a blank list: why it is empty, and what to do.
        self.empty_note = QLabel("", objectName="dim", wordWrap=True)
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.empty_note.setContentsMargins(8, 16, 8, 16)
        right_layout.addWidget(self.empty_note, 1)
        self._connect()

    def _filters(self) -> FlowBox:
        """BPM from-to (0: any), a length in bars, a key and whether keys that fit it count too."""
        self.bpm_min = QSpinBox(objectName="bpm_min", minimum=0, maximum=300, specialValueText="any")
        self.bpm_max = QSpinBox(objectName="bpm_max", minimum=0, maximum=300, specialValueText="any")
        for box, words in ((self.bpm_min, "Slowest BPM"), (self.bpm_max, "Fastest BPM")):
            box.setToolTip(f"{words} (any: no limit); loops without a tempo are left out")
        bpm = QWidget()
        bpm_row = QHBoxLayout(bpm)
        bpm_row.setContentsMargins(0, 0, 0, 0)
        for widget in (QLabel("BPM"), self.bpm_min, QLabel("–"), self.bpm_max):
            bpm_row.addWidget(widget)
        self.bars = QComboBox(objectName="bars_filter")
        self.bars.addItem("Any length", None)
        for bars in BAR_CHOICES:
            self.bars.addItem(f"{bars} bar" + ("s" if bars > 1 else ""), float(bars))
        self.key = QComboBox(objectName="key_filter")
        self.key.addItem("Any key", "")
        for key in sorted(ALL_KEYS, key=lambda k: (k.tonic, k.minor)):
            self.key.addItem(key.words, key.name)
        self.key.setToolTip("The loop's key, as the fit heard it; loops without one are left out")
        self.fits = QToolButton(objectName="fits", checkable=True)
        self.fits.setText("fits")
        self.fits.setToolTip("Also the keys that fit it: its relative and a fifth either way, in either mode")
        return FlowBox([bpm, self.bars, self.key, self.fits])

    def _connect(self) -> None:
        """The pane's own wiring: each control to the intent it means (the window connects the intents)."""
        self.search.textChanged.connect(lambda _: self.query_changed.emit())
        self.favourites_only.toggled.connect(lambda _: self.query_changed.emit())
        self.filters_toggle.toggled.connect(self._show_filters)
        for box in (self.bpm_min, self.bpm_max):
            box.valueChanged.connect(lambda _: self.query_changed.emit())
            # Emptied (select all, Backspace) means "any", not the last number, which a spin box would restore.
            box.lineEdit().textEdited.connect(lambda text, box=box: box.setValue(box.minimum()) if not text.strip()
                                              else None)
        for combo in (self.sort, self.bars, self.key):
            combo.currentIndexChanged.connect(lambda _: self.query_changed.emit())
        self.fits.toggled.connect(lambda _: self.query_changed.emit())
        self.library_view.selectionModel().currentChanged.connect(self._current_changed)
        self.library_view.auditioned.connect(lambda index: self.audition_requested.emit(index.data(LOOP_ROLE)))
        QShortcut(QKeySequence(Qt.Key.Key_Delete), self.library_view, activated=self.delete_requested.emit,
                  context=Qt.ShortcutContext.WidgetShortcut)
        self.library_view.installEventFilter(self)

    def set_sort(self, sort: str) -> None:
        """Order the list by `sort` (a SORTS name); an unknown one (a settings file from elsewhere) is ignored."""
        index = self.sort.findData(sort)
        if index >= 0:
            self.sort.setCurrentIndex(index)

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        loop = current.data(LOOP_ROLE) if current.isValid() else None
        if loop is not None:
            self.loop_chosen.emit(loop)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Space plays the current loop; 0-5 rate it (when the list has a current row)."""
        if watched is self.library_view and event.type() == QEvent.Type.KeyPress and not event.modifiers():
            if event.key() == Qt.Key.Key_Space:
                self.play_requested.emit()
                return True
            if Qt.Key.Key_0 <= event.key() <= Qt.Key.Key_5 and self.library_view.currentIndex().isValid():
                self.rating_requested.emit(event.key() - Qt.Key.Key_0)
                return True
        return super().eventFilter(watched, event)

    # -- state from the window ------------------------------------------------------------------------

    def loop_query(self) -> LoopQuery:
        """Everything the controls ask for: words, favourites, order and (while shown) the filters."""
        shown = not self.filters.isHidden()
        low, high = (self.bpm_min.value(), self.bpm_max.value()) if shown else (0, 0)
        if low and high and low > high:
            low, high = high, low
        return LoopQuery(text=self.search.text(), favourites_only=self.favourites_only.isChecked(),
                         sort=self.sort.currentData(), bpm_min=low or None, bpm_max=high or None,
                         bars=self.bars.currentData() if shown else None, key=self.key.currentData() if shown else "",
                         fits=self.fits.isChecked())

    def _show_filters(self, shown: bool) -> None:
        """Folded away, the filters stop filtering (nothing hidden narrows the list unseen)."""
        self.filters.setVisible(shown)
        self.query_changed.emit()

    @property
    def loops(self) -> list[LibraryLoop]:
        """The loops listed, newest first."""
        return self.library_model.loops

    def set_loops(self, loops: list[LibraryLoop], *, total: int | None = None) -> None:
        """`loops` listed; `total`, the library's count, says how many a search or filter left out."""
        self.library_model.set_loops(loops)
        self.library_count.setText(count_words(len(loops), total))
        self.empty_note.setText(self.empty_words())
        self.empty_note.setVisible(not loops)
        self.library_view.setVisible(bool(loops))

    def empty_words(self) -> str:
        """Why the list is empty: nothing matches the search (or the favourites filter), or no loops yet."""
        query = self.loop_query()
        text = query.text.strip()
        if text:
            return f"No loops match “{text}”" + (" among your favourites" if query.favourites_only else "") + \
                ": try fewer words."
        if query.bpm_min or query.bpm_max or query.bars or query.key:
            return "No loops match these filters: widen them, or turn Filters off."
        if query.favourites_only:
            return "No favourites yet: press ♥ on a loop you like."
        return ("No loops yet. Type a prompt and press Ctrl+Enter: each loop lands here, ready to drag into your "
                "DAW.")

    def select(self, job: str, *, scroll: bool = True) -> None:
        """Make `job`'s row the current one, scrolled into view (if listed) unless not `scroll`."""
        row = self.library_model.row_of(job)
        if row >= 0:
            index = self.library_model.index(row)
            self.library_view.setCurrentIndex(index)
            if scroll:
                self.library_view.scrollTo(index)

    def top_row(self) -> str:
        """The job of the first row in view while the list is scrolled down ("" at the top: new rows show)."""
        view = self.library_view
        if view.verticalScrollBar().value() == 0:
            return ""
        loop = view.indexAt(view.viewport().rect().topLeft()).data(LOOP_ROLE)
        return loop.job if loop is not None else ""

    def scroll_to_top_row(self, job: str) -> None:
        """Put `job`'s row back at the top of the view (where `top_row` found it)."""
        row = self.library_model.row_of(job)
        if row >= 0:
            self.library_view.scrollTo(self.library_model.index(row), QListView.ScrollHint.PositionAtTop)

    def selected_loops(self) -> list[LibraryLoop]:
        rows = sorted({index.row() for index in self.library_view.selectionModel().selectedIndexes()})
        return [self.library_model.loops[row] for row in rows]

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def set_colour_map(self, name: str) -> None:
        self.library_model.set_colour_map(name)
