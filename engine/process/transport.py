"""Local transport: `multiprocessing.connection` (a Unix-domain socket, a named pipe on Windows), framed
bytes only, with a mutual HMAC-SHA256 challenge at connect.

We use the stdlib's framing (`send_bytes` / `recv_bytes`: on a socket a 4-byte big-endian length, then the
bytes; on a message-mode pipe one message per frame) but never its pickling `send` / `recv`, and we run
the challenge ourselves rather than through `authkey=`: the stdlib's is HMAC-MD5 on 3.11, and it runs inside
`Listener.accept()`, where one client that connects and then says nothing would block every other client.
Here each connection authenticates on its own thread, with a timeout. The socket lives in the user's
private (0700) runtime dir: local only, never a network interface. On Windows the pipe is our own
listener's (engine/process/windows_pipe.py): local clients only, and a DACL that lets in this user alone.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import socket
import sys
import tempfile
import threading
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from engine.errors import EngineError
from engine.process.protocol import MAX_MESSAGE_BYTES, Message, ProtocolError, decode, encode
from engine.process.windows_pipe import UserOnlyPipeListener, pipe_client

CHALLENGE = b"#CHALLENGE#{sha256}"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
NONCE_BYTES = 32
HANDSHAKE_TIMEOUT = 5.0
MAX_UNIX_PATH = 100  # sockaddr_un holds 104 (macOS) to 108 (Linux) bytes


class AuthenticationFailed(EngineError):
    """The other side does not know the key (or said nothing in time)."""


def new_key() -> bytes:
    return secrets.token_bytes(32)


def new_address(folder: Path) -> tuple[str, str]:
    """(address, family) for a new engine: a socket in `folder`, or a private temporary folder when the
    path would be too long for a Unix socket; a random named pipe on Windows."""
    if sys.platform == "win32":
        return rf"\\.\pipe\riffstudio-{os.getpid()}-{secrets.token_hex(8)}", "AF_PIPE"
    path = folder / f"engine-{os.getpid()}.sock"
    if len(str(path)) > MAX_UNIX_PATH:
        path = Path(tempfile.mkdtemp(prefix="riffstudio-")) / "engine.sock"  # mkdtemp is 0700
    path.unlink(missing_ok=True)
    return str(path), "AF_UNIX"


def listen(address: str, family: str) -> Listener | UserOnlyPipeListener:
    """The engine's listener at `address`: a socket only this user may open (0600 in a 0700 folder), or a
    named pipe with a user-only DACL that refuses remote clients."""
    if family == "AF_PIPE":
        return UserOnlyPipeListener(address)
    listener = Listener(address, family, backlog=32)
    if family == "AF_UNIX":
        os.chmod(address, 0o600)
    return listener


def connect(address: str, family: str, key: bytes, timeout: float = HANDSHAKE_TIMEOUT) -> Connection:
    """An authenticated connection to the engine at `address` (OSError if nothing listens there)."""
    conn = pipe_client(address) if family == "AF_PIPE" else Client(address, family)
    try:
        _answer(conn, key, timeout)
        _deliver(conn, key, timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def authenticate_client(conn: Connection, key: bytes, timeout: float = HANDSHAKE_TIMEOUT) -> None:
    """The engine's side: the client proves it has the key, then the engine proves it too."""
    _deliver(conn, key, timeout)
    _answer(conn, key, timeout)


def send(conn: Connection, message: Message) -> None:
    conn.send_bytes(encode(message))


def receive(conn: Connection, timeout: float | None = None) -> Message | None:
    """The next message, or None if none came within `timeout`; EOFError/OSError when the link is gone,
    ProtocolError for a message that is not one."""
    if timeout is not None and not conn.poll(timeout):
        return None
    return decode(receive_bytes(conn))


def receive_bytes(conn: Connection) -> bytes:
    try:
        return conn.recv_bytes(MAX_MESSAGE_BYTES)
    except OSError as error:
        if "bad message length" in str(error):
            raise ProtocolError("too_large", f"a message over the {MAX_MESSAGE_BYTES}-byte limit") from None
        raise


class SharedConnection:
    """A connection read by one thread and written by others, that any thread may shut.

    Closing a descriptor that another thread is about to read or write is a classic bug: the process
    hands the freed number to the next file it opens, and that thread then reads (or writes) someone
    else's file. CI once lost the first 5 bytes of a child's stdout pipe to a client's reader thread
    this way. So `shut()` only wakes: a socket shutdown, after which blocked reads see the end of the
    stream and sends fail. The descriptor itself is closed once, by the last of its `owners` (the
    threads that read or write it in a loop) to call `release()`, when none of them can touch it again.

    Windows named pipes have no shutdown; there `shut()` closes the handle, the one way to wake a
    blocked read (handle values are reused less eagerly than descriptors, but still reused).
    """

    def __init__(self, conn: Connection, owners: int = 1) -> None:
        self.conn = conn
        self._owners = owners
        self._send_lock = threading.Lock()  # one message at a time; close waits for a send under way
        self._fd_lock = threading.Lock()  # shut and close never interleave (shut must dup a live descriptor)
        self._closed = False

    def send(self, message: Message) -> None:
        self.send_bytes(encode(message))

    def receive(self) -> Message | None:
        """The next message (the reading owner's call; see `receive`)."""
        return receive(self.conn)

    def receive_bytes(self) -> bytes:
        """The next message's bytes, undecoded (the reading owner's call; see `receive_bytes`)."""
        return receive_bytes(self.conn)

    def send_bytes(self, data: bytes) -> None:
        with self._send_lock:
            if self._closed:
                raise OSError("the connection is closed")
            self.conn.send_bytes(data)

    def shut(self) -> None:
        """Wake every thread blocked on the connection; from any thread, any number of times."""
        with self._fd_lock:
            if self._closed:
                return
            if os.name == "posix":
                with contextlib.suppress(OSError, ValueError, TypeError):
                    sock = socket.socket(fileno=os.dup(self.conn.fileno()))
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            else:
                self._closed = True
                with contextlib.suppress(OSError):
                    self.conn.close()

    def release(self) -> None:
        """One owner is done with the connection; the last one closes it."""
        with self._fd_lock:
            self._owners -= 1
            last = self._owners <= 0
        if not last:
            return
        self.shut()
        with self._send_lock, self._fd_lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(OSError):
                    self.conn.close()


def _deliver(conn: Connection, key: bytes, timeout: float) -> None:
    nonce = os.urandom(NONCE_BYTES)
    conn.send_bytes(CHALLENGE + nonce)
    response = _receive_small(conn, timeout)
    if not hmac.compare_digest(response, hmac.new(key, nonce, "sha256").digest()):
        conn.send_bytes(FAILURE)
        raise AuthenticationFailed("the engine connection was refused: wrong key")
    conn.send_bytes(WELCOME)


def _answer(conn: Connection, key: bytes, timeout: float) -> None:
    message = _receive_small(conn, timeout)
    if not message.startswith(CHALLENGE):
        raise AuthenticationFailed("the other end did not start the engine handshake")
    conn.send_bytes(hmac.new(key, message[len(CHALLENGE):], "sha256").digest())
    if _receive_small(conn, timeout) != WELCOME:
        raise AuthenticationFailed("the engine refused the key: the connection file is stale or altered")


def _receive_small(conn: Connection, timeout: float) -> bytes:
    if not conn.poll(timeout):
        raise AuthenticationFailed("the engine handshake timed out")
    try:
        return conn.recv_bytes(256)
    except OSError as error:
        raise AuthenticationFailed(f"the engine handshake failed ({error})") from None
