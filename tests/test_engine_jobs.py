"""Jobs through a real engine process on the tiny bundle: same bytes as in-process, progress, cancel,
priorities, several clients, the command line. One engine serves the whole module (a private home)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_fixtures import (
    WIDTH,
    engine_home,
    loop_settings,
    progress_steps,
    reference_files,
    result_files,
    start_client_process,
    wait_for,
)

from engine.client import EngineClient, EngineNotRunning
from engine.process import protocol as p
from engine.process.connection_file import live_engine
from engine.process.settings import EngineSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module", autouse=True)
def home():
    with pytest.MonkeyPatch.context() as monkeypatch, engine_home(monkeypatch) as folder:
        yield folder


@pytest.fixture(scope="module")
def client():
    with EngineClient(name="test") as client:
        yield client


def test_a_job_through_the_engine_gives_the_same_bytes_as_in_process(client, fp32_bundle, tmp_path):
    settings = loop_settings("lofi piano", steps=3, seed=11)
    done = client.submit(settings, fp32_bundle, provider="cpu").wait(timeout=60)
    assert isinstance(done, p.Done), done
    assert result_files(done) == reference_files(fp32_bundle, settings, tmp_path / "in-process")
    sidecar = json.loads(Path(done.paths["sidecar"]).read_text())
    assert sidecar["settings"] == json.loads(json.dumps(settings.to_dict())) and sidecar["provider"] == "cpu"
    assert done.seed == 11 and done.folder.endswith(done.job)


def test_progress_arrives_in_order_one_event_per_step_with_previews(client, fp32_bundle):
    events = list(client.submit(loop_settings(steps=5), fp32_bundle, previews=True).events(timeout=60))
    assert isinstance(events[0], p.Started) and isinstance(events[-1], p.Done)
    assert progress_steps(events) == [1, 2, 3, 4, 5]
    progress = [e for e in events if isinstance(e, p.Progress)]
    assert [e.fraction for e in progress] == sorted(e.fraction for e in progress)
    previews = [e.preview.to_array() for e in progress if e.stage == "denoise"]
    assert all(preview.shape == (64, WIDTH // 8, 3) for preview in previews)


def test_cancel_stops_a_running_job_within_a_second_and_a_queued_one_at_once(client, fp32_bundle):
    running = client.submit(loop_settings("long one", steps=200), fp32_bundle)
    queued = client.submit(loop_settings("never runs", steps=4), fp32_bundle, priority="batch")
    assert client.cancel(queued.id) == "cancelled"
    assert isinstance(next(queued.events(timeout=5)), p.Cancelled)
    for event in running.events(timeout=30):
        if isinstance(event, p.Progress) and event.stage == "denoise" and event.step >= 2:
            break
    start = time.monotonic()
    assert client.cancel(running.id) == "running"
    assert isinstance(running.wait(timeout=5), p.Cancelled)
    assert time.monotonic() - start < 1.0
    states = {job.job: job.state for job in client.jobs()}
    assert states[running.id] == states[queued.id] == "cancelled"


def test_an_interactive_job_overtakes_queued_batch_jobs(client, fp32_bundle):
    # The blocker is far longer than the submits below take on a loaded machine; it is cancelled once they
    # are queued, so the queue's order is all that decides what runs next.
    blocker = client.submit(loop_settings("blocker", steps=200), fp32_bundle, priority="batch")
    wait_for(lambda: client.status().running, 30, "the blocker to start")
    batch = [client.submit(loop_settings(f"batch {i}", seed=i), fp32_bundle, priority="batch") for i in range(2)]
    live = client.submit(loop_settings("interactive"), fp32_bundle, priority="interactive")
    assert client.status().queue == [live.id, batch[0].id, batch[1].id]
    assert client.cancel(blocker.id) == "running"
    assert isinstance(blocker.wait(timeout=30), p.Cancelled)
    for job in (*batch, live):
        assert isinstance(job.wait(timeout=60), p.Done)
    finished = {job.job: job.updated for job in client.jobs()}
    assert finished[blocker.id] < finished[live.id] < finished[batch[0].id] < finished[batch[1].id]


def test_two_clients_jobs_never_mix(client, fp32_bundle):
    with EngineClient(name="other") as other:
        assert other.pid == client.pid
        mine = client.submit(loop_settings("mine", seed=1), fp32_bundle)
        theirs = other.submit(loop_settings("theirs", seed=2), fp32_bundle)
        my_events = list(mine.events(timeout=60))
        their_events = list(theirs.events(timeout=60))
    assert {e.job for e in my_events} == {mine.id} and {e.job for e in their_events} == {theirs.id}
    assert progress_steps(my_events) == progress_steps(their_events) == [1, 2, 3, 4]
    assert mine.result.folder != theirs.result.folder
    assert result_files(mine.result) != result_files(theirs.result)


def test_a_killed_client_s_job_completes_and_a_new_client_finds_it(client, fp32_bundle):
    script = f"""
from engine.client import EngineClient
from engine_fixtures import loop_settings
client = EngineClient(name="doomed")
job = client.submit(loop_settings("orphan", steps=30), {str(fp32_bundle)!r}, key="orphan-key")
for event in job.events(timeout=60):
    if getattr(event, "stage", "") == "denoise":
        print("job", job.id, flush=True)
        break
import time; time.sleep(60)
"""
    process = start_client_process(f"import sys; sys.path.insert(0, 'tests')\n{script}")
    line = process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    words = line.split()
    assert len(words) == 2 and words[0] == "job", f"{line!r}: {process.stderr.read()}"
    job_id = words[1]
    with EngineClient(name="finder") as finder:
        again = finder.submit(loop_settings("orphan", steps=30), fp32_bundle, key="orphan-key")
        assert again.id == job_id and again.queued.duplicate
        done = again.wait(timeout=60)
    assert isinstance(done, p.Done) and done.job == job_id
    assert [job.key for job in client.jobs(100)].count("orphan-key") == 1


def test_load_model_reports_progress_and_status_shows_the_warm_bundle(client, fp32_bundle, tmp_path):
    import shutil

    bundle = shutil.copytree(fp32_bundle, tmp_path / "bundle")  # one this engine has not opened: a cold load
    stages = []
    loaded = client.load_model(bundle, provider="cpu", progress=lambda stage, f: stages.append((stage, f)))
    assert isinstance(loaded, p.ModelLoaded) and loaded.provider == "cpu"
    fractions = [fraction for _, fraction in stages]
    assert stages and all(stage for stage, _ in stages), stages  # each report says what is loading
    assert fractions == sorted(fractions) and fractions[0] >= 0.0 and fractions[-1] == 1.0, stages
    status = client.status()
    assert status.bundle == str(bundle.resolve()) and status.provider == "cpu"
    assert status.protocol == p.PROTOCOL_VERSION and status.running is None and status.queue == []


def test_the_warm_model_serves_auto_and_cpu_asks_alike_where_both_run_on_the_cpu(client, fp32_bundle):
    """The app asks `auto` with the NPU's performance mode, the CLI `cpu` with none: on a machine whose sessions
    run on the CPU either way, the second ask finds the model warm (it was opened again for each)."""
    client.load_model(fp32_bundle, provider="auto", session_options={"htp_performance_mode": "burst"})
    stages: list[str] = []
    client.load_model(fp32_bundle, provider="cpu", progress=lambda stage, fraction: stages.append(stage))
    assert "loading the model" not in stages, stages


def test_bad_settings_and_a_missing_bundle_are_refused_at_submit(client, fp32_bundle, tmp_path):
    from engine.errors import InvalidInputError, ModelBundleError

    with pytest.raises(InvalidInputError, match="steps must be"):
        client.submit({"prompt": "bass", "steps": 0}, fp32_bundle)
    with pytest.raises(ModelBundleError, match="no model bundle"):
        client.submit(loop_settings(), tmp_path / "nowhere")


@pytest.mark.parametrize("grid", [[], ["--bpm", "150", "--bars", "1"]], ids=["as painted", "on the grid"])
def test_generate_with_engine_writes_the_same_files_as_in_process(run_cli, fp32_bundle, tmp_path, grid):
    common = ["bass", "--model", fp32_bundle, "--steps", "2", "--width", str(WIDTH), "--seed", "5",
              "--quality", "draft", "--provider", "cpu", *grid]
    local = run_cli("generate", *common, "--out", tmp_path / "a" / "loop.wav", "--image", tmp_path / "a" / "loop.png")
    assert local.returncode == 0, local.stderr
    remote = run_cli("generate", *common, "--engine", "--out", tmp_path / "b" / "loop.wav",
                     "--image", tmp_path / "b" / "loop.png")
    assert remote.returncode == 0, remote.stderr
    assert sorted(q.name for q in (tmp_path / "b").iterdir()) == ["loop.json", "loop.png", "loop.wav"]
    for name in ("loop.wav", "loop.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    a, b = (json.loads((tmp_path / d / "loop.json").read_text()) for d in "ab")
    assert ("engine_job" in b) == bool(grid)  # a loop fitted from the engine's result names the job it came from
    b.pop("engine_job", None)
    assert {**a, "timings": None} == {**b, "timings": None}


def test_engine_status_json_and_jobs_on_the_command_line(run_cli, client, fp32_bundle):
    result = run_cli("engine", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["pid"] == client.pid and status["protocol"] == p.PROTOCOL_VERSION
    assert status["running"] is None and status["queue"] == []
    busy = client.submit(loop_settings("status check", steps=200), fp32_bundle)
    wait_for(lambda: (s := client.status().running) and s.step >= 1, 30, "the job to be denoising")
    running = json.loads(run_cli("engine", "status", "--json").stdout)["running"]
    assert running["job"] == busy.id and running["total"] == 200 and 1 <= running["step"] <= 200
    assert busy.id in run_cli("engine", "status").stdout
    client.cancel(busy.id)
    assert isinstance(busy.wait(timeout=10), p.Cancelled)
    jobs = run_cli("engine", "jobs")
    assert jobs.returncode == 0 and "done" in jobs.stdout


def test_a_second_engine_serve_finds_the_first(client):
    result = subprocess.run([sys.executable, "-m", "ui.cli.main", "engine", "serve"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"an engine is already running (pid {client.pid})" in result.stdout
    assert live_engine().pid == client.pid


def test_a_job_over_the_memory_ceiling_is_refused_and_the_engine_stops_when_idle(client, fp32_bundle, run_cli):
    stop = run_cli("engine", "stop")
    assert stop.returncode == 0 and f"engine (pid {client.pid}) stopped" in stop.stdout, stop.stderr
    result = run_cli("engine", "status")
    assert result.returncode == 0 and "no engine is running" in result.stdout
    with pytest.raises(EngineNotRunning):
        EngineClient(start=False)
    assert live_engine() is None  # status started nothing
    with EngineClient(settings=EngineSettings(memory_limit_mb=1, idle_timeout_s=1.0)) as small:
        failed = small.submit(loop_settings(), fp32_bundle).wait(timeout=60)
        assert isinstance(failed, p.Failed) and failed.code == "memory"
        assert "memory ceiling is 1 MB" in failed.message and len(failed.message.splitlines()) == 1
        assert small.status().memory_limit_mb == 1
    wait_for(lambda: live_engine() is None, 10, "the idle engine to exit")

