"""The app's `riffstudio` children (`model get --json`, `batch --json`, the Model dialog's `model convert` and
`model check`): one QProcess at a time, its JSON lines as they come, its end with the one line that says why,
and UTF-8 output whatever the system's code page.

Why one class: the model getter (ui/app/model_get_runner.py), the batch window (ui/app/batch_runner.py) and the
Model dialog (ui/app/model_dialog.py) run the same kind of child and must read it the same way: never waited on
(the window stays responsive), a line written in pieces read whole, a failure told by the child's last stderr
line (`riffstudio: <what went wrong and what to do>`), never a traceback. The JSON lines are the contract; the
other lines (a report, a terminal's progress lines, a library's stray print) are only words for a log (`said`),
which the Model dialog shows and the others ignore.

UTF-8: on Windows a console program writes in the ANSI code page (cp1252 in Western Europe), and the app
decoded its children's output as UTF-8: a model path under "C:\\Users\\Zoë" or a bundle named in Japanese came
out garbled in the progress line and the error shown. The app asks its children for UTF-8 instead
(RIFFSTUDIO_UTF8_OUTPUT, honoured by `ui/cli/main.py`), so both ends agree on every system.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal, Slot

UTF8_OUTPUT_ENV = "RIFFSTUDIO_UTF8_OUTPUT"
REPO = Path(__file__).resolve().parents[2]
STDERR_KEPT = 16_384  # bytes of a child's stderr kept for its last line


def asking_for_utf8(process: QProcess) -> QProcess:
    """`process` with this app's environment plus the request for UTF-8 output; returns it."""
    environment = QProcessEnvironment.systemEnvironment()
    environment.insert(UTF8_OUTPUT_ENV, "1")
    process.setProcessEnvironment(environment)
    return process


class RiffstudioChild(QObject):
    """One `riffstudio ARGUMENTS` child at a time (`command` + arguments; by default the same `riffstudio` as this
    app). `event(dict)` for each JSON object line on stdout; `ended(code, crashed, last_line)` once it has ended,
    unless it was abandoned (`abandon`, `stop`, or a new `start`). A child that cannot start ends with code -1
    and the line "riffstudio: could not start ...". `said(line)` for every other line, stdout's or stderr's."""

    event = Signal(object)  # dict: one JSON line
    said = Signal(str)  # a line that is not a JSON object (a report, progress for a terminal, an error)
    ended = Signal(int, bool, str)  # exit code, crashed, the last stderr line ("" if none)

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None) -> None:
        super().__init__(parent)
        if command is None:  # the same `riffstudio` as this app: riffstudio-cli in the app folder
            from engine.process.launch import riffstudio_command

            command = riffstudio_command()
        self.command = list(command)
        self._process: QProcess | None = None
        self._stdout = b""
        self._stderr = b""
        self._stderr_line = b""  # stderr's unfinished line

    @property
    def running(self) -> bool:
        return self._process is not None

    def pid(self) -> int:
        """The running child's process id (0: none)."""
        return int(self._process.processId()) if self._process is not None else 0

    def start(self, arguments: list[str]) -> None:
        """Start `riffstudio ARGUMENTS`; a child still running is abandoned first."""
        if self._process is not None:
            self.abandon()
        process = asking_for_utf8(QProcess(self))
        if (REPO / "ui" / "cli").is_dir():  # a source tree: `-m ui.cli.main` finds it from there
            process.setWorkingDirectory(str(REPO))
        # Bound slots (the child is `sender()`), not closures: a closure holding this object, owned by the child's
        # connection, would let the child's deletion delete this object, and so the child again, mid-destruction.
        process.readyReadStandardOutput.connect(self._on_stdout)
        process.readyReadStandardError.connect(self._on_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process, self._stdout, self._stderr, self._stderr_line = process, b"", b"", b""
        process.start(self.command[0], [*self.command[1:], *arguments])

    def tell(self, line: str) -> None:
        """Write `line` to the child's stdin (`batch --json` stops on `stop`)."""
        if self._process is not None:
            self._process.write(f"{line}\n".encode())

    def kill(self) -> None:
        """Kill the child; its end is still reported (`ended`)."""
        if self._process is not None:
            self._process.kill()

    def abandon(self) -> None:
        """Kill the child and forget it: its end reports nothing."""
        process, self._process = self._process, None
        if process is not None:
            process.setProperty("abandoned", True)
            process.kill()

    def stop(self, wait_ms: int = 3000, *, asking: str = "") -> None:
        """Shutdown: end the child, without news, and wait (at most `wait_ms`) until it has gone. With `asking`,
        that line is written to it first and it has `wait_ms` to end by itself before it is killed."""
        process = self._process
        if process is None:
            return
        process.setProperty("abandoned", True)
        if asking:
            self.tell(asking)
            process.closeWriteChannel()
            if process.waitForFinished(wait_ms):
                self._process = None
                return
        self.abandon()
        process.waitForFinished(wait_ms)

    # -- the child's news ----------------------------------------------------------------------------

    @Slot()
    def _on_stdout(self) -> None:
        self._read_stdout(self.sender())

    @Slot()
    def _on_stderr(self) -> None:
        self._read_stderr(self.sender())

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        process = self.sender()
        if error == QProcess.ProcessError.FailedToStart and process is self._process:  # no `finished` follows
            process.deleteLater()
            self._process = None
            self.ended.emit(-1, False, f"riffstudio: could not start {self.command[0]} ({process.errorString()})")

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        process = self.sender()
        process.deleteLater()
        if process.property("abandoned") or process is not self._process:
            return
        self._read_stdout(process)
        self._read_stderr(process)
        if self._stdout.strip():  # the last line, unterminated
            self._line(self._stdout)
            self._stdout = b""
        if self._stderr_line.strip():
            self._say(self._stderr_line)
            self._stderr_line = b""
        if process is not self._process:  # abandoned, or another started, by a slot of that last line
            return
        self._process = None
        self.ended.emit(code, status == QProcess.ExitStatus.CrashExit, self._last_line())

    def _read_stdout(self, process: QProcess) -> None:
        if process is not self._process:
            return
        self._stdout += bytes(process.readAllStandardOutput())
        *lines, self._stdout = self._stdout.split(b"\n")  # a line written in pieces waits for its end
        for line in lines:
            self._line(line)

    def _read_stderr(self, process: QProcess) -> None:
        if process is not self._process:
            return
        data = bytes(process.readAllStandardError())
        self._stderr = (self._stderr + data)[-STDERR_KEPT:]
        *lines, rest = (self._stderr_line + data).split(b"\n")
        self._stderr_line = rest[-STDERR_KEPT:]  # a line without end is not kept whole
        for line in lines:
            self._say(line)

    def _line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict):
            self.event.emit(event)
        else:  # not an event: words for a log at most
            self._say(line)

    def _say(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip().rsplit("\r", 1)[-1]  # a bar redrawn in place: as it ended
        if text.strip():
            self.said.emit(text)

    def _last_line(self) -> str:
        lines = [line.strip() for line in self._stderr.decode(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else ""
