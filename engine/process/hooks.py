"""Test hooks: environment variables the engine reads so that the test suite can break it for real.

They are inert unless set, and nothing but the tests sets them.

- RIFFSTUDIO_ENGINE_TEST_CRASH=WORD: a job whose prompt contains WORD kills the engine process outright
  (SIGKILL on POSIX, exit code 99 on Windows) at its first denoising step, as a driver crash would. The
  supervisor and the journal then have to cope: this is how `test_engine_faults` makes a job that stops
  the engine twice.
- RIFFSTUDIO_ENGINE_TEST_HANG=WORD: a job whose prompt contains WORD hangs the whole engine at its first
  denoising step, as a driver deadlock that holds the GIL would: the process keeps running (not
  stopped, so only the heartbeat's silence can tell) but answers nothing until it is killed. It first
  writes "test hook: hanging from <time.time()>" to its log.
- RIFFSTUDIO_CLUSTER_TEST_NODE_WITHOUT_BUNDLE=1 (a `batch --cluster` worker's environment): the worker acts as
  on a node without the driver's bundle folder and fetches the bundle through Ray (plugin/cluster_worker.py).
- RIFFSTUDIO_ENGINE_TEST_ELEVATED=1: the process counts as run as administrator (engine/process/paths.py
  `privilege_level`), so a test can run a normal and an "elevated" engine side by side as Windows would.
"""

from __future__ import annotations

import os
import signal
import sys
import time

CRASH_ENV = "RIFFSTUDIO_ENGINE_TEST_CRASH"
HANG_ENV = "RIFFSTUDIO_ENGINE_TEST_HANG"


def fault_if_asked(prompt: str) -> None:
    crash_if_asked(prompt)
    hang_if_asked(prompt)


def crash_if_asked(prompt: str) -> None:
    word = os.environ.get(CRASH_ENV)
    if not word or word not in prompt:
        return
    sys.stderr.flush()
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(99)


def hang_if_asked(prompt: str) -> None:
    word = os.environ.get(HANG_ENV)
    if not word or word not in prompt:
        return
    import ctypes

    print(f"test hook: hanging from {time.time():.3f}", file=sys.stderr, flush=True)
    libc = ctypes.PyDLL(None) if os.name == "posix" else None  # PyDLL: the call keeps the GIL
    while True:
        if libc is not None:
            libc.sleep(3600)
        else:  # no GIL-holding sleep to hand on Windows: spin in C instead
            sum(range(10**12))
