"""The library pane: search (FTS5, Ctrl+F), the favourites filter, and the list of loops with
thumbnails; rows drag out as files (multi-select drags several). Widgets only; the window connects them."""

from __future__ import annotations

from PySide6.QtCore import Qt
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

from ui.app.library_model import LibraryModel, LoopDelegate


class LibraryPane(QWidget):
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
