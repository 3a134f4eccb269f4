"""Start the app's main window as the app does and report what its process holds at the first paint.

    python tests/window_probe.py        # prints one JSON line: {"seconds": ..., "started": ..., "modules": [...]}

Run by tests/test_layers.py (which modules are loaded) and tests/benchmarks/bench_window_start.py (how long it
takes, here and at an older commit: it imports only `ui.app` and PySide6 from whatever tree is on the path, so the
same probe serves any checkout). Qt runs offscreen; every platformdirs folder is a fresh temporary one, so no
library, settings or engine of the user's is touched, and the Hub is offline.

"seconds" runs from just before `import ui.app.window` to the window's first paint event; "started" is the
wall-clock time (time.time()) of that paint, for a caller measuring from the process's launch.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

XDG = ("XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME")


def private_home() -> str:
    """A temporary home with a 0700 folder per XDG variable, set for this process (and any engine it starts)."""
    home = tempfile.mkdtemp(prefix="rs-probe-")
    for name in XDG:
        folder = os.path.join(home, name.split("_")[1].lower())
        os.mkdir(folder, 0o700)
        os.environ[name] = folder
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return home


def main() -> int:
    home = private_home()
    start = time.perf_counter()
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    window = MainWindow(AppSettings())
    report: dict[str, object] = {}

    def finish() -> None:
        window.shutdown()
        app.quit()

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not report:
                report.update(seconds=time.perf_counter() - start, started=time.time(), modules=sorted(sys.modules))
                QTimer.singleShot(0, finish)
            return False

    watcher = FirstPaint()
    window.installEventFilter(watcher)
    window.show()
    QTimer.singleShot(30_000, finish)  # no paint in 30 s: report nothing, fail below
    app.exec()
    shutil.rmtree(home, ignore_errors=True)
    if not report:
        print("the window was never painted", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
