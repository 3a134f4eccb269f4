"""Playback through sounddevice's callback (PortAudio's own thread), never blocking the GUI.

sounddevice is imported when the producer first presses play, not at start: without PortAudio (or an
output device) the import or the stream raises, and the app says once what to check (no output found, an
output that would not open, no PortAudio: ui/app/audio_devices.py's words) and carries on; once more after
another output is chosen. Streams are opened and closed on one long-lived audio thread (on Windows with COM initialised
there once: WASAPI's objects belong to the thread that made them, and a thread per play left them to
threads that had ended); the file is read there too. The playhead is polled by the window (`position_s`).
The output is chosen by host API and name (ui/app/audio_devices.py), never by an ambiguous bare name.
"""

from __future__ import annotations

import queue
import sys
import threading

import numpy as np
from PySide6.QtCore import QObject, Signal

from ui.app.audio_devices import NO_OUTPUT

NO_AUDIO = NO_OUTPUT  # no output found: what to check, in the producer's words


class Player(QObject):
    unavailable = Signal(str)  # what to check, once (again after another output is chosen): the status bar's
    state_changed = Signal(bool)  # playing

    def __init__(self) -> None:
        super().__init__()
        self.volume = 0.8
        self.looping = True
        self._device: str | None = None
        self._stream = None
        self._audio: np.ndarray | None = None
        self._rate = 44100
        self._frame = 0
        self._lock = threading.Lock()
        self._warned = False
        self.path: str | None = None
        self._actions: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def device(self) -> str | None:
        """The output chosen in Settings ("HOST API: NAME"; None: the system default)."""
        return self._device

    @device.setter
    def device(self, choice: str | None) -> None:
        if choice != self._device:
            self._warned = False  # another output: if it does not play either, say so again
        self._device = choice

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
        self._do(self._open, path, start_s)

    def seek(self, seconds: float) -> None:
        with self._lock:
            if self._audio is not None:
                self._frame = int(min(max(seconds, 0.0) * self._rate, len(self._audio) - 1))

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            closed = threading.Event()
            self._do(self._close, stream, closed)
            closed.wait(2.0)  # a device that hangs on close must not hang the window
            self.state_changed.emit(False)

    def _do(self, action, *args) -> None:
        """Run `action(*args)` on the audio thread (started on first use)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._audio_thread, name="app-audio", daemon=True)
            self._thread.start()
        self._actions.put((action, args))

    def _audio_thread(self) -> None:
        _initialise_com()
        while True:
            action, args = self._actions.get()
            action(*args)

    @staticmethod
    def _close(stream, closed: threading.Event) -> None:
        try:
            stream.stop()
            stream.close()
        except Exception:  # a device that vanished: nothing more to stop
            pass
        closed.set()

    def _open(self, path: str, start_s: float) -> None:
        import soundfile

        if path != self.path:  # another play was asked for meanwhile
            return
        try:
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except Exception as error:
            self.unavailable.emit(f"cannot play {path}: {error}")
            return
        with self._lock:
            self._audio, self._rate = audio, rate
            self._frame = int(min(start_s * rate, max(len(audio) - 1, 0)))
        from ui.app.audio_devices import no_audio_words, output_devices, resolve, stream_options

        try:
            import sounddevice
        except Exception:  # OSError: no PortAudio library
            self._say_once(no_audio_words(0, None, portaudio=False))
            return
        device, outputs = None, 0
        try:
            devices, host_apis = sounddevice.query_devices(), sounddevice.query_hostapis()
            outputs = len(output_devices(devices, host_apis))
            device = resolve(self.device or "", devices, host_apis)
            stream = sounddevice.OutputStream(samplerate=rate, channels=audio.shape[1], dtype="float32",
                                              callback=self._callback, **stream_options(device, rate))
            stream.start()
        except Exception:  # PortAudioError: no output, or one that would not open
            self._say_once(no_audio_words(outputs, device))
            return
        self._stream = stream
        self.state_changed.emit(True)

    def _say_once(self, words: str) -> None:
        if not self._warned:
            self._warned = True
            self.unavailable.emit(words)

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


def _initialise_com() -> None:
    """COM for this thread, once (Windows: WASAPI streams need it on the thread that opens them)."""
    if sys.platform == "win32":
        import ctypes

        ctypes.windll.ole32.CoInitializeEx(None, 0)  # COINIT_MULTITHREADED
