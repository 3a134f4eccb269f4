"""The desktop app: views that render and forward intent, Qt models over the library, and one
controller on `engine.client` (see docs/architecture.md, "The desktop app")."""

from __future__ import annotations

import sys

from engine.version import __version__


def run_app(quit_after: float | None = None) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui.app.settings import load_settings
    from ui.app.theme import apply_theme
    from ui.app.window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Riffstudio")
    app.setApplicationVersion(__version__)
    settings = load_settings()
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    window.show()
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), window.close)
        QTimer.singleShot(int(quit_after * 1000) + 50, app.quit)
    return app.exec()
