"""The Link toggle: the BPM field follows an Ableton Link session's tempo, live.

plugin/link.py asks the session once (`session_tempo`, which waits for peers); following it live is
asking again every couple of seconds on a worker thread, never on the GUI thread. Without the `link`
extra (aalink) or with no peers, one line says why and the toggle turns itself off."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

POLL_S = 2.0


class LinkFollower(QObject):
    tempo = Signal(float)
    stopped = Signal(str)  # why following ended ("" when asked to stop)

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def following(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.following:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="app-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        from engine.errors import RiffstudioError
        from plugin.link import session_tempo

        last = None
        while not self._stop.is_set():
            try:
                bpm = session_tempo()
            except RiffstudioError as error:
                self.stopped.emit(str(error))
                return
            if bpm != last:
                last = bpm
                self.tempo.emit(float(bpm))
            self._stop.wait(POLL_S)
        self.stopped.emit("")
