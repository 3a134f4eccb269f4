"""Faults, for real: an engine killed (-9), crashed by a job, or stopped (SIGSTOP); clients killed; garbage
on the wire; wrong keys. Each test has its own engine home, so each starts from nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import threading
import time
from multiprocessing.connection import Client
from pathlib import Path

import pytest
from engine_fixtures import (
    loop_settings,
    reference_files,
    result_files,
    start_client_process,
    wait_for,
)

from engine.client import EngineClient, EngineRestarted
from engine.process import protocol as p
from engine.process import transport
from engine.process.connection_file import live_engine
from engine.process.hooks import CRASH_ENV, HANG_ENV
from engine.process.paths import engine_data_dir, log_path, results_dir

# Every test in a private home (conftest.py `home`).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), pytest.mark.usefixtures("home")]


def run_until_step(job, step: int) -> list:
    events = []
    for event in job.events(timeout=60):
        events.append(event)
        if isinstance(event, p.Progress) and event.stage == "denoise" and event.step >= step:
            return events
    raise AssertionError(f"the job ended before step {step}: {events[-1]}")


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_a_dead_or_hung_engine_is_noticed_within_2_s_replaced_and_the_job_completes(fault, fp32_bundle, tmp_path):
    settings = loop_settings("survivor", steps=30, seed=3)
    with EngineClient(name="test") as client:
        first_pid = client.pid
        job = client.submit(settings, fp32_bundle, provider="cpu")
        run_until_step(job, 2)
        faulted_at = time.time()
        os.kill(first_pid, getattr(signal, fault))
        # Sent to the dead or hung engine: the restart must wake it and send it again (same key) to the new one.
        late = client.submit(loop_settings("late", steps=2), fp32_bundle, provider="cpu")
        assert time.time() - faulted_at < 10, "a submit to a dead or hung engine waited for its timeout"
        events = list(job.events(timeout=60))
        assert isinstance(late.wait(timeout=60), p.Done)
    restarts = [e for e in events if isinstance(e, EngineRestarted)]
    assert len(restarts) == 1 and restarts[0].pid != first_pid
    assert restarts[0].noticed_at - faulted_at < 2.0
    assert ("killed by SIGKILL" if fault == "SIGKILL" else "stopped answering") in restarts[0].reason
    after = events[events.index(restarts[0]):]
    assert isinstance(after[1], p.Started) and after[1].attempt == 2
    assert isinstance(events[-1], p.Done)
    assert result_files(events[-1]) == reference_files(fp32_bundle, settings, tmp_path / "uninterrupted")
    wait_for(lambda: not _alive(first_pid), 5, "the old engine to be gone")


def test_a_job_that_kills_the_engine_twice_fails_alone_and_the_next_succeeds(fp32_bundle, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "crash-me")  # read by the engines this client starts
    with EngineClient(name="test") as client:
        bad = client.submit(loop_settings("crash-me bass"), fp32_bundle, priority="interactive")
        good = client.submit(loop_settings("calm bass"), fp32_bundle, priority="batch")
        bad_events = list(bad.events(timeout=60))
        assert isinstance(good.wait(timeout=60), p.Done)
    assert sum(isinstance(e, EngineRestarted) for e in bad_events) == 2
    failed = bad_events[-1]
    assert isinstance(failed, p.Failed) and failed.code == "engine_crashed"
    assert failed.message.startswith("this job stopped the engine twice (last: the engine (pid ")
    assert failed.message.endswith("was killed by SIGKILL)")
    info = {job.job: job for job in client_jobs()}
    assert info[bad.id].attempts == 2 and info[bad.id].crashes == 2 and info[good.id].state == "done"


def test_a_job_that_hangs_the_engine_is_killed_by_the_heartbeat_and_fails_alone_after_twice(fp32_bundle, monkeypatch):
    monkeypatch.setenv(HANG_ENV, "hang-me")  # the engine stays running (not stopped) but answers nothing
    with EngineClient(name="test") as client:
        bad = client.submit(loop_settings("hang-me bass"), fp32_bundle, priority="interactive")
        good = client.submit(loop_settings("calm bass"), fp32_bundle, priority="batch")
        bad_events = list(bad.events(timeout=60))
        assert isinstance(good.wait(timeout=60), p.Done)
    restarts = [e for e in bad_events if isinstance(e, EngineRestarted)]
    assert len(restarts) == 2 and all("stopped answering" in e.reason for e in restarts), restarts
    hung_from = [float(line.rsplit(" ", 1)[1]) for line in log_path().read_text().splitlines()
                 if line.startswith("test hook: hanging from")]
    assert len(hung_from) == 2
    assert all(0 < e.noticed_at - start < 2.0 for e, start in zip(restarts, hung_from, strict=True)), \
        [e.noticed_at - start for e, start in zip(restarts, hung_from, strict=True)]
    failed = bad_events[-1]
    assert isinstance(failed, p.Failed) and failed.code == "engine_crashed" and "stopped answering" in failed.message


def test_a_client_paused_with_ctrl_z_does_not_get_a_healthy_engine_killed(fp32_bundle):
    script = f"""
import sys
sys.path.insert(0, "tests")
from engine.client import EngineClient, EngineRestarted
from engine_fixtures import loop_settings
client = EngineClient(name="paused")
job = client.submit(loop_settings("paused", steps=40), {str(fp32_bundle)!r}, provider="cpu")
events = []
for event in job.events(timeout=60):
    events.append(event)
    if len(events) == 1:
        print(client.pid, flush=True)
print(sum(isinstance(e, EngineRestarted) for e in events), type(events[-1]).__name__, client.pid, flush=True)
"""
    process = start_client_process(script)
    pid = process.stdout.readline().strip()
    assert pid, process.stderr.read()
    process.send_signal(signal.SIGSTOP)  # as Ctrl-Z does; the engine carries on meanwhile
    time.sleep(2.5)
    process.send_signal(signal.SIGCONT)
    out, err = process.communicate(timeout=60)
    assert out.split() == ["0", "Done", pid], err


def test_two_clients_starting_at_once_start_one_engine():
    clients, errors = [], []

    def connect() -> None:
        try:
            clients.append(EngineClient(name="racer", supervise=False))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=connect) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors and len(clients) == 3
        assert len({client.pid for client in clients}) == 1 and live_engine().pid == clients[0].pid
        assert "already running" not in log_path().read_text()  # no second engine was even spawned
    finally:
        for client in clients:
            client.close()


def test_garbage_truncated_oversized_and_unknown_messages_get_error_replies(fp32_bundle):
    with EngineClient(name="test") as client:
        info = live_engine()
        conn = transport.connect(info.address, info.family, info.authkey)

        def ask(data: bytes) -> p.Message:
            conn.send_bytes(data)
            return transport.receive(conn, timeout=5)

        assert ask(p.encode(p.Ping(id="early"))).code == "not_ready"
        assert ask(p.encode(p.Hello(id="h", protocol="1.9"))).protocol == p.PROTOCOL_VERSION  # minors mix
        for data, code in [(b"\x00\xff garbage", "bad_message"), (b'{"type": "submit", "id": "t", "set', "bad_message"),
                           (b'{"type": "frobnicate", "id": "u"}', "unknown_type"),
                           (b'{"type": "cancel", "id": "c", "job": 5}', "bad_message"),
                           (b'{"type": "pong", "re": "x", "time": 1}', "unknown_type"),
                           (b'{"type": "ping", "id": "deep", "x": ' + b"[" * 100_000, "bad_message"),
                           (b'{"type": "cancel", "id": "c", "job": "nope"}', "unknown_job")]:
            reply = ask(data)
            assert isinstance(reply, p.Error) and reply.code == code, (data, reply)
        assert ask(b'{"type": "frobnicate", "id": "u"}').re == "u"
        huge = ask(b'{"type": "ping", "id": "' + b"x" * (p.MAX_MESSAGE_BYTES - 30) + b'"}')  # a reply could not fit
        assert isinstance(huge, p.Error) and huge.code == "bad_message" and huge.re is None
        assert isinstance(ask(p.encode(p.Ping(id="still"))), p.Pong)

        oversized = threading.Thread(target=_send_quietly, args=(conn, b" " * (p.MAX_MESSAGE_BYTES + 1)))
        oversized.start()
        reply = transport.receive(conn, timeout=10)
        oversized.join(10)
        assert isinstance(reply, p.Error) and reply.code == "too_large"

        raw = Client(info.address, info.family)  # a frame cut short, then the client vanishes
        raw.close()
        with _connection(info) as other:  # a frame cut short: its header promises 100 bytes, 12 come
            other.send_bytes(p.encode(p.Hello(id="h", protocol="1.0")))
            transport.receive(other, timeout=5)
            os.write(other.fileno(), struct.pack("!i", 100) + b'{"type": "pi')
        mismatch = _connection(info)
        mismatch.send_bytes(p.encode(p.Hello(id="h", protocol="2.0")))
        assert transport.receive(mismatch, timeout=5).code == "protocol_mismatch"
        assert client.ping() < 1.0  # the engine kept serving through all of it
        assert isinstance(client.submit(loop_settings(steps=2), fp32_bundle).wait(timeout=60), p.Done)


def test_a_connection_without_the_key_or_with_a_wrong_key_is_refused():
    with EngineClient(name="test") as client:
        info = live_engine()
        with pytest.raises(transport.AuthenticationFailed):
            transport.connect(info.address, info.family, b"not the key")
        keyless = Client(info.address, info.family)
        assert keyless.recv_bytes(256).startswith(transport.CHALLENGE)
        keyless.send_bytes(p.encode(p.Hello(id="h", protocol="1.0")))  # as if there were no handshake
        assert keyless.recv_bytes(256) == transport.FAILURE
        with pytest.raises(EOFError):
            keyless.recv_bytes()
        assert os.stat(info.address).st_mode & 0o077 == 0
        assert os.stat(Path(info.address).parent).st_mode & 0o777 == 0o700
        assert os.stat(engine_data_dir()).st_mode & 0o777 == 0o700  # the journal and the log
        assert os.stat(Path(os.environ["XDG_RUNTIME_DIR"]) / "riffstudio" / "engine.json").st_mode & 0o777 == 0o600
        assert client.ping() < 1.0


def test_journal_five_jobs_engine_and_client_killed_during_the_second_all_complete_once(fp32_bundle):
    script = f"""
import sys, time
sys.path.insert(0, "tests")
from engine.client import EngineClient
from engine_fixtures import loop_settings
client = EngineClient(name="batch")
jobs = [client.submit(loop_settings(f"job {{i}}", steps=12, seed=i), {str(fp32_bundle)!r}, priority="batch",
                      key=f"batch-{{i}}") for i in range(5)]
print(" ".join(job.id for job in jobs), flush=True)
time.sleep(120)
"""
    process = start_client_process(script)
    ids = process.stdout.readline().split()
    assert len(ids) == 5, process.stderr.read()
    with EngineClient(start=False, supervise=False, name="watcher") as watcher:
        pid = watcher.pid
        wait_for(lambda: (s := watcher.status().running) and s.job == ids[1] and s.step >= 2, 60,
                 "the second job to be half-way")
    first_audio = Path(results_dir() / ids[0] / "loop.wav")
    first_stat = first_audio.stat()
    os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait(10)
    with EngineClient(name="after") as client:
        results = [client.follow(job_id).wait(timeout=60) for job_id in ids]
        jobs = {job.job: job for job in client.jobs(100)}
    assert all(isinstance(result, p.Done) for result in results)
    assert len(jobs) == 5 and all(job.state == "done" for job in jobs.values())
    assert [jobs[job_id].attempts for job_id in ids] == [1, 2, 1, 1, 1]
    assert sorted(path.name for path in results_dir().iterdir()) == sorted(ids)  # one folder each, no leftovers
    assert first_audio.stat().st_mtime_ns == first_stat.st_mtime_ns and first_audio.stat().st_ino == first_stat.st_ino
    seeds = [json.loads(Path(r.paths["sidecar"]).read_text())["settings"]["seed"] for r in results]
    assert seeds == [0, 1, 2, 3, 4]


def client_jobs():
    with EngineClient(name="lister") as client:
        return client.jobs(100)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _send_quietly(conn, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the engine hangs up after refusing it
        conn.send_bytes(data)


def _connection(info):
    return transport.connect(info.address, info.family, info.authkey)


def test_a_damaged_connection_file_does_not_orphan_the_running_engine():
    """Garbage in engine.json made `status` and `stop` say "no engine is running" and every --engine command
    fail until the engine's idle exit. The engine holds its lock, so it writes the file again; clients wait."""
    import subprocess
    import sys

    from conftest import REPO

    from engine.process.connection_file import connection_file

    with EngineClient(name="first") as client:
        pid = client.pid
    connection_file().write_bytes(b"\x00garbage{")
    status = subprocess.run([sys.executable, "-m", "ui.cli.main", "engine", "status"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and f"engine pid {pid}" in status.stdout, status.stdout + status.stderr
    connection_file().unlink()
    with EngineClient(name="second") as client:
        assert client.pid == pid  # found again, not a second engine
    stop = subprocess.run([sys.executable, "-m", "ui.cli.main", "engine", "stop"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert stop.returncode == 0 and f"engine (pid {pid}) stopped" in stop.stdout, stop.stdout + stop.stderr
    assert not _alive(pid)


def test_engine_serve_with_a_model_loads_it_and_still_idles_out_and_a_bad_one_is_one_line(fp32_bundle, tmp_path):
    """`engine serve --model B` said "model: none loaded" forever and never idled out; a bad path was silent."""
    import subprocess
    import sys

    from conftest import REPO

    serve = [sys.executable, "-m", "ui.cli.main", "engine", "serve", "--idle-timeout", "3"]
    bad = subprocess.run([*serve, "--model", str(tmp_path / "nothing")], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode != 0 and len(lines) == 1 and lines[0].startswith("riffstudio: "), bad.stderr
    assert live_engine() is None
    engine = subprocess.Popen([*serve, "--model", str(fp32_bundle)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: live_engine() is not None, 30, "the engine to start")
        with EngineClient(start=False, supervise=False, name="watcher") as client:
            wait_for(lambda: client.status().bundle is not None, 30, "the model to load")
            assert Path(client.status().bundle) == Path(fp32_bundle)
        assert engine.wait(timeout=30) == 0  # idle with no client: it exits by itself
        assert "idle for 3 s" in engine.stdout.read()
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()


def test_engine_jobs_into_a_reader_that_goes_away_ends_quietly():
    """`riffstudio engine jobs | head -1` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    from conftest import REPO

    from engine.process.journal import Journal
    from engine.process.paths import journal_path

    journal = Journal(journal_path())
    for number in range(1500):  # more lines than a pipe holds, so the writer meets the closed end
        job, _ = journal.submit({"settings": {"prompt": f"loop {number}"}}, "batch", None)
        journal.mark_done(job.id, {})
    journal.close()
    with EngineClient(name="first"):
        pass
    listing = subprocess.Popen([sys.executable, "-m", "ui.cli.main", "engine", "jobs", "--limit", "1500"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert listing.stdout.readline()
    listing.stdout.close()
    stderr = listing.stderr.read().decode()
    assert listing.wait(timeout=60) == 141
    assert "Traceback" not in stderr and stderr == "", stderr


def test_an_engine_folder_of_another_user_is_one_line(tmp_path, monkeypatch):
    """Another user's /tmp/runtime-<uid> (or riffstudio folder in it) gave a PermissionError traceback."""
    import subprocess
    import sys

    from conftest import REPO

    runtime = tmp_path / "runtime"
    (runtime / "riffstudio").mkdir(parents=True)
    os.chmod(runtime, 0o700)
    os.chown(runtime / "riffstudio", 65534, 65534)  # nobody's: tests run as root, as CI does
    result = subprocess.run([sys.executable, "-m", "ui.cli.main", "engine", "status"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "belongs to another user" in lines[0] and str(runtime / "riffstudio") in lines[0], lines[0]
