"""The library pane: search (FTS5, Ctrl+F), the favourites filter, and the list of loops with
thumbnails; rows drag out as files (multi-select drags several).

It shows the loops it is given (`set_loops`) and forwards intent as signals: which loops match, ratings
and deleting are the library's (through the window), so the pane holds no state of its own."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.app.library import LibraryLoop
from ui.app.library_model import LOOP_ROLE, LibraryModel, LoopDelegate


class LibraryPane(QWidget):
    query_changed = Signal()  # the search text or the favourites filter: the window searches again
    loop_chosen = Signal(object)  # the LibraryLoop of the list's new current row
    play_requested = Signal()  # a double-click, or Space in the list
    rating_requested = Signal(int)  # 0..5 stars for the current loop, keys 0-5 in the list
    delete_requested = Signal()  # Delete in the list: the selected loops

    def __init__(self) -> None:
        super().__init__(objectName="panel")
        self.search = QLineEdit(objectName="search")
        self.search.setPlaceholderText("Search loops (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.favourites_only = QToolButton(objectName="favourites_only", checkable=True)
        self.favourites_only.setText("♥ only")
        self.library_model = LibraryModel()
        self.library_view = QListView(objectName="library")
        self.library_view.setModel(self.library_model)
        self.library_view.setItemDelegate(LoopDelegate(self.library_view))
        self.library_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.library_view.setDragEnabled(True)
        self.library_view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.library_view.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.library_view.setMouseTracking(True)
        self.library_view.setUniformItemSizes(True)
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
        right_layout.addLayout(search_row)
        right_layout.addWidget(self.library_view, 1)
        # In place of a blank list: why it is empty, and what to do.
        self.empty_note = QLabel("", objectName="dim", wordWrap=True)
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.empty_note.setContentsMargins(8, 16, 8, 16)
        right_layout.addWidget(self.empty_note, 1)
        self._connect()

    def _connect(self) -> None:
        """The pane's own wiring: each control to the intent it means (the window connects the intents)."""
        self.search.textChanged.connect(lambda _: self.query_changed.emit())
        self.favourites_only.toggled.connect(lambda _: self.query_changed.emit())
        self.library_view.selectionModel().currentChanged.connect(self._current_changed)
        self.library_view.doubleClicked.connect(lambda _: self.play_requested.emit())
        QShortcut(QKeySequence(Qt.Key.Key_Delete), self.library_view, activated=self.delete_requested.emit,
                  context=Qt.ShortcutContext.WidgetShortcut)
        self.library_view.installEventFilter(self)

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

    def query(self) -> tuple[str, bool]:
        """What to search for: the search text and whether favourites only."""
        return self.search.text(), self.favourites_only.isChecked()

    @property
    def loops(self) -> list[LibraryLoop]:
        """The loops listed, newest first."""
        return self.library_model.loops

    def set_loops(self, loops: list[LibraryLoop]) -> None:
        self.library_model.set_loops(loops)
        self.library_count.setText(f"{len(loops)} loop{'s' * (len(loops) != 1)}")
        self.empty_note.setText(self.empty_words())
        self.empty_note.setVisible(not loops)
        self.library_view.setVisible(bool(loops))

    def empty_words(self) -> str:
        """Why the list is empty: nothing matches the search (or the favourites filter), or no loops yet."""
        text, favourites_only = self.query()
        if text.strip():
            return f"No loops match “{text.strip()}”" + (" among your favourites" if favourites_only else "") + \
                ": try fewer words."
        if favourites_only:
            return "No favourites yet: press ♥ on a loop you like."
        return ("No loops yet. Type a prompt and press Ctrl+Enter: each loop lands here, ready to drag into your "
                "DAW.")

    def select(self, job: str) -> None:
        """Make `job`'s row the current one, scrolled into view (if listed)."""
        row = self.library_model.row_of(job)
        if row >= 0:
            index = self.library_model.index(row)
            self.library_view.setCurrentIndex(index)
            self.library_view.scrollTo(index)

    def selected_loops(self) -> list[LibraryLoop]:
        rows = sorted({index.row() for index in self.library_view.selectionModel().selectedIndexes()})
        return [self.library_model.loops[row] for row in rows]

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def set_colour_map(self, name: str) -> None:
        self.library_model.set_colour_map(name)
