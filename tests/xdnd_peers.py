"""The two windows of the cross-process drag test, each run as its own process on an X display:

    python tests/xdnd_peers.py source BUNDLE EXPORTS   the app, with a loop adopted from the results folder
    python tests/xdnd_peers.py target X Y              a minimal window that accepts file drops (XDND)

The source prints `READY x y path` (where to press, in screen pixels, and the file it will hand out); the
target prints `DROP <format list> <url>...` for each drop and exits."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel


def source(bundle: str, exports: str) -> int:
    from ui.app.settings import AppSettings
    from ui.app.theme import apply_theme
    from ui.app.window import MainWindow

    app = QApplication(sys.argv[:1])
    apply_theme(app)
    window = MainWindow(AppSettings(bundle=bundle, export_dir=exports))
    window.resize(1100, 700)
    window.move(0, 0)
    window.show()

    def ready() -> None:
        loops = [loop for loop in window.library_pane.loops if loop.export]
        if not loops:
            QTimer.singleShot(100, ready)
            return
        window._show_loop(loops[0])
        view = window.result_pane.spectrogram
        centre = view.mapToGlobal(view.rect().center())
        print(f"READY {centre.x()} {centre.y()} {loops[0].export}", flush=True)

    QTimer.singleShot(300, ready)
    QTimer.singleShot(60_000, app.quit)
    return app.exec()


class DropTarget(QLabel):
    def __init__(self) -> None:
        super().__init__("drop here")
        self.setAcceptDrops(True)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        event.acceptProposedAction()
        print("DROP", ",".join(mime.formats()), *(url.toString() for url in mime.urls()), flush=True)
        QTimer.singleShot(200, QApplication.instance().quit)


def target(x: int, y: int) -> int:
    app = QApplication(sys.argv[:1])
    window = DropTarget()
    window.resize(300, 300)
    window.move(x, y)
    window.show()
    QTimer.singleShot(500, lambda: print("TARGET", flush=True))
    QTimer.singleShot(60_000, app.quit)
    return app.exec()


if __name__ == "__main__":
    if sys.argv[1] == "source":
        sys.exit(source(sys.argv[2], sys.argv[3]))
    sys.exit(target(int(sys.argv[2]), int(sys.argv[3])))
