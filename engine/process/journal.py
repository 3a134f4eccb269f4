"""The job journal: SQLite in WAL mode, the engine's memory of every job across crashes and reboots.

The engine writes a job here before it acknowledges the `submit`, and again at every change of state, so
the journal is always at least as far along as anything a client was told. On start, `recover` turns
what the last engine left running into work to redo: re-queued, unless that job was running when the
engine died twice already, in which case it fails on its own and the queue moves on.

Writes are `synchronous=FULL` (a commit survives a power cut, not just a crash); one connection behind
one lock serves the engine's threads.

A journal that cannot be read (random bytes, a corrupt page) never disables the engine: `open_journal`
moves it aside with a timestamp, starts a fresh one, and records the unfinished jobs it could still read
from the damaged copy as failed with code `lost`, so a client following one hears what happened. A full
or unwritable data folder is a StorageError naming the folder.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import replace
from engine.errors import StorageError, reason
from engine.process.protocol import PRIORITIES, JobInfo

SCHEMA = 1
MAX_CRASHES = 2

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order: FIFO within a priority
    id TEXT NOT NULL UNIQUE,
    key TEXT UNIQUE,                        -- the client's idempotency key
    priority INTEGER NOT NULL,              -- index in PRIORITIES: 0 runs first
    state TEXT NOT NULL,                    -- queued, running, done, failed, cancelled
    request TEXT NOT NULL,                  -- JSON: the submit's settings, bundle, provider, ...
    attempts INTEGER NOT NULL DEFAULT 0,    -- times started
    crashes INTEGER NOT NULL DEFAULT 0,     -- times it was running when the engine died
    last_crash TEXT,
    result TEXT,                            -- JSON of the `done` event
    error_code TEXT,
    error_message TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, priority, seq);
"""


@dataclass(frozen=True)
class JournalJob:
    id: str
    seq: int
    key: str | None
    priority: str
    state: str
    request: dict[str, Any]
    attempts: int
    crashes: int
    last_crash: str | None
    result: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    created: float
    updated: float

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key of the run queue: priority first, then submission order."""
        return PRIORITIES.index(self.priority), self.seq

    def info(self) -> JobInfo:
        error = f"{self.error_code}: {self.error_message}" if self.state == "failed" else None
        return JobInfo(job=self.id, state=self.state, priority=self.priority,
                       prompt=str(self.request.get("settings", {}).get("prompt", "")), created=self.created,
                       updated=self.updated, attempts=self.attempts, crashes=self.crashes,
                       folder=(self.result or {}).get("folder"), error=error, key=self.key)


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock, self._db:
            self._db.executescript(_TABLES)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def check(self) -> None:
        """Raise sqlite3.DatabaseError unless every page reads back and the schema is ours."""
        with self._lock:
            verdict = [row[0] for row in self._db.execute("PRAGMA quick_check(3)").fetchall()]
            if verdict != ["ok"]:
                found = [line for line in verdict if not str(line).startswith("***")] or verdict or ["no answer"]
                raise sqlite3.DatabaseError(f"quick_check: {found[0]}")
            schema = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if schema is None or schema[0] != str(SCHEMA):
                raise sqlite3.DatabaseError(f"schema {schema[0] if schema else 'missing'}, this engine writes {SCHEMA}")
            self._db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT 1").fetchall()

    def record_lost(self, job_id: str, request: dict[str, Any], priority: int, message: str) -> None:
        """A job of a damaged journal, kept by id as failed (`lost`) so that whoever follows it hears why; not
        by its idempotency key, so that submitting it again (a batch rerun) renders it."""
        now = time.time()
        with self._writing():
            self._db.execute(
                "INSERT OR IGNORE INTO jobs (id, priority, state, request, error_code, error_message, created, "
                "updated) VALUES (?, ?, 'failed', ?, 'lost', ?, ?, ?)",
                (job_id, min(max(priority, 0), len(PRIORITIES) - 1), json.dumps(request), message, now, now))

    @contextlib.contextmanager
    def _writing(self):
        """One committed write; a failure to write (a full disk) is a StorageError naming the folder."""
        with self._lock:
            try:
                with self._db:
                    yield
            except sqlite3.OperationalError as error:
                raise StorageError(storage_message(self.path, error)) from None

    # -- reading -------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JournalJob | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def recent(self, limit: int = 20) -> list[JournalJob]:
        return self._many("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (max(0, limit),))

    def queued(self) -> list[JournalJob]:
        """Every queued job, in the order they will run."""
        return self._many("SELECT * FROM jobs WHERE state = 'queued' ORDER BY priority, seq", ())

    # -- writing -------------------------------------------------------------------------------------

    def submit(self, request: dict[str, Any], priority: str, key: str | None) -> tuple[JournalJob, bool]:
        """(the job, whether it was already known by its key): committed before this returns."""
        now = time.time()
        with self._writing():
            if key is not None:
                row = self._db.execute("SELECT * FROM jobs WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    return _job(row), True
            job_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{secrets.token_hex(3)}"
            self._db.execute(
                "INSERT INTO jobs (id, key, priority, state, request, created, updated) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                (job_id, key, PRIORITIES.index(priority), json.dumps(request), now, now))
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row), False

    def mark_running(self, job_id: str) -> JournalJob:
        self._update(job_id, "state = 'running', attempts = attempts + 1")
        return self.get(job_id)

    def mark_done(self, job_id: str, result: dict[str, Any]) -> None:
        self._update(job_id, "state = 'done', result = ?", json.dumps(result))

    def mark_failed(self, job_id: str, code: str, message: str) -> None:
        self._update(job_id, "state = 'failed', error_code = ?, error_message = ?", code, message)

    def mark_cancelled(self, job_id: str, reason: str) -> None:
        self._update(job_id, "state = 'cancelled', error_code = 'cancelled', error_message = ?", reason)

    def requeue(self, job_id: str) -> None:
        """Back in the queue without counting a crash (the engine was asked to stop)."""
        self._update(job_id, "state = 'queued'")

    def recover(self, reason: str, finished: Callable[[JournalJob], bool] = lambda job: False, *,
                booted: float | None = None) -> list[JournalJob]:
        """After an engine died: each job it left running is re-queued, or failed if this is its second
        crash, unless `finished(job)` (its results were written before the engine died: re-queued, it is
        adopted, not rendered again). A job that started running before the machine `booted` (seconds since
        the epoch; engine/process/boot.py) was stopped by a shutdown or restart: re-queued, no crash counted.
        Returns the jobs that failed."""
        failed = []
        for job in self._many("SELECT * FROM jobs WHERE state = 'running'", ()):
            if booted is not None and job.updated < booted:
                self._update(job.id, "state = 'queued'")
                continue
            crashes = job.crashes + 1
            if crashes >= MAX_CRASHES and not finished(job):
                self._update(job.id, "crashes = ?, last_crash = ?, state = 'failed', error_code = 'engine_crashed', "
                             "error_message = ?", crashes, reason,
                             f"this job stopped the engine twice (last: {reason})")
                failed.append(self.get(job.id))
            else:
                self._update(job.id, "crashes = ?, last_crash = ?, state = 'queued'", crashes, reason)
        return failed

    # -- sqlite --------------------------------------------------------------------------------------

    def _update(self, job_id: str, assignments: str, *values: Any) -> None:
        with self._writing():
            self._db.execute(f"UPDATE jobs SET {assignments}, updated = ? WHERE id = ?",
                             (*values, time.time(), job_id))

    def _one(self, sql: str, args: tuple) -> JournalJob | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return _job(row) if row is not None else None

    def _many(self, sql: str, args: tuple) -> list[JournalJob]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_job(row) for row in rows]


def open_journal(path: Path) -> tuple[Journal, str]:
    """The engine's journal at `path`, and a one-line note when a damaged one had to be replaced ("" if not).

    Raises StorageError (one line, naming the folder) when the folder cannot hold a journal at all."""
    journal = None
    try:
        journal = Journal(path)
        journal.check()
        return journal, ""
    except sqlite3.DatabaseError as error:
        if journal is not None:
            journal.close()
        if isinstance(error, sqlite3.OperationalError) and not _damaged(error):
            raise StorageError(storage_message(path, error)) from None
        damage = reason(error, 80)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    try:
        for suffix in ("-wal", "-shm", ""):  # the database last: killed before it, the journal is still there
            if Path(f"{path}{suffix}").exists():
                replace(f"{path}{suffix}", f"{aside}{suffix}")
    except OSError as error:
        raise StorageError(f"the engine's job journal {path} is damaged ({damage}) and cannot be moved aside "
                           f"({reason(error, 80)}): move or delete it by hand") from None
    unfinished = _unfinished_jobs(aside)
    journal = Journal(path)
    lost = f"the job journal was damaged ({damage}) and is kept as {aside.name}; this job was not run"
    for job_id, request, priority in unfinished or ():
        journal.record_lost(job_id, request, priority, lost)
    if unfinished is None:
        jobs = "its unfinished jobs could not be read"
    else:
        ids = ", ".join(job_id for job_id, _, _ in unfinished[:5]) + (" ..." if len(unfinished) > 5 else "")
        jobs = f"{len(unfinished)} unfinished job(s) lost" + (f": {ids}" if unfinished else "")
    return journal, f"the job journal was damaged ({damage}): kept as {aside} and a fresh one started; {jobs}"


def storage_message(path: Path, error: BaseException) -> str:
    return (f"the engine cannot write its job journal in {path.parent} ({reason(error, 80)}): free some disk "
            "space there, or make that folder writable")


def _damaged(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("malformed", "not a database", "corrupt", "quick_check", "schema"))


def _unfinished_jobs(damaged: Path) -> list[tuple[str, dict[str, Any], int]] | None:
    """(id, request, priority) of the queued and running jobs still readable in a damaged journal; None when
    none can be read."""
    try:
        db = sqlite3.connect(f"{damaged.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        rows = db.execute("SELECT id, request, priority FROM jobs NOT INDEXED WHERE state IN ('queued', 'running') "
                          "ORDER BY seq").fetchall()  # NOT INDEXED: a damaged index must not hide the table
    except sqlite3.Error:
        return None
    finally:
        db.close()
    found = []
    for job_id, request, priority in rows:
        try:
            data = json.loads(request)
        except (TypeError, ValueError):
            data = {}
        if isinstance(job_id, str):
            found.append((job_id, data if isinstance(data, dict) else {}, priority if isinstance(priority, int) else 0))
    return found


_COLUMNS = ("seq", "id", "key", "priority", "state", "request", "attempts", "crashes", "last_crash", "result",
            "error_code", "error_message", "created", "updated")


def _job(row: tuple) -> JournalJob:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["priority"] = PRIORITIES[data["priority"]]
    data["request"] = json.loads(data["request"])
    data["result"] = json.loads(data["result"]) if data["result"] else None
    return JournalJob(**data)
