"""Kept for old imports: the main window lives in ui/app/window.py."""

from ui.app.window import MainWindow

__all__ = ["MainWindow"]
