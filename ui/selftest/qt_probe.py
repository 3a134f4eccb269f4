"""The self-test's Qt probe, run in a child process: open a window, let it paint, print one JSON line.

Qt picks its platform plugin as the app would (QT_QPA_PLATFORM=offscreen on a machine with no
display); a plugin that cannot start aborts this process, which the parent reports as one line.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    import PySide6
    from PySide6.QtCore import QTimer, qVersion
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = QLabel("riffstudio self-test")
    window.resize(320, 120)
    window.show()
    seen: dict[str, bool] = {}

    def look() -> None:  # after the event loop ran: the window is mapped and has painted
        handle = window.windowHandle()
        seen["shown"] = window.isVisible() and handle is not None and handle.isExposed()
        app.quit()

    QTimer.singleShot(200, look)
    app.exec()
    shown = seen.get("shown", False)
    print(json.dumps({"pyside": PySide6.__version__, "qt": qVersion(), "platform": app.platformName(),
                      "shown": shown}), flush=True)
    return 0 if shown else 1
