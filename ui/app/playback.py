"""Playback through sounddevice's callback (PortAudio's own thread), never blocking the GUI.

sounddevice is imported when the producer first presses play, not at start: without PortAudio (or an
output device) the import or the stream raises, and the app must simply say "no audio output" once and
carry on. The file is read on a worker thread; the playhead is polled by the window (`position_s`).
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, Signal

NO_AUDIO = "no audio output"


class Player(QObject):
    unavailable = Signal(str)  # emitted once: the status bar's "no audio output"
    state_changed = Signal(bool)  # playing

    def __init__(self) -> None:
        super().__init__()
        self.volume = 0.8
        self.looping = True
        self.device: str | None = None
        self._stream = None
        self._audio: np.ndarray | None = None
        self._rate = 44100
        self._frame = 0
        self._lock = threading.Lock()
        self._warned = False
        self.path: str | None = None

    @property
    def playing(self) -> bool:
        return self._stream is not None

    def position_s(self) -> float | None:
        if self._audio is None:
            return None
        return self._frame / self._rate

    def toggle(self, path: str | None) -> None:
        if self.playing:
            self.stop()
        elif path:
            self.play(path)

    def play(self, path: str, start_s: float = 0.0) -> None:
        self.stop()
        self.path = path
        threading.Thread(target=self._open, args=(path, start_s), name="app-playback", daemon=True).start()

    def seek(self, seconds: float) -> None:
        with self._lock:
            if self._audio is not None:
                self._frame = int(min(max(seconds, 0.0) * self._rate, len(self._audio) - 1))

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # a device that vanished: nothing more to stop
                pass
            self.state_changed.emit(False)

    def _open(self, path: str, start_s: float) -> None:
        import soundfile

        try:
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except Exception as error:
            self.unavailable.emit(f"cannot play {path}: {error}")
            return
        with self._lock:
            self._audio, self._rate = audio, rate
            self._frame = int(min(start_s * rate, max(len(audio) - 1, 0)))
        try:
            import sounddevice

            stream = sounddevice.OutputStream(samplerate=rate, channels=audio.shape[1], dtype="float32",
                                              device=self.device or None, callback=self._callback)
            stream.start()
        except Exception:  # OSError (no PortAudio), PortAudioError (no device): say it once
            if not self._warned:
                self._warned = True
                self.unavailable.emit(NO_AUDIO)
            return
        self._stream = stream
        self.state_changed.emit(True)

    def _callback(self, out, frames, time, status) -> None:  # PortAudio's thread
        with self._lock:
            audio = self._audio
            if audio is None:
                out.fill(0)
                return
            written = 0
            while written < frames:
                take = min(frames - written, len(audio) - self._frame)
                if take <= 0:
                    if not self.looping:
                        out[written:] = 0
                        return
                    self._frame = 0
                    continue
                out[written:written + take] = audio[self._frame:self._frame + take] * self.volume
                self._frame += take
                written += take
