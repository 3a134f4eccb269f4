"""The one client of the engine process, for the CLI, the desktop app and batch rendering.

    with EngineClient() as client:              # finds the user's engine, or starts one
        job = client.submit(settings, bundle)   # journaled by the engine before this returns
        for event in job.events():              # started, progress..., then done / failed / cancelled
            ...

Supervision: an `EngineSupervisor` (engine/supervisor.py: liveness and the restart policy, apart from
the sockets) pings the engine every `heartbeat_s`. A dead engine (its connection closes) is noticed at once,
a hung one (no answer for `hang_timeout_s`, or stopped by SIGSTOP) within about 2 s and killed. Either way
the client starts a new engine, which resumes from its journal, and follows its jobs again: each job's
event stream carries on, with an `EngineRestarted` event saying why. A `submit` interrupted by a restart is
sent again with the same idempotency key, so it is one job. This module owns the connections, the request
routing and the event streams, and spawning and killing engines; the supervisor decides when.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import secrets
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError, RiffstudioError
from engine.process import connection_file as files
from engine.process import protocol as p
from engine.process import transport
from engine.process.launch import spawn
from engine.process.paths import engine_data_dir, journal_path, log_path
from engine.process.settings import EngineSettings
from engine.supervisor import HANG_TIMEOUT_S, HEARTBEAT_S, EngineSupervisor, SupervisionPolicy
from engine.version import __version__

START_TIMEOUT_S = 60.0
WAIT_SLICE_S = 0.5  # the longest a wait for a job's next event blocks uninterruptibly (Windows, Python < 3.14)


@dataclass(frozen=True)
class EngineRestarted:
    """Not a wire message: the client's own event, in every followed job's stream, when it replaced a dead
    or hung engine."""

    reason: str
    pid: int  # the new engine's
    noticed_at: float  # time.time() when the client noticed the old engine was dead or hung


class EngineNotRunning(EngineError):
    pass


class EngineStopped(EngineError):
    """The engine was stopped on purpose while we waited (its jobs stay queued in the journal)."""


Event = p.Started | p.Progress | p.Done | p.Failed | p.Cancelled | EngineRestarted


class _LinkLost(Exception):
    pass


class _Link:
    """One authenticated connection to one engine, with its reader thread."""

    def __init__(self, info: files.ConnectionInfo, conn, on_message: Callable[[_Link, p.Message], None],
                 on_lost: Callable[[_Link], None]) -> None:
        self.info = info
        self.conn = transport.SharedConnection(conn)  # owned by the reader thread, which closes it
        self.last_heard = time.monotonic()
        self.lost = threading.Event()
        self.goodbye: str | None = None
        self._on_message = on_message
        self._on_lost = on_lost
        self._pings = itertools.count(1)
        threading.Thread(target=self._read, name="engine-reader", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.info.pid

    def wait_lost(self, timeout: float) -> bool:
        return self.lost.wait(timeout)

    def ping(self) -> None:
        """The heartbeat: its pong is heard by the reader (`last_heard`) and routed nowhere."""
        with contextlib.suppress(_LinkLost):
            self.send(p.Ping(id=f"hb{next(self._pings)}"))

    def send(self, message: p.Message) -> None:
        if self.lost.is_set():
            raise _LinkLost()
        try:
            self.conn.send(message)
        except OSError:
            self._lose()
            raise _LinkLost() from None

    def close(self) -> None:
        self.lost.set()
        self.conn.shut()

    def _read(self) -> None:
        try:
            while not self.lost.is_set():
                try:
                    message = self.conn.receive()
                except p.ProtocolError as error:
                    if error.code == "too_large":  # the stream cannot be resynchronised
                        break
                    self.last_heard = time.monotonic()  # a newer engine's message type: skip it, as minors allow
                    continue
                except (EOFError, OSError, TypeError, RuntimeError):
                    # TypeError, RuntimeError: the connection closed under a blocked read (RuntimeError is how
                    # a Windows pipe handle closed from another thread ends an overlapped read)
                    break
                self.last_heard = time.monotonic()
                if isinstance(message, p.Goodbye):
                    self.goodbye = message.reason
                self._on_message(self, message)
        finally:
            self._lose()
            self.conn.release()

    def _lose(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            self.conn.shut()
            self._on_lost(self)


class Job:
    """A submitted job, as this client follows it."""

    def __init__(self, client: EngineClient, queued: p.Queued) -> None:
        self.client = client
        self.id = queued.job
        self.queued = queued
        self.result: p.Done | p.Failed | p.Cancelled | None = None

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """This job's events until (and including) its done / failed / cancelled. `timeout` bounds the wait
        for each event (EngineError when it passes)."""
        while self.result is None:
            event = self.client._next_event(self.id, timeout)
            if isinstance(event, p.TERMINAL_EVENTS):
                self.result = event
            yield event

    def wait(self, timeout: float | None = None, on_event: Callable[[Event], None] | None = None):
        """The terminal event (Done, Failed or Cancelled)."""
        for event in self.events(timeout):
            if on_event is not None:
                on_event(event)
        return self.result

    def cancel(self) -> str:
        return self.client.cancel(self.id)

    def outcome(self, on_event: Callable[[Event], None] | None = None) -> p.Done:
        """Follow the job to its end, handing each event to `on_event`, and return its Done. The one way a
        job runs through the engine for the CLI, batch and the app: a failed job raises the exception its
        code stands for (so a command exits as it would with the work in-process), a cancelled one
        CancelledError; Ctrl+C while following cancels the job in the engine, then propagates."""
        try:
            for event in self.events():
                if on_event is not None:
                    on_event(event)
        except KeyboardInterrupt:
            with contextlib.suppress(RiffstudioError):
                self.cancel()
            raise
        return raise_if_unfinished(self.result)


class EngineClient:
    def __init__(self, *, start: bool = True, settings: EngineSettings | None = None, supervise: bool = True,
                 heartbeat_s: float = HEARTBEAT_S, hang_timeout_s: float = HANG_TIMEOUT_S,
                 start_timeout_s: float = START_TIMEOUT_S, name: str = "riffstudio") -> None:
        """Connect to the user's engine, starting one if there is none and `start` (else EngineNotRunning)."""
        self.settings = settings or EngineSettings()
        self.name = name
        self.heartbeat_s = heartbeat_s
        self.hang_timeout_s = hang_timeout_s
        self.start_timeout_s = start_timeout_s
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._pending: dict[str, queue.Queue] = {}
        self._job_events: dict[str, queue.Queue] = {}
        self._followed: set[str] = set()  # jobs not finished yet: followed again after a restart
        self._spawned: dict[int, Any] = {}  # pid -> Popen of engines this client started
        self._closed = threading.Event()
        self._link_changed = threading.Condition(self._lock)
        self._stopped: str | None = None
        # What the engine did about its own state (a damaged journal replaced): for the caller to tell the user.
        self.notes: list[str] = []
        self._supervisor: EngineSupervisor | None = None
        self._link = self._open(start=start)
        if supervise:
            self._supervisor = self._supervisor_for(self._link)
            self._supervisor.start_thread()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self._link.info.pid

    # -- the API -------------------------------------------------------------------------------------

    def submit(self, settings, bundle: str | os.PathLike[str], *, provider: str = "auto",
               priority: str = "interactive", key: str | None = None, previews: bool = False,
               audio_format: str = "wav", session_options: Mapping[str, Any] | None = None) -> Job:
        """Queue a loop (GenerationSettings or its dict). Safe to repeat: a restart mid-submit resends it
        with the same `key` (one is made up when none is given), and the engine makes it one job."""
        data = settings.to_dict() if hasattr(settings, "to_dict") else dict(settings)
        key = key or f"{self.name}-{uuid.uuid4().hex}"
        while True:
            request = p.Submit(id=self._new_id(), settings=data, bundle=str(Path(bundle).resolve()),
                               provider=provider, priority=priority, key=key, previews=previews,
                               audio_format=audio_format, session_options=dict(session_options or {}))
            reply_box = self._send_request(request)
            try:
                reply = self._reply(request, reply_box)
            except _LinkLost:
                self._wait_for_new_link()
                continue
            return Job(self, reply)

    def follow(self, job_id: str) -> Job:
        """Follow a job submitted earlier (perhaps by another client, or before a crash)."""
        with self._lock:
            self._follow(job_id)
        reply = self.request(p.Subscribe(id=self._new_id(), jobs=[job_id]))
        if not reply.jobs:
            with self._lock:
                self._followed.discard(job_id)
            raise EngineError(f"the engine has no job {job_id}")
        info = reply.jobs[0]
        return Job(self, p.Queued(re=reply.re, job=job_id, state=info.state, position=0, duplicate=True))

    def cancel(self, job_id: str) -> str:
        """Cancel a job: a queued one at once, a running one at its next step. Returns the state then."""
        return self.request(p.Cancel(id=self._new_id(), job=job_id)).state

    def status(self) -> p.EngineStatus:
        return self.request(p.Status(id=self._new_id()))

    def jobs(self, limit: int = 20) -> list[p.JobInfo]:
        return self.request(p.Jobs(id=self._new_id(), limit=limit)).jobs

    def ping(self) -> float:
        """Round-trip seconds."""
        start = time.perf_counter()
        self.request(p.Ping(id=self._new_id()))
        return time.perf_counter() - start

    def load_model(self, bundle: str | os.PathLike[str], *, provider: str = "auto",
                   session_options: Mapping[str, Any] | None = None,
                   progress: Callable[[str, float], None] | None = None, timeout: float = 600) -> p.ModelLoaded:
        request = p.LoadModel(id=self._new_id(), bundle=str(Path(bundle).resolve()), provider=provider,
                              session_options=dict(session_options or {}))
        box = self._send_request(request)
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._reply(request, box, deadline - time.monotonic(), final=False)
            except BaseException as error:
                with self._lock:
                    self._pending.pop(request.id, None)
                if isinstance(error, _LinkLost):
                    raise EngineError("the engine went away while loading the model; try again") from None
                raise
            if isinstance(reply, p.ModelProgress):
                if progress is not None:
                    progress(reply.stage, reply.fraction)
                continue
            with self._lock:
                self._pending.pop(request.id, None)
            return reply

    def shutdown(self, timeout: float = 30) -> None:
        """Stop the engine (its queue stays in the journal) and wait until it has exited."""
        pid = self.pid
        with contextlib.suppress(_LinkLost, EngineError):
            self.request(p.Shutdown(id=self._new_id()), timeout=5)
        self._stopped = "stopped by this client"
        deadline = time.monotonic() + timeout
        while (info := files.live_engine()) is not None and info.pid == pid:  # asked once: it may exit between
            if time.monotonic() > deadline:
                raise EngineError(f"the engine (pid {pid}) did not stop within {timeout:g} s")
            self._reap()
            time.sleep(0.05)
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._link.close()
        self._reap()

    def request(self, message: p.Message, timeout: float = 30):
        """Send a request and return its reply (EngineError for an `error` reply or a lost engine)."""
        box = self._send_request(message)
        try:
            return self._reply(message, box, timeout)
        except _LinkLost:
            raise EngineError(f"the engine went away during a {message.TYPE} request; try again") from None

    # -- requests and events -------------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"r{next(self._ids)}"

    def _send_request(self, message: p.Message) -> queue.Queue:
        box: queue.Queue = queue.Queue()
        with self._lock:
            self._pending[message.id] = box
            link = self._link
        try:
            link.send(message)
        except _LinkLost:
            box.put(_LinkLost())
        return box

    def _reply(self, message: p.Message, box: queue.Queue, timeout: float = 30, *, final: bool = True):
        try:
            reply = box.get(timeout=max(timeout, 0))
        except queue.Empty:
            raise EngineError(f"the engine did not answer a {message.TYPE} request within {timeout:g} s") from None
        finally:
            if final:
                with self._lock:
                    self._pending.pop(message.id, None)
        if isinstance(reply, _LinkLost):
            raise reply
        if isinstance(reply, p.Error):
            raise _error(reply)
        return reply

    def _follow(self, job_id: str) -> None:
        self._followed.add(job_id)
        self._job_events.setdefault(job_id, queue.Queue())

    def _next_event(self, job_id: str, timeout: float | None):
        with self._lock:
            events = self._job_events.setdefault(job_id, queue.Queue())
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # In slices: a wait with no timeout cannot be interrupted by Ctrl+C on Windows before Python 3.14.
            wait = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, max(deadline - time.monotonic(), 0))
            try:
                event = events.get(timeout=wait)
                break
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise EngineError(f"no news of job {job_id} for {timeout:g} s") from None
        if isinstance(event, EngineStopped):
            raise event
        return event

    def _on_message(self, link: _Link, message: p.Message) -> None:
        with self._lock:
            re = getattr(message, "re", None)
            if isinstance(message, p.Queued):  # follow before the submitter hears: no event slips by
                self._follow(message.job)
            if re is not None and re in self._pending:
                self._pending[re].put(message)
                return
            job_id = getattr(message, "job", None)
            if job_id is None or job_id not in self._followed:
                return
            if isinstance(message, p.TERMINAL_EVENTS):
                self._followed.discard(job_id)
                if self._supervisor is not None:
                    self._supervisor.job_finished()
            self._job_events[job_id].put(message)

    def _on_lost(self, link: _Link) -> None:
        with self._lock:
            for box in self._pending.values():
                box.put(_LinkLost())
            self._link_changed.notify_all()

    # -- supervision ---------------------------------------------------------------------------------

    def _supervisor_for(self, link: _Link) -> EngineSupervisor:
        """The supervisor of this client's engines, with this client's hands: it decides, these act."""
        return EngineSupervisor(
            link, policy=SupervisionPolicy(heartbeat_s=self.heartbeat_s, hang_timeout_s=self.hang_timeout_s),
            start=lambda why: self._open(start=True, after_crash=why), kill=_kill_engine, drop=self._drop,
            death_reason=self._death_reason, is_stopped=_is_stopped, on_restarted=self._restarted,
            on_stopped=self._engine_stopped, on_gave_up=lambda why: self._engine_stopped(f"{why}; see {log_path()}"),
            stopping=lambda: self._stopped, closed=self._closed.is_set, reap=self._reap)

    def _drop(self, link: _Link) -> None:
        link.close()
        self._on_lost(link)  # close() skips _lose(): wake the requests waiting on this link, or they time out

    def _restarted(self, new: _Link, why: str, noticed_at: float) -> None:
        """Use the new engine, tell every followed job why, and follow them on it (it resumes them)."""
        with self._lock:
            self._link = new
            followed = sorted(self._followed)
            for job_id in followed:
                self._job_events[job_id].put(EngineRestarted(reason=why, pid=new.info.pid, noticed_at=noticed_at))
            self._link_changed.notify_all()
        if followed:
            with contextlib.suppress(_LinkLost):
                new.send(p.Subscribe(id=f"resub{next(self._ids)}", jobs=followed))

    def _wait_for_new_link(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._link.lost.is_set():
                if self._stopped or self._closed.is_set():
                    raise EngineStopped(f"the engine was stopped ({self._stopped or 'client closed'})")
                if not self._link_changed.wait(max(0.0, deadline - time.monotonic())) \
                        and time.monotonic() > deadline:
                    raise EngineError("the engine could not be restarted")

    def _engine_stopped(self, why: str) -> None:
        with self._lock:
            self._stopped = why
            for job_id in self._followed:
                self._job_events[job_id].put(EngineStopped(
                    f"the engine stopped ({why}); job {job_id} stays queued for the next engine"))
            self._link_changed.notify_all()

    def _death_reason(self, pid: int) -> str:
        popen = self._spawned.get(pid)
        if popen is not None:
            with contextlib.suppress(Exception):
                code = popen.wait(timeout=1)
                if code < 0:
                    return f"the engine (pid {pid}) was killed by {signal.Signals(-code).name}"
                return f"the engine (pid {pid}) exited with code {code}"
        return f"the engine (pid {pid}) died"

    def _reap(self) -> None:
        for pid, popen in list(self._spawned.items()):
            if popen.poll() is not None and not files.pid_alive(pid):
                self._spawned.pop(pid, None)

    # -- connecting ----------------------------------------------------------------------------------

    def _open(self, *, start: bool, after_crash: str | None = None) -> _Link:
        deadline = time.monotonic() + self.start_timeout_s
        spawned = None
        token = ""
        log_start = 0
        last_error = "no engine answered"
        while time.monotonic() < deadline:
            info = files.live_engine()
            if info is not None and _is_stopped(info.pid):
                _kill_engine(info.pid)
                continue
            if info is not None and (spawned is None or info.start_token == token):
                try:
                    return self._handshake(info)
                except (OSError, EOFError, EngineError) as error:
                    if isinstance(error, p.ProtocolError) and error.code == "protocol_mismatch":
                        raise
                    last_error = str(error)
                    time.sleep(0.05)
                    continue
            if info is None and files.engine_alive():  # its connection file is damaged: it writes it again
                last_error = "the running engine's connection file is unreadable"
                time.sleep(0.05)
                continue
            if not start:
                raise EngineNotRunning("no engine is running")
            if spawned is not None:
                if spawned.poll() is not None:
                    raise EngineError(start_failure(spawned.returncode, log_start))
                time.sleep(0.05)
                continue
            with files.start_lock(self.start_timeout_s):
                if files.live_engine() is None:
                    log_start = _log_size()
                    settings = self.settings if after_crash is None else _with_reason(self.settings, after_crash)
                    token = secrets.token_hex(16)
                    spawned = spawn(settings, log_path(), token)
                    while time.monotonic() < deadline and spawned.poll() is None:
                        info = files.live_engine()
                        if info is not None and info.start_token == token:
                            # The engine's own pid (a launcher's child, where the spawned one is a launcher),
                            # for its death reason and reaping.
                            self._spawned[info.pid] = spawned
                            break
                        time.sleep(0.05)
        raise EngineError(f"the engine did not answer within {self.start_timeout_s:g} s ({last_error}); "
                          f"see {log_path()}")

    def _handshake(self, info: files.ConnectionInfo) -> _Link:
        conn = transport.connect(info.address, info.family, info.authkey)
        try:
            transport.send(conn, p.Hello(id="hello", protocol=p.PROTOCOL_VERSION, client=f"{self.name} {__version__}"))
            reply = transport.receive(conn, timeout=10)
        except BaseException:
            conn.close()
            raise
        if isinstance(reply, p.Error):
            conn.close()
            raise _error(reply)
        if not isinstance(reply, p.Welcome):
            conn.close()
            raise EngineError("the engine did not answer the handshake")
        self.notes += [note for note in reply.notes if note not in self.notes]
        return _Link(info, conn, self._on_message, self._on_lost)


def _log_size() -> int:
    try:
        return log_path().stat().st_size
    except OSError:
        return 0


def start_failure(code: int, log_start: int) -> str:
    """Why a spawned engine exited before it served: its own `riffstudio:` line in the log (written since
    `log_start`), else a full disk under its data folder (the log itself may not be writable then), else
    the exit code and where the log is."""
    try:
        with open(log_path(), "rb") as log:
            log.seek(log_start)
            lines = log.read(1 << 20).decode("utf-8", "replace").splitlines()
        said = [line for line in lines if line.startswith("riffstudio: ") and not line.startswith("riffstudio: note:")]
        if said:
            return said[-1].removeprefix("riffstudio: ")
    except OSError:
        pass
    folder = engine_data_dir()
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < LOW_DISK_BYTES:
        return (f"the engine cannot start: the disk holding {folder} is full ({free // (1 << 20)} MB free); free "
                "some space there")
    return f"the engine exited at start (code {code}); see {log_path()}"


# Below this much free space in the engine's data folder, a start failure is reported as a full disk.
LOW_DISK_BYTES = 16 << 20


def raise_if_unfinished(result: p.Done | p.Failed | p.Cancelled | None) -> p.Done:
    """A job's terminal event as its outcome: Done is returned, Failed and Cancelled raised."""
    from engine.errors import CancelledError

    if isinstance(result, p.Cancelled):
        raise CancelledError(f"the engine cancelled the job ({result.reason})")
    if isinstance(result, p.Failed):
        raise error_for(result.code, result.message)
    if not isinstance(result, p.Done):
        raise EngineError("the engine's event stream ended before the job did")
    return result


def _error(reply: p.Error) -> RiffstudioError:
    return error_for(reply.code, reply.message)


def error_for(code: str, message: str) -> RiffstudioError:
    """An `error` reply's or a `failed` event's code as the exception type it stands for (so the CLI exits
    with the same code as when the work runs in-process)."""
    from engine.errors import WIRE_TYPES
    from engine.process.memory import MemoryCeilingError

    types = {cls.code: cls for cls in (*WIRE_TYPES, MemoryCeilingError)}
    if code in types:
        return types[code](message)
    if code in p.ERROR_CODES and code != "internal":
        return p.ProtocolError(code, message)
    return EngineError(message)


def _with_reason(settings: EngineSettings, why: str) -> EngineSettings:
    from dataclasses import replace

    return replace(settings, after_crash=why)


def _is_stopped(pid: int) -> bool:
    """Linux: the process is stopped (SIGSTOP, or a debugger): hung for sure, whatever the timer says."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("T", "t")


def _kill_engine(pid: int, timeout: float = 5) -> None:
    """Kill the engine `pid` if it is still the user's engine (a newer one is left alone), and wait until
    its lock is free. Windows has no SIGKILL: os.kill(SIGTERM) is TerminateProcess there."""
    info = files.live_engine()
    if info is None or info.pid != pid:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while (info := files.live_engine()) is not None and info.pid == pid and time.monotonic() < deadline:
        time.sleep(0.02)


def running_engine() -> files.ConnectionInfo | None:
    """The live engine's connection info, or None (starts nothing)."""
    return files.live_engine()


def recent_jobs_offline(limit: int = 20) -> list[p.JobInfo]:
    """The journal's recent jobs when no engine is running (read only; the engine owns the writes)."""
    from engine.process.journal import Journal

    path = journal_path()
    if not path.exists():
        return []
    journal = Journal(path)
    try:
        return [job.info() for job in journal.recent(limit)]
    finally:
        journal.close()

