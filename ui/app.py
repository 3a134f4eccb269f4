"""Start the desktop app: one QApplication, one main window."""

from __future__ import annotations

import sys

from engine.version import __version__


def run_app(quit_after: float | None = None) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Riffstudio")
    app.setApplicationVersion(__version__)
    window = MainWindow()
    window.show()
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), app.quit)
    return app.exec()
