"""What a drag to the DAW carries: file URLs only.

Why only `setUrls`: with a text format too, Windows builds more than a plain CF_HDROP and some DAWs
insert a link or the path as text instead of attaching the sample. Why CopyAction: the DAW must copy
or reference the file, never move it out of the export folder.
Note: Windows blocks drops from a normal app into a DAW running as administrator (UIPI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDrag, QPixmap
from PySide6.QtWidgets import QWidget

AUDIO_SUFFIXES = (".wav", ".flac", ".aiff", ".aif", ".ogg", ".mp3")


def file_mime_data(paths: Sequence[str]) -> QMimeData:
    """File URLs of the `paths` that are finished files (an empty or missing path is left out)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path) for path in paths if path and Path(path).is_file()])
    return mime


def drag_files(source: QWidget, paths: Sequence[str], pixmap: QPixmap | None = None) -> Qt.DropAction:
    """Run the drag (blocks in Qt's own drag loop, which keeps the GUI painting)."""
    drag = QDrag(source)
    drag.setMimeData(file_mime_data(paths))
    if pixmap is not None and not pixmap.isNull():
        drag.setPixmap(pixmap)
    return drag.exec(Qt.DropAction.CopyAction, Qt.DropAction.CopyAction)


def dropped_audio(mime: QMimeData) -> list[str]:
    """Local audio files in a drop (what "riff on this" accepts)."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls()
            if url.isLocalFile() and url.toLocalFile().lower().endswith(AUDIO_SUFFIXES)]


def reveal_in_file_manager(path: str) -> bool:
    """Show the file in Explorer (selected), Finder (selected), or its folder elsewhere; never waits.
    False: no file manager answered (a bare desktop, a missing `explorer`/`open`); the caller says so."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from PySide6.QtGui import QDesktopServices

    try:
        if sys.platform == "win32":
            subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
        elif sys.platform == "darwin":
            subprocess.Popen(["open", "-R", path])
        else:
            return QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))
    except OSError:
        return False
    return True
