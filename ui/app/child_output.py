"""The app's `riffstudio` children write UTF-8, whatever the system's code page.

On Windows a console program writes in the ANSI code page (cp1252 in Western Europe), and the app decoded
its children's output as UTF-8: a model path under "C:\\Users\\Zoë" or a bundle named in Japanese came
out garbled in the progress line and the error shown. The app asks its children for UTF-8 instead
(RIFFSTUDIO_UTF8_OUTPUT, honoured by `ui/cli/main.py`), so both ends agree on every system.
"""

from __future__ import annotations

from PySide6.QtCore import QProcess, QProcessEnvironment

UTF8_OUTPUT_ENV = "RIFFSTUDIO_UTF8_OUTPUT"


def asking_for_utf8(process: QProcess) -> QProcess:
    """`process` with this app's environment plus the request for UTF-8 output; returns it."""
    environment = QProcessEnvironment.systemEnvironment()
    environment.insert(UTF8_OUTPUT_ENV, "1")
    process.setProcessEnvironment(environment)
    return process
