"""Liveness and restart policy for the engine process, apart from the client's sockets and requests.

`EngineClient` owns the connections and routes requests and events; this module decides, once a heartbeat,
whether the engine it is connected to is alive, dead or hung, and what to do about it: ping it, kill it and
start another, or give up. It touches the engine only through the callables it is given and reads time only
from the clock it is given, so its policy is tested with fakes (tests/test_engine_supervisor.py), without
sockets, processes or sleeps; jupyter_client splits its KernelRestarter from the manager and the client the
same way.

The policy, in the words the user sees in an `EngineRestarted` event or an `EngineStopped` error:

- dead: the connection closed. Noticed at once (the wait for the next heartbeat ends when it closes), and the
  reason is how it died (`death_reason`: "was killed by SIGKILL", "exited with code 3").
- hung: no message for `hang_timeout_s` (pongs included), or the process is stopped (SIGSTOP): known within
  a heartbeat of that, killed, "stopped answering for 1.6 s and was killed".
- paused here, not hung there: when a heartbeat comes back much later than asked (this process was
  stopped by Ctrl-Z or held by a long GC pause), the engine's silence meanwhile says nothing about it, so it
  is counted from then.
- stopped on purpose (the engine said goodbye, or this client shut it down): supervision ends, no restart.
- too many: after `max_restarts` restarts in a row with no job finishing in between, the engine is broken,
  not unlucky: supervision gives up. A pong does not reset the count: an engine that answers pings but dies
  again at every resumed job is still broken; a finished job (`job_finished`) does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from engine.errors import RiffstudioError

HEARTBEAT_S = 0.25
HANG_TIMEOUT_S = 1.5  # + one heartbeat: a hung engine is known within 2 s
MAX_RESTARTS = 5  # in a row without a job finishing: past this the engine is broken, not unlucky
RETRY_PAUSE_S = 0.2  # between starts that failed, so a start that fails at once does not spin


@dataclass(frozen=True)
class SupervisionPolicy:
    """How often to look, how long a silence counts as hung, and how many restarts before giving up."""

    heartbeat_s: float = HEARTBEAT_S
    hang_timeout_s: float = HANG_TIMEOUT_S
    max_restarts: int = MAX_RESTARTS
    retry_pause_s: float = RETRY_PAUSE_S

    @property
    def pause_s(self) -> float:
        """A heartbeat this much later than asked means this process was paused, not that the engine hung:
        half the hang timeout, so a pause is excused well before a silence of the same length would kill."""
        return self.heartbeat_s + self.hang_timeout_s / 2


class WatchedEngine(Protocol):
    """The supervisor's view of one connection to one engine (the client's `_Link`)."""

    @property
    def pid(self) -> int: ...

    @property
    def last_heard(self) -> float:
        """The clock's time of the engine's last message (a pong counts)."""
        ...

    @property
    def goodbye(self) -> str | None:
        """Why the engine said it is going away, if it did (then it is not restarted)."""
        ...

    def wait_lost(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the connection to close; True if it has."""
        ...

    def ping(self) -> None:
        """Send a heartbeat ping; its pong moves `last_heard`. Never raises for a lost connection."""
        ...


class EngineSupervisor:
    """Watches one engine at a time and replaces it when it dies or hangs, by the `SupervisionPolicy`.

    The callables are the client's:
    - `start(why)`: connect to a new engine (spawning one told `why` the last one went), or raise a
      RiffstudioError; `kill(pid)`: kill that engine if it is still the user's; `drop(engine)`: close the
      connection and wake the requests waiting on it (they are sent again or fail, not left to time out).
    - `death_reason(pid)`, `is_stopped(pid)`: what the operating system says of that process.
    - `on_restarted(engine, why, noticed_at)`: use the new engine and follow its jobs again;
      `on_stopped(why)`: the engine was stopped on purpose; `on_gave_up(why)`: too many restarts.
    - `stopping()`: why this client stopped the engine on purpose, if it did; `closed()`: the client closed.
    - `reap()`: collect this client's exited engine processes (a healthy heartbeat's chore).
    - `clock` (monotonic, the one `last_heard` uses), `wall_clock` (for `noticed_at`), `sleep`.
    """

    def __init__(self, engine: WatchedEngine, *, policy: SupervisionPolicy = SupervisionPolicy(),
                 start: Callable[[str], WatchedEngine], kill: Callable[[int], None],
                 drop: Callable[[WatchedEngine], None], death_reason: Callable[[int], str],
                 is_stopped: Callable[[int], bool],
                 on_restarted: Callable[[WatchedEngine, str, float], None], on_stopped: Callable[[str], None],
                 on_gave_up: Callable[[str], None], stopping: Callable[[], str | None],
                 closed: Callable[[], bool], reap: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.engine = engine
        self.policy = policy
        self.restarts = 0  # in a row, since the last finished job
        self._start, self._kill, self._drop = start, kill, drop
        self._death_reason, self._is_stopped = death_reason, is_stopped
        self._on_restarted, self._on_stopped, self._on_gave_up = on_restarted, on_stopped, on_gave_up
        self._stopping, self._closed, self._reap = stopping, closed, reap
        self._clock, self._wall_clock, self._sleep = clock, wall_clock, sleep
        self._last_tick = clock()
        self._excused_until = -math.inf  # silence before this was this process's pause, not the engine's

    def start_thread(self) -> threading.Thread:
        """Supervise in a daemon thread until the client closes, the engine is stopped, or this gives up."""
        thread = threading.Thread(target=self.run, name="engine-supervisor", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        self._last_tick = self._clock()
        while not self._closed() and self.watch_once():
            pass

    def job_finished(self) -> None:
        """A job ran to its end (done, failed or cancelled): the engine works, its restarts were bad luck."""
        self.restarts = 0

    def watch_once(self) -> bool:
        """One heartbeat: wait for it (or for the connection to close), then restart, stop or ping. False
        when supervision is over (the client closed, the engine was stopped on purpose, or this gave up)."""
        engine = self.engine
        lost = engine.wait_lost(self.policy.heartbeat_s)
        now = self._clock()
        if now - self._last_tick > self.policy.pause_s:
            # This process was paused (Ctrl-Z, its GIL held): the engine's silence meanwhile says nothing about
            # it, so count it from now, or a client's own pause would get a healthy engine killed.
            self._excused_until = now
        self._last_tick = now
        if lost:
            if self._closed():
                return False
            stopping = self._stopping()
            if engine.goodbye is not None or stopping:
                self._on_stopped(engine.goodbye or stopping or "")
                return False
            return self._replace(engine, self._death_reason(engine.pid))
        self._reap()
        silent = now - max(engine.last_heard, self._excused_until)  # `now`: a pause since is this process's
        if silent > self.policy.hang_timeout_s or self._is_stopped(engine.pid):
            return self._replace(engine, f"the engine (pid {engine.pid}) stopped answering for {silent:.1f} s "
                                 "and was killed")
        engine.ping()
        return True

    def _replace(self, engine: WatchedEngine, why: str) -> bool:
        """Kill `engine` (if it still runs) and start another, trying again while starts fail, until the
        restarts in a row pass the limit. True when a new engine is being watched."""
        noticed_at = self._wall_clock()
        self._drop(engine)
        self._kill(engine.pid)
        while not self._closed():
            self.restarts += 1
            if self.restarts > self.policy.max_restarts:
                self._on_gave_up(f"the engine failed {self.policy.max_restarts} times in a row (last: {why})")
                return False
            try:
                new = self._start(why)
            except RiffstudioError as error:
                why = str(error)
                self._sleep(self.policy.retry_pause_s)
                continue
            self.engine = new
            self._on_restarted(new, why, noticed_at)
            return True
        return False
