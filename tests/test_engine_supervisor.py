"""The engine's restart policy (engine/supervisor.py), with a fake engine, fake hands and a fake clock: no
sockets, no processes, no sleeps. tests/test_engine_faults.py checks the same behaviour with real engines
killed, stopped and hung; these check the policy's edges, which real processes make slow or flaky to reach."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from engine.errors import EngineError
from engine.supervisor import EngineSupervisor, SupervisionPolicy

POLICY = SupervisionPolicy()  # the client's: a heartbeat every 0.25 s, hung after 1.5 s silent, 5 restarts


class Clock:
    """Monotonic and wall clock at once: only differences matter to the supervisor."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeEngine:
    """One engine as the supervisor sees it. It answers each ping at once unless `answers` is False; it dies
    `dies_in` seconds into a heartbeat's wait; `pause_next_wait` makes the next wait take that long, as when
    this whole process is stopped (Ctrl-Z) and its reader cannot hear pongs either."""

    def __init__(self, pid: int, clock: Clock) -> None:
        self.pid = pid
        self.clock = clock
        self.last_heard = clock()
        self.goodbye: str | None = None
        self.answers = True
        self.dies_in: float | None = None
        self.pause_next_wait: float | None = None
        self.pings = 0
        self.lost = False

    def wait_lost(self, timeout: float) -> bool:
        if self.lost:
            return True
        if self.dies_in is not None and self.dies_in <= timeout:
            self.clock.advance(self.dies_in)  # the wait ends when the connection closes, not at the heartbeat
            self.lost = True
            return True
        self.clock.advance(self.pause_next_wait or timeout)
        self.pause_next_wait = None
        if self.dies_in is not None:
            self.dies_in -= timeout
        return False

    def ping(self) -> None:
        self.pings += 1
        if self.answers:
            self.last_heard = self.clock()


class Hands:
    """The client's side: starts fake engines (or fails to, with `start_failures`), and records every act."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.log: list[tuple] = []
        self.engines: list[FakeEngine] = []
        self.start_failures: list[str] = []
        self.new_engines_die_in: float | None = None
        self.stopped_pids: set[int] = set()
        self.stopping: str | None = None
        self.closed = False
        self.close_when_a_start_fails = False  # as if the user closed the app meanwhile

    def first_engine(self) -> FakeEngine:
        engine = FakeEngine(100, self.clock)
        self.engines.append(engine)
        return engine

    def supervisor(self, engine: FakeEngine, policy: SupervisionPolicy = POLICY) -> EngineSupervisor:
        return EngineSupervisor(
            engine, policy=policy, start=self.start, kill=lambda pid: self.log.append(("kill", pid)),
            drop=lambda old: self.log.append(("drop", old.pid)), death_reason=self.death_reason,
            is_stopped=lambda pid: pid in self.stopped_pids,
            on_restarted=lambda new, why, at: self.log.append(("restarted", new.pid, why, at)),
            on_stopped=lambda why: self.log.append(("stopped", why)),
            on_gave_up=lambda why: self.log.append(("gave up", why)), stopping=lambda: self.stopping,
            closed=lambda: self.closed, clock=self.clock, wall_clock=self.clock, sleep=self.clock.advance)

    def start(self, why: str) -> FakeEngine:
        self.log.append(("start", why))
        if self.start_failures:
            self.closed = self.closed or self.close_when_a_start_fails
            raise EngineError(self.start_failures.pop(0))
        engine = FakeEngine(100 + len(self.engines), self.clock)
        engine.dies_in = self.new_engines_die_in
        self.engines.append(engine)
        return engine

    @staticmethod
    def death_reason(pid: int) -> str:
        return f"the engine (pid {pid}) was killed by SIGKILL"

    def acts(self, kind: str) -> list[tuple]:
        return [entry for entry in self.log if entry[0] == kind]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hands(clock: Clock) -> Hands:
    return Hands(clock)


def test_a_healthy_engine_is_pinged_every_heartbeat_and_left_alone(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    started = clock()
    for _ in range(400):
        assert supervisor.watch_once()
    assert engine.pings == 400 and clock() - started == pytest.approx(400 * POLICY.heartbeat_s)
    assert hands.log == [] and supervisor.engine is engine


def test_a_dead_engine_is_noticed_at_once_and_restarted_with_how_it_died(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    supervisor.watch_once()
    engine.dies_in = 0.05
    died_at = clock() + 0.05
    assert supervisor.watch_once()
    why = "the engine (pid 100) was killed by SIGKILL"
    assert hands.log == [("drop", 100), ("kill", 100), ("start", why), ("restarted", 101, why, died_at)]
    assert supervisor.engine is hands.engines[1] and supervisor.restarts == 1
    assert supervisor.watch_once() and hands.engines[1].pings == 1  # the new one is watched from then on


def test_a_silent_engine_is_killed_within_two_seconds_and_only_then_restarted(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    supervisor.watch_once()
    engine.answers = False  # hung: it stays connected but answers nothing
    silent_from = engine.last_heard
    while not hands.log:
        assert supervisor.watch_once()
    _, pid, why, noticed_at = hands.acts("restarted")[0]
    assert POLICY.hang_timeout_s < noticed_at - silent_from < 2.0
    assert why == f"the engine (pid 100) stopped answering for {noticed_at - silent_from:.1f} s and was killed"
    assert [entry[0] for entry in hands.log] == ["drop", "kill", "start", "restarted"]  # killed before replaced
    assert hands.acts("kill") == [("kill", 100)] and pid == 101


def test_a_stopped_engine_process_is_killed_at_the_next_heartbeat_without_waiting_for_the_timeout(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    supervisor.watch_once()
    hands.stopped_pids.add(100)  # SIGSTOP: hung for sure, whatever the timer says
    engine.answers = False
    assert supervisor.watch_once()
    assert hands.acts("kill") == [("kill", 100)]
    assert hands.acts("restarted")[0][2] == "the engine (pid 100) stopped answering for 0.2 s and was killed"


def test_a_client_paused_like_ctrl_z_does_not_get_a_healthy_engine_killed(clock, hands):
    """As test_a_client_paused_with_ctrl_z_does_not_get_a_healthy_engine_killed, with a real client process
    stopped for 2.5 s: its heartbeat comes back late and no pong was read meanwhile, yet the engine is fine."""
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    supervisor.watch_once()
    engine.answers = False  # this process's reader is stopped too: nothing is heard during the pause
    engine.pause_next_wait = 2.5
    assert supervisor.watch_once()
    engine.answers = True
    for _ in range(20):
        assert supervisor.watch_once()
    assert hands.log == [] and engine.pings == 22


def test_the_same_silence_without_a_pause_here_kills(clock, hands):
    """The counterpart of the paused client: 2.5 s of silence with every heartbeat on time is a hung engine."""
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    supervisor.watch_once()
    engine.answers = False
    for _ in range(10):  # 2.5 s of heartbeats
        supervisor.watch_once()
    assert hands.acts("kill") == [("kill", 100)]


def test_an_engine_still_silent_after_the_pause_is_killed_a_hang_timeout_later(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    supervisor.watch_once()
    engine.answers = False
    engine.pause_next_wait = 2.5
    supervisor.watch_once()
    resumed_at = clock()
    while not hands.log:
        supervisor.watch_once()
    noticed_at = hands.acts("restarted")[0][3]
    assert POLICY.hang_timeout_s < noticed_at - resumed_at <= POLICY.hang_timeout_s + POLICY.heartbeat_s + 1e-9


def test_each_pong_starts_the_silence_again_so_a_slow_engine_is_never_killed(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    engine.answers = False
    for beat in range(1, 200):  # 50 s, an answer every 1.25 s: slow, never silent for the hang timeout
        assert supervisor.watch_once()
        if beat % 5 == 0:
            engine.last_heard = clock()
    assert hands.log == []


def test_too_many_restarts_in_a_row_give_up_with_the_last_reason(clock, hands):
    engine = hands.first_engine()
    engine.dies_in = 0.0
    hands.new_engines_die_in = 0.0  # every engine dies at once
    supervisor = hands.supervisor(engine)
    supervisor.run()  # returns: supervision is over
    assert len(hands.acts("start")) == POLICY.max_restarts == 5
    assert hands.acts("gave up") == [("gave up", "the engine failed 5 times in a row (last: the engine (pid 105) "
                                                  "was killed by SIGKILL)")]
    assert hands.log[-3:] == [("drop", 105), ("kill", 105), ("gave up", hands.acts("gave up")[0][1])]
    assert hands.acts("stopped") == []


def test_a_start_that_fails_is_tried_again_after_a_pause_and_counts_as_a_restart(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    engine.dies_in = 0.0
    hands.start_failures = ["the engine did not answer within 60 s", "the disk is full"]
    before = clock()
    assert supervisor.watch_once()
    assert [why for _, why in hands.acts("start")] == [
        "the engine (pid 100) was killed by SIGKILL", "the engine did not answer within 60 s", "the disk is full"]
    assert hands.acts("restarted") == [("restarted", 101, "the disk is full", before)]  # the new engine is told
    assert supervisor.restarts == 3 and clock() - before == pytest.approx(2 * POLICY.retry_pause_s)


def test_starts_that_keep_failing_give_up_with_the_start_error(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    engine.dies_in = 0.0
    hands.start_failures = [f"start {number} failed" for number in range(1, 10)]
    assert not supervisor.watch_once()
    assert len(hands.acts("start")) == 5
    assert hands.acts("gave up") == [("gave up", "the engine failed 5 times in a row (last: start 5 failed)")]


def _die_and_restart(supervisor: EngineSupervisor) -> None:
    supervisor.engine.dies_in = 0.0
    supervisor.watch_once()


def test_a_finished_job_resets_the_restart_count(clock, hands):
    supervisor = hands.supervisor(hands.first_engine())
    for _ in range(4):
        _die_and_restart(supervisor)
    supervisor.job_finished()  # the engine works: those were bad luck
    for _ in range(5):
        _die_and_restart(supervisor)
    assert hands.acts("gave up") == [] and supervisor.restarts == 5
    _die_and_restart(supervisor)
    assert len(hands.acts("gave up")) == 1


def test_pongs_alone_do_not_reset_the_restart_count(clock, hands):
    """An engine that answers pings but dies again at every resumed job is broken, not unlucky."""
    supervisor = hands.supervisor(hands.first_engine())
    for _ in range(5):
        _die_and_restart(supervisor)
        for _ in range(40):  # 10 s of healthy heartbeats in between
            assert supervisor.watch_once()
    _die_and_restart(supervisor)
    assert len(hands.acts("gave up")) == 1 and len(hands.acts("start")) == 5


def test_an_engine_that_said_goodbye_is_not_restarted(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    engine.goodbye = "idle for 600 s"
    engine.dies_in = 0.0
    assert not supervisor.watch_once()
    assert hands.log == [("stopped", "idle for 600 s")]


def test_an_engine_this_client_stopped_is_not_restarted(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    hands.stopping = "stopped by this client"
    engine.dies_in = 0.0
    supervisor.run()
    assert hands.log == [("stopped", "stopped by this client")]


def test_a_closed_client_stops_supervising_and_restarts_nothing(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    hands.closed = True
    engine.dies_in = 0.0  # close() closes the link: it looks lost
    assert not supervisor.watch_once()
    supervisor.run()
    assert hands.log == []


def test_a_client_closed_while_starts_fail_stops_trying(clock, hands):
    engine = hands.first_engine()
    supervisor = hands.supervisor(engine)
    engine.dies_in = 0.0
    hands.start_failures = ["no engine answered"] * 3
    hands.close_when_a_start_fails = True
    assert not supervisor.watch_once()
    assert supervisor.restarts == 1 and hands.acts("restarted") == [] and hands.acts("gave up") == []


def test_the_policy_is_frozen_and_excuses_a_pause_before_a_silence_that_long_kills():
    policy = SupervisionPolicy()
    with pytest.raises(FrozenInstanceError):
        policy.hang_timeout_s = 10  # type: ignore[misc]
    assert policy.heartbeat_s + policy.hang_timeout_s <= 2.0  # a hung engine is known within 2 s
    assert policy.heartbeat_s < policy.pause_s < policy.hang_timeout_s
