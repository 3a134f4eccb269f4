"""The self-test's engine checks: the engine process starts (as the app starts it) and answers a ping,
and, given a model bundle, one short loop goes through it end to end (prompt -> engine -> WAV).

An engine that was already running is used and left running; one the self-test started is stopped
again, and the test loop's result folder is removed so it never lands in the producer's library.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from engine.errors import reason
from ui.selftest.checks import timed
from ui.selftest.report import CheckResult, Status

START_TIMEOUT_S = 60.0
LOOP_TIMEOUT_S = 600.0  # per event: a full-size bundle's first session on a slow laptop
LOOP_PROMPT = "funky slap bass, 100 bpm"


def engine_checks(bundle: Path | None) -> list[CheckResult]:
    from engine.client import EngineClient
    from engine.process.connection_file import live_engine
    from engine.process.settings import EngineSettings

    start = time.perf_counter()
    already = live_engine()
    try:
        client = EngineClient(settings=EngineSettings(idle_timeout_s=120.0), supervise=False,
                              start_timeout_s=START_TIMEOUT_S, name="riffstudio-self-test")
    except Exception as error:
        failed = CheckResult("engine", "fail", f"the engine process did not start: {reason(error, 300)}",
                             time.perf_counter() - start)
        return [failed, *([skipped_loop(bundle)] if bundle else [])]
    results = []
    try:
        with client:
            rtt = client.ping()
            status = client.status()
            how = "was running" if already is not None else "started"
            results.append(CheckResult(
                "engine", "ok", f"engine pid {status.pid} {how}, riffstudio {status.engine_version}, "
                f"protocol {status.protocol}; ping {rtt * 1000:.1f} ms", time.perf_counter() - start,
                {"pid": status.pid, "started": already is None, "ping_ms": rtt * 1000}))
            if bundle is not None:
                results.append(timed("loop", lambda: short_loop(client, bundle)))
            if already is None:
                client.shutdown()
    except Exception as error:
        results.append(CheckResult("engine", "fail", f"the engine does not answer: {reason(error, 300)}",
                                   time.perf_counter() - start))
    return results


def short_loop(client, bundle: Path) -> tuple[Status, str, dict]:
    """Two steps at the narrowest width the bundle allows: every model, the codec and the WAV writer run,
    in seconds even on a full-size CPU bundle."""
    import numpy as np
    import soundfile

    from engine.bundle import open_bundle
    from engine.client import error_for
    from engine.process import protocol as p

    manifest = open_bundle(bundle).manifest
    width = manifest.image_width if manifest.fixed_shapes else manifest.min_image_width
    settings = {"prompt": LOOP_PROMPT, "steps": 2, "seed": 1, "width": width, "quality": "draft",
                "scheduler": "euler"}
    result = client.submit(settings, bundle).wait(timeout=LOOP_TIMEOUT_S)
    if isinstance(result, p.Failed):
        raise error_for(result.code, result.message)
    if not isinstance(result, p.Done):
        return "fail", f"the engine did not finish the loop ({type(result).__name__})", {}
    try:
        audio, rate = soundfile.read(result.paths["audio"], dtype="float32")
    finally:
        shutil.rmtree(result.folder, ignore_errors=True)
    seconds = len(audio) / rate
    data = {"bundle": str(bundle), "width": width, "seconds": seconds, "timings": result.timings}
    if len(audio) == 0 or not np.all(np.isfinite(audio)):
        return "fail", "the loop's audio is empty or not finite", data
    return "ok", f"{manifest.precision} bundle, {width} px, 2 steps -> {seconds:.2f} s of audio at {rate} Hz", data


def skipped_loop(bundle: Path) -> CheckResult:
    return CheckResult("loop", "fail", f"not run: no engine for {bundle}")


def configured_bundle() -> Path | None:
    """The bundle the desktop app is set to use, if any (its settings file; no window is opened)."""
    try:
        from ui.app.settings import load_settings

        name = load_settings().bundle
    except Exception:
        return None
    return Path(name) if name else None
