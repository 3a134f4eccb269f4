"""The window's size and place, kept between starts (in AppSettings, as text).

Why text: AppSettings holds plain values that round-trip through the ini file; Qt's geometry is bytes, so
it is kept as base64. Qt's restore puts a window saved on an unplugged screen back on a visible one."""

from __future__ import annotations

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QWidget

DEFAULT_SIZE = (1380, 820)  # the first start's size, shrunk to fit the screen


def saved_geometry(window: QWidget) -> str:
    return bytes(window.saveGeometry().toBase64()).decode("ascii")


def restore_geometry(window: QWidget, saved: str) -> None:
    """The saved size and place, else the default size within the screen's free area."""
    if saved and window.restoreGeometry(QByteArray.fromBase64(saved.encode("ascii"))):
        return
    width, height = DEFAULT_SIZE
    screen = window.screen()
    if screen is not None:
        free = screen.availableGeometry()
        width, height = min(width, free.width()), min(height, free.height())
    window.resize(width, height)
