"""The engine recovers from its own state: a journal that cannot be read is moved aside and a fresh one
started (the unfinished jobs it held reported as lost, by id), a full data folder is one line naming it.
Real engine processes, real SQLite files damaged on disk, a real full file system (a tmpfs)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from engine_fixtures import loop_settings

from engine.client import EngineClient
from engine.errors import EngineError
from engine.process import protocol as p
from engine.process.journal import Journal
from engine.process.paths import engine_data_dir, journal_path, log_path

# Every test in a private home (conftest.py `home`).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), pytest.mark.usefixtures("home")]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ui.cli.main", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ))


def queued_journal() -> list[str]:
    """A journal left by an engine with two jobs waiting (as after a kill); their ids."""
    journal = Journal(journal_path())
    ids = [journal.submit({"settings": {"prompt": f"job {i}"}}, "batch", f"key-{i}")[0].id for i in range(2)]
    journal.close()
    return ids


def set_aside() -> list[Path]:
    return sorted(path for path in engine_data_dir().glob("journal.sqlite3.damaged-*")
                  if not path.name.endswith(("-wal", "-shm")))


def overwrite_page(path: Path, page: int, data: bytes) -> None:
    size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as file:
        file.seek((page - 1) * size)
        file.write(data * (size // len(data)))


def test_random_bytes_in_the_journal_are_moved_aside_and_the_engine_serves(fp32_bundle):
    """Was: every engine command "engine exited at start (code 1)", `engine jobs` a traceback, for good."""
    journal_path().write_bytes(os.urandom(20000))
    with EngineClient(name="after") as client:
        assert len(client.notes) == 1 and "damaged" in client.notes[0], client.notes
        assert "could not be read" in client.notes[0]
        done = client.submit(loop_settings(), str(fp32_bundle)).wait(timeout=60)
        assert isinstance(done, p.Done)
    (aside,) = set_aside()
    assert aside.read_bytes()[:6] != b"SQLite" and aside.name in client.notes[0]
    jobs = cli("engine", "jobs")
    assert jobs.returncode == 0 and "Traceback" not in jobs.stderr, jobs.stderr
    status = cli("engine", "status")
    assert status.returncode == 0 and "note: the job journal was damaged" in status.stdout, status.stdout
    log = log_path().read_text(encoding="utf-8")
    assert log.count(aside.name) == 1, log  # said once in the spawned engine's log (it was written twice)


def test_a_corrupt_index_page_loses_no_job_silently(fp32_bundle):
    """One corrupt page ("database disk image is malformed" on every submit, before): the journal is set aside
    and each job it still shows was waiting is reported failed as `lost` to whoever follows its id; a client
    submitting it again by its key (a batch rerun) gets it rendered, not the loss."""
    ids = queued_journal()
    db = sqlite3.connect(journal_path())
    page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs_by_state'").fetchone()[0]
    db.close()
    overwrite_page(journal_path(), page, b"\xde\xad\xbe\xef")
    with EngineClient(name="after") as client:
        (note,) = client.notes
        assert "2 unfinished job(s) lost" in note and all(job_id in note for job_id in ids), note
        jobs = {job.job: job for job in client.jobs(10)}
        assert {jobs[job_id].state for job_id in ids} == {"failed"}
        followed = client.follow(ids[0]).wait(timeout=10)
        assert isinstance(followed, p.Failed) and followed.code == "lost"
        again = client.submit(loop_settings(), str(fp32_bundle), priority="batch", key="key-1")
        assert again.id not in ids and isinstance(again.wait(timeout=60), p.Done)
    assert len(set_aside()) == 1


@contextlib.contextmanager
def data_folder_on_a_small_disk(tmp_path: Path, monkeypatch, size: str) -> Iterator[Path]:
    """XDG_DATA_HOME on a real tmpfs of `size` (unmounted at the end): a disk that can fill up."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run the suite as root (CI does)")
    folder = tmp_path / "mounted"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        monkeypatch.setenv("XDG_DATA_HOME", str(folder))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Write a filler file until no more than `leave` bytes are free (all of them for 0: until the disk refuses)."""
    with open(folder / "filler", "wb") as filler:
        try:
            while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave:
                filler.write(b"\0" * 16384)
                filler.flush()
        except OSError:
            pass


def test_a_full_data_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    """A data folder on a full disk: the engine cannot even write its log; the client says so in one line."""
    with data_folder_on_a_small_disk(tmp_path, monkeypatch, "1m") as full:
        engine_data_dir()  # the engine's folder exists; then the disk fills up
        fill(full)
        with pytest.raises(EngineError) as refused:
            EngineClient(name="full", start_timeout_s=30)
        message = str(refused.value)
        assert "is full" in message and str(engine_data_dir()) in message and "\n" not in message, message
        result = cli("generate", "x", "--model", str(tmp_path), "--engine", "--out", str(tmp_path / "a.wav"))
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and "is full" in lines[0], result.stderr


def test_a_disk_that_fills_up_under_a_job_fails_it_as_storage_in_one_line(tmp_path, monkeypatch, fp32_bundle):
    """A full disk when the results are written was reported as `internal` (a bug); it is the engine's storage."""
    with data_folder_on_a_small_disk(tmp_path, monkeypatch, "4m") as data, EngineClient(name="full") as client:
        fill(data, leave=96 * 1024)  # room for the journal's writes, not for a loop
        failed = client.submit(loop_settings(), str(fp32_bundle)).wait(timeout=60)
        assert isinstance(failed, p.Failed), failed
        assert failed.code == "storage" and "free some disk space" in failed.message, failed
        assert "\n" not in failed.message and str(data) in failed.message
        (data / "filler").unlink()
        assert isinstance(client.submit(loop_settings(seed=8), str(fp32_bundle)).wait(timeout=60), p.Done)
