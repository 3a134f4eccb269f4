"""The transport's shared connection, without an engine: shutting it from another thread wakes its reader at
once, but its descriptor stays taken until the reader is done, so no file opened meanwhile can get the
number and have its bytes read by that reader (CI once lost the start of a child's stdout that way)."""

from __future__ import annotations

import os
import threading
from multiprocessing.connection import Pipe

import pytest

from engine.process import transport

pytestmark = pytest.mark.skipif(os.name != "posix", reason="descriptor numbers and shutdown are posix's")


def test_shut_wakes_the_reader_but_the_descriptor_stays_taken_until_the_reader_releases_it():
    mine, peer = Pipe()
    shared = transport.SharedConnection(mine)
    fd = mine.fileno()
    woke, proceed, seen = threading.Event(), threading.Event(), []

    def read() -> None:
        try:
            shared.receive_bytes()
        except EOFError:
            seen.append("end of stream")
        woke.set()
        proceed.wait(10)  # a reader between its last read and its release
        shared.release()

    reader = threading.Thread(target=read)
    reader.start()
    shared.shut()
    assert woke.wait(5) and seen == ["end of stream"]
    os.fstat(fd)  # still ours: the freed number would go to the next file this process opens
    with pytest.raises(OSError):
        shared.send_bytes(b"after shut")
    proceed.set()
    reader.join(5)
    assert mine.closed
    with pytest.raises(OSError):
        shared.send_bytes(b"after release")
    shared.shut()  # shutting a released connection is harmless
    peer.close()


def test_the_last_of_two_owners_closes():
    mine, peer = Pipe()
    shared = transport.SharedConnection(mine, owners=2)
    shared.send_bytes(b"hello")
    assert peer.recv_bytes() == b"hello"
    peer.send_bytes(b"and back")
    assert shared.receive_bytes() == b"and back"
    shared.release()
    assert not mine.closed
    shared.send_bytes(b"still open")
    assert peer.recv_bytes() == b"still open"
    shared.release()
    assert mine.closed
    peer.close()
