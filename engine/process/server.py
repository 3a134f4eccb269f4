"""`riffstudio engine serve`: the engine process. One warm bundle, one job at a time, many clients.

Threads, each with one job:
- the accept thread takes connections and gives each its own connection thread, which authenticates
  the client and then reads its requests (a silent or broken client only ever stalls its own thread);
- each connection has a writer thread draining its outbox, so a client that stops reading (or is
  stopped) never blocks the worker;
- the worker runs jobs from the run queue (interactive before batch, first come first served within a
  priority), through `render_loop` with its cancel hook, and writes the results folder;
- the main thread waits for a stop (a `shutdown` request, a signal, or the idle timeout).

The journal is written before every acknowledgement and at every change of state (see journal.py).
"""

from __future__ import annotations

import contextlib
import faulthandler
import heapq
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import remove_all_leftovers
from engine.choices import ENGINE_AUDIO_FORMATS, PROVIDERS
from engine.errors import (
    CancelledError,
    EngineError,
    InvalidInputError,
    RiffstudioError,
    reason,
)
from engine.loop_files import LoopOnDisk
from engine.process import connection_file as files
from engine.process import protocol as p
from engine.process import transport
from engine.process.boot import boot_time
from engine.process.hooks import fault_if_asked
from engine.process.journal import Journal, JournalJob, open_journal
from engine.process.launch import START_TOKEN_ENV
from engine.process.memory import check_fits, model_bytes
from engine.process.paths import engine_data_dir, journal_path, results_dir
from engine.process.results import read_results, write_results
from engine.process.settings import EngineSettings
from engine.version import __version__

log = logging.getLogger("riffstudio.engine")

OUTBOX_LIMIT = 5000  # messages queued for one client that is not reading: past this it is dropped
CRASH_LOG = "crash.log"


class EngineAlreadyRunning(EngineError):
    def __init__(self, info: files.ConnectionInfo | None) -> None:
        pid = info.pid if info else "unknown"
        super().__init__(f"an engine is already running (pid {pid}); `riffstudio engine status` shows it")
        self.info = info


def error_code(error: BaseException) -> str:
    """The protocol's code for one of our exceptions: its class's `code` (engine/errors.py, the one table)."""
    if isinstance(error, p.ProtocolError):
        return error.code
    return error.code if isinstance(error, RiffstudioError) else "internal"


class Session:
    """One authenticated client connection: what it follows, and its outbox."""

    def __init__(self, conn, number: int) -> None:
        self.conn = transport.SharedConnection(conn, owners=2)  # the request reader and the writer below
        self.number = number
        self.jobs: set[str] = set()
        self.ready = False  # after a good `hello`
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._closed = threading.Event()
        threading.Thread(target=self._write, name=f"writer-{number}", daemon=True).start()

    def send(self, message: p.Message) -> None:
        if self._closed.is_set():
            return
        if self._outbox.qsize() > OUTBOX_LIMIT:
            log.warning("client %d is not reading its messages; dropping it", self.number)
            self.abort()
            return
        self._outbox.put(p.encode(message))

    def close(self) -> None:
        """Close after what is queued has been sent."""
        self._outbox.put(None)

    def abort(self) -> None:
        """Close now, waking any thread blocked on the connection."""
        self._closed.set()
        self._outbox.put(None)
        self.conn.shut()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _write(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self.conn.send_bytes(data)
            except OSError:
                break
        self._closed.set()
        self.conn.shut()  # a reader still waiting for requests ends too
        self.conn.release()


@dataclass
class ActiveJob:
    """The job this engine is running now, with its cancel flag (the wire's RunningJob is what status reports of it)."""

    job: JournalJob
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = "load"
    step: int = 0
    total: int = 0
    requeue: bool = False  # cancelled by a shutdown: back to the queue, not "cancelled"


@dataclass(frozen=True)
class LoadTask:
    session: Session
    request: p.LoadModel


class Engine:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.started = time.time()
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)
        self._queue: list[tuple[tuple[int, int], str]] = []  # heap of (rank, job id)
        self._loads: list[LoadTask] = []
        self._sessions: list[Session] = []
        self._session_count = 0
        self._running: ActiveJob | None = None
        self._latest: dict[str, p.Progress] = {}  # each running job's last progress, for re-subscribers
        self._generator = None
        self._generator_key: tuple | None = None
        self._stop = threading.Event()
        self._stop_reason = ""
        self._provider_reason = ""  # choose_provider's sentence for the warm generator (model_loaded.reason)
        self._last_activity = time.monotonic()
        self.journal: Journal | None = None
        self._notes: list[str] = []  # what the engine did about its own state, for `engine status`
        self.info: files.ConnectionInfo | None = None

    # -- life ----------------------------------------------------------------------------------------

    def serve(self, on_ready: Callable[[files.ConnectionInfo], None] | None = None) -> str:
        """Run until stopped; returns why it stopped. EngineAlreadyRunning if another engine is alive."""
        lock = files.try_lock(files.ENGINE_LOCK)
        for _ in range(10):  # a client's live_engine() holds the lock for a moment to test it: try again
            if lock is not None:
                break
            time.sleep(0.05)
            lock = files.try_lock(files.ENGINE_LOCK)
        if lock is None:
            raise EngineAlreadyRunning(files.read_connection_file())
        crash_file = None
        try:
            crash_file = self._open_crash_log()
            self.journal, note = open_journal(journal_path())
            if note:  # once in the log (a spawned engine's stderr is the log too), and to every client
                log.warning("%s", note)
                self._notes.append(note)
            self._recover()
            for stale in files.runtime_dir().glob("engine-*.sock"):  # killed engines' sockets: none is alive
                with contextlib.suppress(OSError):
                    stale.unlink()
            address, family = transport.new_address(files.runtime_dir())
            key = transport.new_key()
            listener = transport.listen(address, family)
            self.info = files.ConnectionInfo(address=address, family=family, key=key.hex(), pid=os.getpid(),
                                             protocol=p.PROTOCOL_VERSION, engine_version=__version__,
                                             started=self.started, start_token=os.environ.get(START_TOKEN_ENV, ""))
            self._key = key
            threading.Thread(target=self._accept, args=(listener,), name="accept", daemon=True).start()
            worker = threading.Thread(target=self._work_loop, name="worker", daemon=True)
            worker.start()
            if self.settings.model:
                with self._lock:
                    self._loads.append(LoadTask(None, p.LoadModel(id="start", bundle=self.settings.model,
                                                                  provider=self.settings.provider)))
                    self._work.notify_all()  # the worker is already waiting
            files.write_connection_file(self.info)
            log.info("engine %s ready (pid %d, protocol %s) at %s", __version__, os.getpid(),
                     p.PROTOCOL_VERSION, address)
            if on_ready:
                on_ready(self.info)
            while not self._stop.wait(0.25):
                self._check_idle()
                self._keep_connection_file()
            self._wind_down(worker)
            with contextlib.suppress(OSError):
                listener.close()
            return self._stop_reason
        finally:
            if self.info is not None:
                files.remove_connection_file(self.info.pid)
            if self.journal is not None:
                self.journal.close()
            if crash_file is not None:
                faulthandler.disable()
                crash_file.close()
                with contextlib.suppress(OSError):
                    (engine_data_dir() / CRASH_LOG).unlink()  # a clean exit leaves no crash behind
            files.release(lock)

    def stop(self, why: str) -> None:
        with self._lock:
            if not self._stop_reason:
                self._stop_reason = why
            if self._running is not None:
                self._running.requeue = True
                self._running.cancel.set()
            self._work.notify_all()
        self._stop.set()

    def _wind_down(self, worker: threading.Thread) -> None:
        for session in self._all_sessions():
            session.send(p.Goodbye(reason=self._stop_reason))
            session.close()
        worker.join(timeout=10)
        with self._lock:
            if self._running is not None:  # stuck in a model load: put it back for the next engine
                self.journal.requeue(self._running.job.id)
        time.sleep(0.1)  # let the writers flush the goodbyes

    def _check_idle(self) -> None:
        with self._lock:
            busy = self._sessions or self._queue or self._running or self._loads
            if busy:
                self._last_activity = time.monotonic()
            elif time.monotonic() - self._last_activity > self.settings.idle_timeout_s:
                log.info("idle for %.0f s with no client: exiting", self.settings.idle_timeout_s)
                self.stop(f"idle for {self.settings.idle_timeout_s:g} s")

    def _keep_connection_file(self) -> None:
        """Write the connection file again when it is gone, damaged or another's: the engine holds the engine
        lock, so it alone knows it is alive, and clients must find it (an unreadable file orphaned a running
        engine until its idle exit)."""
        info = files.read_connection_file()
        if self.info is not None and (info is None or info.pid != self.info.pid):
            with contextlib.suppress(OSError):
                files.write_connection_file(self.info)
                log.warning("the connection file was missing or damaged: written again")

    def _open_crash_log(self):
        """Fatal errors (a segfault in a driver) are written here; the next engine reads them as the reason
        its predecessor stopped, then starts a fresh log."""
        path = engine_data_dir() / CRASH_LOG
        with contextlib.suppress(OSError):
            self._previous_crash = _last_line(path.read_text(encoding="utf-8", errors="replace"))
        file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (open for the engine's whole life)
        faulthandler.enable(file)
        return file

    def _recover(self) -> None:
        why = (self.settings.after_crash or getattr(self, "_previous_crash", None)
               or "the engine stopped without saying why")

        def finished(job: JournalJob) -> bool:  # its results folder is complete: adopted, not failed
            return read_results(results_dir() / job.id) is not None

        for job in self.journal.recover(why, finished, booted=boot_time()):
            log.warning("job %s failed: %s", job.id, job.error_message)
        remove_all_leftovers(results_dir())  # results folders a crash left half-written
        for job in self.journal.queued():
            heapq.heappush(self._queue, (job.rank, job.id))
        if self._queue:
            log.info("resuming %d job(s) from the journal", len(self._queue))

    # -- connections ---------------------------------------------------------------------------------

    def _accept(self, listener) -> None:
        while not self._stop.is_set():
            try:
                conn = listener.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            threading.Thread(target=self._serve_connection, args=(conn,), name="connection", daemon=True).start()

    def _serve_connection(self, conn) -> None:
        try:
            transport.authenticate_client(conn, self._key)
        except (EngineError, OSError, EOFError) as error:
            log.info("refused a connection: %s", error)
            with contextlib.suppress(OSError):
                conn.close()
            return
        with self._lock:
            if self._stop.is_set():  # stopping (idle, or asked to): the client retries and finds the next engine
                with contextlib.suppress(OSError):
                    conn.close()
                return
            self._session_count += 1
            session = Session(conn, self._session_count)
            self._sessions.append(session)
        try:
            self._read_requests(session)
        finally:
            with self._lock:
                self._sessions.remove(session)
                self._last_activity = time.monotonic()
            session.close()
            session.conn.release()

    def _read_requests(self, session: Session) -> None:
        while not session.closed:
            try:
                data = session.conn.receive_bytes()
            except p.ProtocolError as error:  # too large: the stream cannot be resynchronised
                session.send(p.Error(re=None, code=error.code, message=str(error)))
                return
            except (EOFError, OSError, RuntimeError):  # RuntimeError: a Windows pipe closed under the read
                return
            try:
                message = p.decode(data)
                if message.TYPE not in p.REQUESTS:
                    raise p.ProtocolError("unknown_type", f"{message.TYPE!r} is sent by the engine, not to it")
            except p.ProtocolError as error:
                session.send(p.Error(re=p.request_id(data), code=error.code, message=str(error)))
                continue
            try:
                if isinstance(message, p.Hello):
                    if not self._hello(session, message):
                        return
                elif not session.ready:
                    raise p.ProtocolError("not_ready", "say hello first (the handshake gives the protocol version)")
                else:
                    self._handle(session, message)
            except RiffstudioError as error:
                session.send(p.Error(re=message.id, code=error_code(error), message=str(error)))
            except Exception as error:  # a bug: the engine stays up, the client hears about it
                log.exception("request %s failed", message.TYPE)
                session.send(p.Error(re=message.id, code="internal",
                                     message=f"the engine failed on a {message.TYPE} request ({reason(error, 200)})"))

    def _hello(self, session: Session, hello: p.Hello) -> bool:
        if p.major(hello.protocol) != p.major(p.PROTOCOL_VERSION):
            session.send(p.Error(re=hello.id, code="protocol_mismatch",
                                 message=f"this engine speaks protocol {p.PROTOCOL_VERSION} and the client "
                                 f"{hello.protocol}: use a client and an engine from the same riffstudio"))
            return False
        session.ready = True
        session.send(p.Welcome(re=hello.id, protocol=p.PROTOCOL_VERSION, engine_version=__version__,
                               pid=os.getpid(), notes=list(self._notes)))
        return True

    def _handle(self, session: Session, message: p.Message) -> None:
        if isinstance(message, p.Submit):
            self._submit(session, message)
        elif isinstance(message, p.Cancel):
            session.send(p.Ack(re=message.id, job=message.job, state=self._cancel(message.job)))
        elif isinstance(message, p.Subscribe):
            self._subscribe(session, message)
        elif isinstance(message, p.Status):
            session.send(self._status(message.id))
        elif isinstance(message, p.Jobs):
            session.send(p.JobList(re=message.id, jobs=[job.info() for job in self.journal.recent(message.limit)]))
        elif isinstance(message, p.Ping):
            session.send(p.Pong(re=message.id, time=time.time()))
        elif isinstance(message, p.LoadModel):
            with self._lock:
                self._loads.append(LoadTask(session, message))
                self._work.notify_all()
        elif isinstance(message, p.Shutdown):
            session.send(p.Ack(re=message.id))
            self.stop("asked to stop by a client")

    def _submit(self, session: Session, submit: p.Submit) -> None:
        request = checked_request(submit)
        with self._lock:  # journal, queue and follow together: no event can slip between them
            job, duplicate = self.journal.submit(request, submit.priority, submit.key)
            session.jobs.add(job.id)
            if not duplicate:
                heapq.heappush(self._queue, (job.rank, job.id))
                self._work.notify_all()
            position = self._position(job.id)
            session.send(p.Queued(re=submit.id, job=job.id, state=job.state, position=position,
                                  duplicate=duplicate))
            if duplicate:
                self._catch_up(session, job)

    def _subscribe(self, session: Session, subscribe: p.Subscribe) -> None:
        with self._lock:
            jobs = [job for job in map(self.journal.get, subscribe.jobs) if job is not None]
            session.jobs.update(job.id for job in jobs)
            session.send(p.Subscribed(re=subscribe.id, jobs=[job.info() for job in jobs]))
            for job in jobs:
                self._catch_up(session, job)

    def _catch_up(self, session: Session, job: JournalJob) -> None:
        """What a client that (re)joins a job has missed: its end, or where it is now."""
        event = terminal_event(job)
        if event is not None:
            session.send(event)
        elif self._running is not None and self._running.job.id == job.id:
            session.send(p.Started(job=job.id, attempt=self._running.job.attempts))
            if job.id in self._latest:
                session.send(self._latest[job.id])

    def _cancel(self, job_id: str) -> str:
        with self._lock:
            job = self.journal.get(job_id)
            if job is None:
                raise p.ProtocolError("unknown_job", f"there is no job {job_id!r}")
            if self._running is not None and self._running.job.id == job_id:
                self._running.cancel.set()
                return "running"
            if job.state == "queued":
                self.journal.mark_cancelled(job_id, "cancelled before it started")
                self._queue = [item for item in self._queue if item[1] != job_id]
                heapq.heapify(self._queue)
                self._broadcast(p.Cancelled(job=job_id, reason="cancelled before it started"))
                return "cancelled"
            return job.state

    def _status(self, request_id: str) -> p.EngineStatus:
        with self._lock:
            running = None
            if self._running is not None:
                r = self._running
                running = p.RunningJob(job=r.job.id, step=r.step, total=r.total, stage=r.stage)
            key = self._generator_key
            return p.EngineStatus(
                re=request_id, pid=os.getpid(), protocol=p.PROTOCOL_VERSION, engine_version=__version__,
                uptime_s=round(time.time() - self.started, 3), running=running,
                queue=[job_id for _, job_id in sorted(self._queue)],
                bundle=key[0] if key else None,
                provider=self._generator.provider if self._generator is not None else None,
                intra_op_threads=self.settings.intra_op_threads, memory_limit_mb=self.settings.memory_limit_mb,
                idle_timeout_s=self.settings.idle_timeout_s, clients=len(self._sessions), notes=list(self._notes))

    def _position(self, job_id: str) -> int:
        order = [item_id for _, item_id in sorted(self._queue)]
        return order.index(job_id) if job_id in order else 0

    def _broadcast(self, event: p.Message) -> None:
        job_id = getattr(event, "job", None)
        for session in self._all_sessions():
            if job_id in session.jobs:
                session.send(event)

    def _all_sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions)

    # -- the worker ----------------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                while not (self._stop.is_set() or self._queue or self._loads):
                    self._work.wait()
                if self._stop.is_set():
                    return
                if self._loads:
                    task, job = self._loads.pop(0), None
                else:
                    _, job_id = heapq.heappop(self._queue)
                    job = self.journal.get(job_id)
                    if job is None or job.state != "queued":
                        continue
                    job = self.journal.mark_running(job_id)
                    self._running = ActiveJob(job=job)
            if job is None:
                self._load(task)
            else:
                try:
                    self._run(self._running)
                finally:
                    with self._lock:
                        self._running = None
                        self._latest.pop(job.id, None)
                        self._last_activity = time.monotonic()

    def _load(self, task: LoadTask) -> None:
        request = task.request
        reply = task.session.send if task.session is not None else (lambda message: None)
        try:
            start = time.perf_counter()
            generator = self._generator_for(request.bundle, request.provider, request.session_options,
                                            lambda stage, fraction: reply(p.ModelProgress(
                                                re=request.id, stage=stage, fraction=fraction)))
            reply(p.ModelLoaded(re=request.id, bundle=str(generator.bundle.path), provider=generator.provider,
                                seconds=round(time.perf_counter() - start, 4), reason=self._provider_reason))
        except RiffstudioError as error:
            reply(p.Error(re=request.id, code=error_code(error), message=str(error)))
        except Exception as error:
            log.exception("loading %s failed", request.bundle)
            reply(p.Error(re=request.id, code="internal", message=f"the engine failed to load the model "
                          f"({reason(error, 200)})"))

    def _run(self, running: ActiveJob) -> None:
        job = running.job
        request = job.request
        self._broadcast(p.Started(job=job.id, attempt=job.attempts))
        folder = results_dir() / job.id
        try:
            existing = read_results(folder)
            if existing is not None:  # finished by an engine that died before journaling it: adopt
                self._finish(job, existing)
                return
            from engine.generation.loop import render_loop
            from engine.generation.settings import GenerationSettings

            settings = GenerationSettings.from_dict(request["settings"])
            running.total = settings.steps

            def on_load(stage: str, fraction: float) -> None:
                if fraction == 0.0:
                    self._progress(running, p.Progress(job=job.id, stage="load", step=0,
                                                       total=settings.steps, fraction=0.0))

            generator = self._generator_for(request["bundle"], request["provider"], request["session_options"],
                                            on_load, width=settings.width,
                                            with_encoder=settings.init_audio is not None)

            def on_step(event) -> None:
                if event.stage == "denoise":
                    fault_if_asked(settings.prompt)
                preview = p.Preview.from_array(event.preview) if event.preview is not None else None
                self._progress(running, p.Progress(job=job.id, stage=event.stage, step=event.step,
                                                   total=event.total, fraction=round(event.fraction, 6),
                                                   preview=preview))

            loop = render_loop(generator, settings, progress=on_step, should_cancel=running.cancel.is_set,
                               want_previews=bool(request.get("previews")))
            self._finish(job, write_results(folder, loop, generator, request["audio_format"]))
        except CancelledError:
            if running.requeue:
                self.journal.requeue(job.id)
                log.info("job %s goes back to the queue: %s", job.id, self._stop_reason)
            else:
                self.journal.mark_cancelled(job.id, "cancelled while running")
                self._broadcast(p.Cancelled(job=job.id, reason="cancelled while running"))
        except RiffstudioError as error:
            self._fail(job, error_code(error), str(error))
        except MemoryError:
            self._fail(job, "memory", "the engine ran out of memory on this job: make the loop narrower or "
                       "use an int8 bundle")
        except Exception as error:
            log.exception("job %s failed", job.id)
            self._fail(job, "internal", f"the engine failed on this job ({reason(error, 200)}); "
                       "its log has the details")

    def _progress(self, running: ActiveJob, event: p.Progress) -> None:
        with self._lock:
            running.stage = event.stage
            if event.stage in ("denoise", "decode"):
                running.step = event.step
            self._latest[running.job.id] = event
        self._broadcast(event)

    def _finish(self, job: JournalJob, loop: LoopOnDisk) -> None:
        sidecar = loop.sidecar
        done = p.Done(job=job.id, folder=str(loop.audio.parent.resolve()), paths=loop.paths(),
                      seed=int(sidecar["settings"]["seed"]),
                      timings={k: float(v) for k, v in sidecar.get("timings", {}).items()},
                      notes=list(sidecar.get("notes", [])))
        self.journal.mark_done(job.id, asdict(done))
        self._broadcast(done)

    def _fail(self, job: JournalJob, code: str, message: str) -> None:
        self.journal.mark_failed(job.id, code, message)
        self._broadcast(p.Failed(job=job.id, code=code, message=message))

    def _generator_for(self, bundle_path: str, provider: str, session_options: dict[str, Any],
                       progress: Callable[[str, float], None], *, width: int | None = None,
                       with_encoder: bool = False):
        """The warm generator when the job asks for the same bundle, provider and options; else a new one.
        Checks the memory ceiling first, counting what is loaded already."""
        from engine.bundle import open_bundle
        from engine.generation.providers import choose_provider, open_generator
        from engine.sessions import SessionSettings

        path = str(Path(bundle_path).resolve())
        bundle = open_bundle(path)
        # Keyed by what would run: `auto` and `cpu` on a machine without an NPU open the same CPU sessions, where
        # the NPU's options (the performance mode the app sends, the CLI does not) change nothing. Keyed by the
        # request, the app's jobs, a CLI job and a batch in between reopened the model each time.
        runs_on = choose_provider(provider, bundle)[0].provider
        options = session_options if runs_on == "qnn" else {}
        key = (path, bundle.identity, runs_on, json.dumps(options, sort_keys=True))
        warm = self._generator_key == key
        loaded = model_bytes(self._generator.bundle) if warm else 0
        if width is not None:
            check_fits(self.settings.memory_limit_mb, bundle, width, loaded_bytes=loaded, with_encoder=with_encoder)
        if warm:
            return self._generator
        progress("loading the model", 0.0)
        with self._lock:
            self._generator, self._generator_key = None, None  # free the old sessions before opening new ones
        generator, why = open_generator(bundle, provider, session_options,
                                        base=SessionSettings(intra_op_threads=self.settings.intra_op_threads))
        self._provider_reason = why
        log.info("opened %s: %s", path, why)
        with self._lock:
            self._generator, self._generator_key = generator, key
        progress("model ready", 1.0)
        return generator


def checked_request(submit: p.Submit) -> dict[str, Any]:
    """The part of a submit that defines the job, refused now (before it is journaled) if it is wrong."""
    from engine.bundle import open_bundle
    from engine.generation.settings import GenerationSettings

    settings = GenerationSettings.from_dict(submit.settings).validate()
    if settings.init_audio is not None and not Path(settings.init_audio).is_absolute():
        raise InvalidInputError(f"init_audio must be an absolute path for the engine, not {settings.init_audio!r}")
    if submit.priority not in p.PRIORITIES:
        raise InvalidInputError(f"priority must be one of {', '.join(p.PRIORITIES)}, not {submit.priority!r}")
    if submit.provider not in PROVIDERS:
        raise InvalidInputError(f"provider must be one of {', '.join(PROVIDERS)}, not {submit.provider!r}")
    if submit.audio_format not in ENGINE_AUDIO_FORMATS:
        raise InvalidInputError(f"audio_format must be one of {', '.join(ENGINE_AUDIO_FORMATS)}, not "
                                f"{submit.audio_format!r}")
    if not Path(submit.bundle).is_absolute():
        raise InvalidInputError(f"the bundle must be an absolute path for the engine, not {submit.bundle!r}")
    open_bundle(submit.bundle)  # a missing or damaged bundle is refused now, not after the queue
    return {"settings": settings.to_dict(), "bundle": submit.bundle, "provider": submit.provider,
            "previews": submit.previews, "audio_format": submit.audio_format,
            "session_options": dict(submit.session_options)}


def terminal_event(job: JournalJob) -> p.Message | None:
    if job.state == "done" and job.result is not None:
        return p.Done(**job.result)
    if job.state == "failed":
        return p.Failed(job=job.id, code=job.error_code or "internal", message=job.error_message or "")
    if job.state == "cancelled":
        return p.Cancelled(job=job.id, reason=job.error_message or "cancelled")
    return None


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # faulthandler's first line: "Fatal Python error: ..." for a fatal signal, "Windows fatal exception: ..."
    # for a Windows structured exception (an access violation in a driver).
    fatal = [line for line in lines if line.startswith(("Fatal Python error", "Windows fatal exception"))]
    return (fatal or lines or [None])[-1]


def serve(settings: EngineSettings, on_ready: Callable[[files.ConnectionInfo], None] | None = None) -> str:
    """Run an engine in this process until it stops (SIGTERM / Ctrl-C stop it cleanly)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s engine[%(process)d] %(levelname)s %(message)s")
    engine = Engine(settings)
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGINT", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), lambda *_: engine.stop("stopped by a signal"))
    return engine.serve(on_ready)
