"""`riffstudio batch --json`, what the app's batch window reads: one JSON line per event (planned, each item as it
starts, its progress with the time left, its end, done), nothing else on stdout; a `stop` line on stdin stops at
once keeping what is complete, and the same command carries on; a bad preset file writes no line at all and
starts no engine (it is checked first)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from plugin.batch import SUMMARY

pytestmark = pytest.mark.usefixtures("home")  # the user folders in a private home


def preset_file(folder: Path, bundle: Path, steps: int = 2) -> Path:
    path = folder / "pack.toml"
    path.write_text(f"""[defaults]
model = "{bundle}"
steps = {steps}
scheduler = "euler"
quality = "draft"
bpm = 200
beats = 2

[[preset]]
name = "funk bass"
prompt = "funky slap bass"
seeds = [1, 2]

[[preset]]
prompt = "lofi keys"
seeds = [3]
""", encoding="utf-8")
    return path


@pytest.fixture
def batch():
    """`riffstudio batch ARGS --json` as a child; any still running at the end is killed (no orphans)."""
    started: list[subprocess.Popen] = []

    def start(*args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "ui.cli.main", "batch", *args, "--json"], cwd=REPO,
                                   stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ))
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]  # every stdout line is JSON: a bad one fails here


def test_seconds_left_follow_this_runs_pace_once_a_tenth_of_a_loop_is_done():
    from ui.cli.batch_progress import seconds_left

    assert seconds_left(elapsed=1.0, worth_done=0.05, worth_left=5) == -1.0
    assert seconds_left(elapsed=10.0, worth_done=2.5, worth_left=3.5) == 14.0
    assert seconds_left(elapsed=10.0, worth_done=2.0, worth_left=0.0) == 0.0


def test_the_json_lines_count_the_loops_and_say_the_time_left(tmp_path, fp32_bundle, batch):
    out = tmp_path / "pack"
    process = batch(str(preset_file(tmp_path, fp32_bundle)), "--out", str(out))
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    lines = events(stdout)
    assert lines[0] == {"event": "planned", "total": 3, "complete": 0, "out": str(out)}
    items = [e for e in lines if e["event"] == "item"]
    assert [(e["number"], e["total"], e["label"], e["folder"]) for e in items] == [
        (1, 3, "funk bass (seed 1)", "funk-bass"), (2, 3, "funk bass (seed 2)", "funk-bass"),
        (3, 3, "lofi keys (seed 3)", "lofi-keys")]
    progress = [e for e in lines if e["event"] == "progress"]
    fractions = [e["fraction"] for e in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(e["eta"] >= 0 for e in progress if e["number"] > 1) and progress[-1]["eta"] == 0.0
    assert [e["state"] for e in lines if e["event"] == "ended"] == ["done"] * 3
    assert lines[-1] == {"event": "done", "done": 3, "skipped": 0, "failed": 0, "remaining": 0, "interrupted": False,
                         "out": str(out), "summary": str(out / SUMMARY)}


def test_a_stop_line_stops_at_once_and_the_same_command_carries_on(tmp_path, fp32_bundle, batch):
    presets, out = preset_file(tmp_path, fp32_bundle, steps=4), tmp_path / "pack"
    process = batch(str(presets), "--out", str(out), stdin=subprocess.PIPE)
    for line in process.stdout:  # the first loop finished, the second under way
        event = json.loads(line)
        if event["event"] == "progress" and event["number"] == 2:
            break
    process.stdin.write("stop\n")
    process.stdin.flush()
    _rest, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().startswith("riffstudio: ") and "\n" not in stderr.strip()  # "cancelled at step ..."
    summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    assert summary["counts"] == {"done": 1, "pending": 2}  # the second loop was stopped mid-way, not finished

    again = batch(str(presets), "--out", str(out))
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    lines = events(stdout)
    planned = next(e for e in lines if e["event"] == "planned")
    assert planned["complete"] == 1 and [e["number"] for e in lines if e["event"] == "item"] == [2, 3]
    assert lines[-1]["done"] == 2 and lines[-1]["skipped"] == 1


def test_a_bad_preset_file_writes_no_json_line_and_one_error_line_and_starts_no_engine(tmp_path, batch):
    from engine.process.connection_file import live_engine

    presets = tmp_path / "broken.toml"
    presets.write_text('[[preset]]\nprompt = "x"\nbars = -1\n', encoding="utf-8")
    process = batch(str(presets), "--out", str(tmp_path / "out"), "--engine")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and stdout == ""
    assert stderr.startswith("riffstudio: broken.toml:3: bars: ") and stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert live_engine() is None  # checked before the engine was asked for


def test_json_is_for_one_machine_not_a_cluster(tmp_path, batch):
    process = batch(str(tmp_path / "pack.toml"), "--cluster", "auto")
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert stderr == "riffstudio: --json is for one machine's batch (here or --engine): leave out --cluster\n"
