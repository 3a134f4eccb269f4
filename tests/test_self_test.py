"""`riffstudio --self-test`: the report support asks for, from source (the built app folder's own run is
in tests/test_packaging_build.py)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(autouse=True)
def offscreen(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")


def checks_by_name(stdout: str) -> dict[str, dict]:
    return {check["name"]: check for check in json.loads(stdout)["checks"]}


def test_self_test_passes_from_source_with_a_short_loop(home, run_cli, fp32_bundle):
    done = run_cli("--self-test", "--json", "--model", fp32_bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    checks = checks_by_name(done.stdout)
    assert report["ok"] is True
    assert list(checks) == ["python", "onnxruntime", "qnn", "qt", "audio", "wav", "codec", "engine", "loop"]
    assert "CPUExecutionProvider" in checks["onnxruntime"]["data"]["providers"]
    assert checks["qt"]["status"] == "ok" and checks["qt"]["data"]["platform"] == "offscreen"
    assert checks["wav"]["data"]["chunks"][-1] == "data"
    assert {"acid", "smpl", "cue ", "LIST"} <= set(checks["wav"]["data"]["chunks"])
    assert checks["codec"]["status"] == "ok" and checks["codec"]["data"]["fft"] == "pocketfft"
    assert checks["engine"]["data"]["started"] is True
    assert checks["loop"]["status"] == "ok" and checks["loop"]["data"]["seconds"] > 0
    # No NPU here is a note, no audio device a warning: never failures.
    assert checks["qnn"]["status"] in ("ok", "note")
    assert checks["audio"]["status"] in ("ok", "warning")


def test_self_test_stops_the_engine_it_started_and_keeps_no_loop(home, run_cli, fp32_bundle):
    from engine.process.connection_file import live_engine
    from engine.process.paths import results_dir

    assert run_cli("--self-test", "--model", fp32_bundle).returncode == 0
    assert live_engine() is None
    assert list(results_dir().iterdir()) == []


def test_self_test_report_reads_as_one_line_per_check(home, run_cli):
    done = run_cli("--self-test")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("riffstudio ") and lines[0].endswith("self-test")
    assert [line.split()[1] for line in lines[1:-1]] == ["python", "onnxruntime", "qnn", "qt", "audio", "wav",
                                                        "codec", "engine"]
    assert lines[-1] == "PASSED: riffstudio works on this machine"


def test_self_test_fails_with_one_line_when_qt_cannot_open_a_window(home, run_cli):
    done = run_cli("--self-test", env={"QT_QPA_PLATFORM": "no-such-platform"})
    assert done.returncode == 1
    qt_line = next(line for line in done.stdout.splitlines() if line.split()[1:2] == ["qt"])
    assert qt_line.split()[0] == "FAIL" and "no-such-platform" in qt_line
    assert done.stdout.strip().splitlines()[-1] == "FAILED: qt"


def test_self_test_fails_when_the_bundle_is_missing(home, run_cli, tmp_path):
    done = run_cli("--self-test", "--json", "--model", tmp_path / "no-bundle")
    assert done.returncode == 1
    loop = checks_by_name(done.stdout)["loop"]
    assert loop["status"] == "fail" and "no model bundle" in loop["detail"]


def test_self_test_runs_a_loop_with_the_bundle_the_app_is_set_to(home, run_cli, fp32_bundle):
    from ui.app.settings import AppSettings, save_settings

    save_settings(AppSettings(bundle=str(fp32_bundle)))
    done = run_cli("--self-test", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    loop = checks_by_name(done.stdout)["loop"]
    assert loop["status"] == "ok" and loop["data"]["bundle"] == str(fp32_bundle)
    skipped = run_cli("--self-test", "--json", "--no-loop")
    assert "loop" not in checks_by_name(skipped.stdout)
