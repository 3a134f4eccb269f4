"""One engine per user: the connection file that says where it listens, and the locks that keep it one.

Like a jupyter kernel's connection file: JSON in the user's runtime dir, mode 0600, with everything a
client needs (address, transport family, HMAC key, pid, protocol and engine versions). Two OS file locks
(`flock` on POSIX, `msvcrt.locking` on Windows; both released by the OS when their holder dies, even by
kill -9) make it trustworthy:

- `engine.lock` is held by the running engine for its whole life. Whoever can take it knows no engine
  is alive, so a connection file left behind by a dead one is stale and is replaced.
- `start.lock` is held by a client while it starts an engine, so two clients starting at once start one.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO

from engine.atomic import replace
from engine.errors import EngineError
from engine.process.paths import runtime_dir

FILE_NAME = "engine.json"
ENGINE_LOCK = "engine.lock"
START_LOCK = "start.lock"


@dataclass(frozen=True)
class ConnectionInfo:
    address: str
    family: str  # "AF_UNIX" or "AF_PIPE"
    key: str  # hex; the HMAC key of the connection handshake
    pid: int
    protocol: str
    engine_version: str
    started: float  # seconds since the epoch
    # The token the client that spawned this engine gave it (RIFFSTUDIO_START_TOKEN): how that client knows the
    # engine it started, which need not be the process it spawned (a Windows venv's python.exe is a redirector
    # that runs the real interpreter as its child, so the engine's pid is not the spawned pid). 1.2.1.
    start_token: str = ""

    @property
    def authkey(self) -> bytes:
        return bytes.fromhex(self.key)


def connection_file() -> Path:
    return runtime_dir() / FILE_NAME


def write_connection_file(info: ConnectionInfo) -> Path:
    """Atomically, and readable by this user only (created 0600, never widened)."""
    final = connection_file()
    temp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(asdict(info), file, indent=1)
    replace(temp, final)
    return final


def read_connection_file() -> ConnectionInfo | None:
    """The file's contents, or None if there is none or it is unreadable (a half-dead engine's leftovers)."""
    try:
        data = json.loads(connection_file().read_text(encoding="utf-8"))
        known = {f.name for f in fields(ConnectionInfo)}
        return ConnectionInfo(**{name: value for name, value in data.items() if name in known})  # newer: more keys
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def remove_connection_file(pid: int) -> None:
    """Remove the file if it is still `pid`'s (a newer engine's file is not ours to remove)."""
    info = read_connection_file()
    if info is not None and info.pid == pid:
        with contextlib.suppress(OSError):
            connection_file().unlink()


def live_engine() -> ConnectionInfo | None:
    """The running engine's connection info, or None when no engine holds the engine lock."""
    info = read_connection_file()
    return info if info is not None and engine_alive() else None  # else the file outlived its engine


def engine_alive() -> bool:
    """Whether an engine holds the engine lock (it may be between writes of its connection file)."""
    lock = try_lock(ENGINE_LOCK)
    if lock is None:
        return True
    release(lock)
    return False


def try_lock(name: str) -> IO[bytes] | None:
    """The lock file `name` in the runtime dir, locked exclusively; None if someone else holds it."""
    file = open(runtime_dir() / name, "a+b")  # noqa: SIM115 (held open for as long as the lock is)
    try:
        _lock(file, blocking=False)
    except OSError:
        file.close()
        return None
    return file


@contextlib.contextmanager
def start_lock(timeout: float) -> Iterator[None]:
    """Held while starting an engine; waits up to `timeout` s for another starter to finish."""
    deadline = time.monotonic() + timeout
    while (lock := try_lock(START_LOCK)) is None:
        if time.monotonic() > deadline:
            raise EngineError("another riffstudio is starting the engine and has not finished; try again")
        time.sleep(0.05)
    try:
        yield
    finally:
        release(lock)


def release(file: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        _unlock(file)
    file.close()


def pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if sys.platform == "win32":
    import msvcrt

    def _lock(file: IO[bytes], blocking: bool) -> None:
        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)

    def _unlock(file: IO[bytes]) -> None:
        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(file: IO[bytes], blocking: bool) -> None:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))

    def _unlock(file: IO[bytes]) -> None:
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
