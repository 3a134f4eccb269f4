"""The one controller: the app's only door to the engine process (engine.client), as Qt signals.

Why threads here and nowhere else: EngineClient calls block (connect-or-start, a job's event stream,
the export after a job); each runs on a Python worker thread and reports back through signals, which
Qt queues onto the GUI thread. Views never touch the client, so the window cannot freeze on the engine.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ui.app.exports import ExportRequest, export_loop


class _AppClosed(Exception):
    """Raised from a job's event callback when the app closes: it stops following (the job carries on)."""


@dataclass(frozen=True)
class JobRequest:
    """A loop to queue: the GenerationSettings dict, the bundle, and the app's own grid choice."""

    settings: dict[str, Any]
    bundle: str
    provider: str = "auto"
    bpm: float | None = None
    bars: float | None = None
    label: str = ""  # what the queue shows ("more like this", "riff on kick.wav")
    session_options: dict[str, Any] = field(default_factory=dict)  # e.g. the NPU mode
    kind: str = ""  # what the library's badge says: draft, refined, riff, longer, variation ('' a new loop)
    parent: str = ""  # the library job it came from, or the file a riff starts from
    key: str | None = None  # the session's key its DAW file is transposed to on the grid ("Amin"); None: as made


@dataclass(frozen=True)
class FinishedJob:
    job: str
    paths: dict[str, str]
    sidecar: dict[str, Any]
    export: str  # the DAW file, or "" when exporting failed (export_error says why)
    export_error: str = ""
    seconds: float = 0.0


class EngineController(QObject):
    engine_state = Signal(str)  # one line for the status bar
    engine_trouble = Signal(str)  # the engine crashed or hung and was restarted: the banner
    job_queued = Signal(str, object)  # job id, JobRequest
    job_started = Signal(str)
    job_progress = Signal(str, str, float)  # job, stage, fraction
    job_preview = Signal(str, object)  # job, uint8 RGB array (64 x width/8)
    job_done = Signal(str, object)  # job, FinishedJob
    job_failed = Signal(str, str)
    job_cancelled = Signal(str)
    submit_failed = Signal(str)  # one line: the engine refused the job before queuing it
    model_loaded = Signal(str, str)  # provider, one line
    exported = Signal(str, str)  # job, the DAW file written for it (an adopted loop's first export)
    bundle_checked = Signal(str, str, str)  # path, "" when it opens (else the one-line reason), precision

    def __init__(self, export_folder: Callable[[dict[str, Any]], Path], engine_settings=None) -> None:
        super().__init__()
        self._export_folder = export_folder  # a finished loop's settings -> the folder its DAW file goes to
        self.bit_depth = "24"  # of the DAW files written after each job (the window keeps it in step)
        self._engine_settings = engine_settings
        self._client = None
        self._client_lock = threading.Lock()
        self._jobs: dict[str, Any] = {}
        self._closed = threading.Event()
        self.threads: list[threading.Thread] = []
        self._writing: dict[int | None, bool] = {}  # thread ident -> writing a DAW file now

    # -- intent from the views (all return at once) ------------------------------------------------

    def submit(self, request: JobRequest) -> None:
        self._run(self._submit_and_follow, request, name="job")

    def follow(self, job_id: str, request: JobRequest) -> None:
        """Carry on with a job queued before the app was last closed."""
        self._run(self._follow, job_id, request, name="follow")

    def cancel(self, job_id: str) -> None:
        self._run(self._cancel, job_id, name="cancel")

    def load_model(self, bundle: str, provider: str = "auto") -> None:
        self._run(self._load_model, bundle, provider, name="load-model")

    def check_bundle(self, bundle: str) -> None:
        """Open the bundle's manifest and check its files' sizes (engine.bundle; no ONNX) on a worker."""
        self._run(self._check_bundle, bundle, name="check-bundle")

    def export(self, request: ExportRequest, job: str) -> None:
        """Export (another folder, or a loop adopted from the results folder) on a worker: `exported`."""
        self._run(self._export_only, request, job, name="export")

    def close(self, wait_s: float = 10.0) -> None:
        """Let go of the engine (it carries on with queued jobs); let DAW files being written finish, so
        none is left half-done by the interpreter's exit."""
        import time

        self._closed.set()
        deadline = time.monotonic() + wait_s
        for thread in self.threads:
            if thread.name in ("app-export", "app-job") and thread.is_alive() and self._writing.get(thread.ident):
                thread.join(max(deadline - time.monotonic(), 0))
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- worker side ---------------------------------------------------------------------------------

    def _run(self, target, *args, name: str) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception as error:  # a bug must reach the window as a line, not kill a thread silently
                if not self._closed.is_set():
                    traceback.print_exc()
                    self.engine_state.emit(f"riffstudio: {error}")

        thread = threading.Thread(target=guarded, name=f"app-{name}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()]
        self.threads.append(thread)
        thread.start()

    def client(self):
        """The engine client, connecting (or starting an engine) on first use: worker threads only."""
        from engine.client import EngineClient

        with self._client_lock:
            if self._client is None:
                self.engine_state.emit("Starting the engine…")
                kwargs = {"settings": self._engine_settings} if self._engine_settings is not None else {}
                self._client = EngineClient(name="riffstudio-app", **kwargs)
                self.engine_state.emit(f"Engine ready (pid {self._client.pid})")
            return self._client

    def _submit_and_follow(self, request: JobRequest) -> None:
        from engine.errors import RiffstudioError

        try:
            job = self.client().submit(request.settings, request.bundle, provider=request.provider, previews=True,
                                     session_options=request.session_options)
        except RiffstudioError as error:
            self.submit_failed.emit(str(error))
            return
        self._jobs[job.id] = job
        self.job_queued.emit(job.id, request)
        self._stream(job, request)

    def _follow(self, job_id: str, request: JobRequest) -> None:
        from engine.errors import RiffstudioError

        try:
            job = self.client().follow(job_id)
        except RiffstudioError:
            return
        self._jobs[job_id] = job
        self.job_queued.emit(job_id, request)
        self._stream(job, request)

    def _stream(self, job, request: JobRequest) -> None:
        import time

        from engine.client import EngineRestarted
        from engine.errors import CancelledError, RiffstudioError
        from engine.process import protocol as p

        def show(event) -> None:
            if self._closed.is_set():
                raise _AppClosed
            if isinstance(event, p.Started):
                self.job_started.emit(job.id)
            elif isinstance(event, p.Progress):
                self.job_progress.emit(job.id, event.stage, float(event.fraction))
                if event.preview is not None:
                    self.job_preview.emit(job.id, event.preview.to_array())
            elif isinstance(event, EngineRestarted):
                self.engine_trouble.emit(f"The engine stopped ({event.reason}); it was restarted and your "
                                         "jobs carry on.")

        started = time.monotonic()
        try:
            done = job.outcome(show)
        except _AppClosed:  # the app stops following; the engine carries on with the job
            return
        except CancelledError:
            self.job_cancelled.emit(job.id)
            return
        except RiffstudioError as error:
            if not self._closed.is_set():
                self.job_failed.emit(job.id, str(error))
            return
        self._finish(job.id, done, request, time.monotonic() - started)

    def _finish(self, job_id: str, done, request: JobRequest, seconds: float) -> None:
        from engine.process.results import read_results

        found = read_results(Path(done.folder))
        sidecar = found.sidecar if found else {"settings": {**request.settings, "seed": done.seed}}
        export_request = ExportRequest(audio=done.paths["audio"], image=done.paths["image"], sidecar=sidecar,
                                       folder=self._export_folder(sidecar.get("settings", request.settings)),
                                       bpm=request.bpm, bars=request.bars, key=request.key,
                                       bit_depth=self.bit_depth)
        export, why = "", ""
        self._writing[threading.get_ident()] = True
        try:
            export = str(export_loop(export_request))
        except Exception as error:  # the loop itself is safe in the results folder: say why, keep going
            why = f"could not write the DAW file: {error}"
        finally:
            self._writing[threading.get_ident()] = False
        self.job_done.emit(job_id, FinishedJob(job=job_id, paths=dict(done.paths), sidecar=sidecar, export=export,
                                               export_error=why, seconds=seconds))

    def _export_only(self, request: ExportRequest, job: str) -> None:
        self._writing[threading.get_ident()] = True
        try:
            path = str(export_loop(request))
            self.exported.emit(job, path)
        except Exception as error:
            self.engine_state.emit(f"riffstudio: could not export: {error}")
        finally:
            self._writing[threading.get_ident()] = False

    def _check_bundle(self, bundle: str) -> None:
        from engine.bundle import open_bundle
        from engine.errors import RiffstudioError

        try:
            opened = open_bundle(bundle)
        except RiffstudioError as error:
            self.bundle_checked.emit(bundle, str(error).splitlines()[0] if str(error) else "not a model bundle", "")
            return
        except Exception as error:  # anything else a damaged folder throws is still one line, not a traceback
            self.bundle_checked.emit(bundle, f"{bundle} is not a usable model bundle ({type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''})", "")
            return
        self.bundle_checked.emit(bundle, "", opened.precision)

    def _cancel(self, job_id: str) -> None:
        self.client().cancel(job_id)

    def _load_model(self, bundle: str, provider: str) -> None:
        from engine.errors import RiffstudioError

        try:
            loaded = self.client().load_model(
                bundle, provider=provider,
                progress=lambda stage, fraction: self.engine_state.emit(f"Loading the model: {stage} "
                                                                        f"{fraction:.0%}"))
        except RiffstudioError as error:
            self.model_loaded.emit("", f"riffstudio: {error}")
            return
        device = "the NPU" if loaded.provider == "qnn" else "the CPU"
        why = getattr(loaded, "reason", "")  # protocol 1.1; an older engine does not say
        self.model_loaded.emit(loaded.provider, f"Model ready on {device} in {loaded.seconds:.1f} s"
                               + (f" ({why})" if why else ""))

