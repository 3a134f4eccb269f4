"""Shared pieces of the engine tests: a private home for each engine (every platformdirs folder moved to a
temporary one, for this process and the engines it starts), short jobs on the tiny bundle, the files an
in-process run writes, and a way to run a client in a process of its own (to kill it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

WIDTH = 64  # the narrowest loop: a 4-step job takes well under a second on the tiny model
XDG = ("XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_MUSIC_DIR")
# platformdirs' Windows folders we use (data, config, cache and runtime live under Local AppData; the export
# folder under Music), each in the private home.
WINDOWS_FOLDERS = {"LOCAL_APPDATA": "localappdata", "APPDATA": "appdata", "MYMUSIC": "music", "PERSONAL": "documents",
                   "DOWNLOADS": "downloads"}


def make_private_home(prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh temporary home with a 0700 folder per XDG variable, and those variables' values (short
    paths: Unix socket paths are limited to ~100 bytes). The caller sets them and removes the home."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.name == "posix" else None))
    folders = {}
    for name in XDG:
        folder = home / name.split("_")[1].lower()
        folder.mkdir(mode=0o700)
        folders[name] = str(folder)
    # Windows ignores XDG_*: platformdirs there takes its Known Folders, unless WIN_PD_OVERRIDE_<CSIDL> names one.
    for csidl, folder in WINDOWS_FOLDERS.items():
        (home / folder).mkdir(mode=0o700, exist_ok=True)
        folders[f"WIN_PD_OVERRIDE_{csidl}"] = str(home / folder)
    return home, folders


@contextlib.contextmanager
def engine_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every XDG folder in a fresh temporary home (short: Unix socket paths are limited to ~100 bytes);
    any engine still running there at the end is killed. The Hugging Face Hub is offline (a window with no
    model asks `model get --plan` in a child; a test that wants a Hub serves tests/fake_hub.py's and sets
    its `env()`, which turns this off)."""
    home, folders = make_private_home("rs-engine-")
    for name, folder in folders.items():
        monkeypatch.setenv(name, folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RIFFSTUDIO_ENGINE_TEST_CRASH", raising=False)
    monkeypatch.delenv("RIFFSTUDIO_ENGINE_TEST_HANG", raising=False)
    try:
        yield home
    finally:
        kill_engine()
        shutil.rmtree(home, ignore_errors=True)


def kill_engine() -> None:
    from engine.process.connection_file import live_engine

    info = live_engine()
    if info is not None:
        with contextlib.suppress(OSError):
            if hasattr(signal, "SIGCONT"):  # POSIX: a stopped engine cannot die until it runs again
                os.kill(info.pid, signal.SIGCONT)
            os.kill(info.pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # Windows: SIGTERM is TerminateProcess
        deadline = time.monotonic() + 5
        while live_engine() is not None and time.monotonic() < deadline:
            time.sleep(0.05)


def loop_settings(prompt: str = "funky slap bass", *, steps: int = 4, seed: int = 7, width: int = WIDTH):
    from engine.generation.settings import GenerationSettings

    return GenerationSettings(prompt=prompt, steps=steps, seed=seed, width=width, quality="draft",
                              scheduler="euler")


def reference_files(bundle: Path, settings, folder: Path) -> dict[str, bytes]:
    """What an uninterrupted in-process run writes for `settings`: {"audio", "image"} -> file bytes."""
    from engine.bundle import open_bundle
    from engine.generation.loop import render_loop
    from engine.generation.pipeline import LoopGenerator
    from engine.process.results import write_results

    generator = LoopGenerator(open_bundle(bundle))
    loop = render_loop(generator, settings)
    found = write_results(folder, loop, generator, "wav")
    return {"audio": found.audio.read_bytes(), "image": found.image.read_bytes()}


def result_files(done) -> dict[str, bytes]:
    return {name: Path(done.paths[name]).read_bytes() for name in ("audio", "image")}


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_client_process(script: str) -> subprocess.Popen:
    """Python code run as a separate client process (same environment, so the same engine home)."""
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def progress_steps(events) -> list[int]:
    from engine.process import protocol as p

    return [e.step for e in events if isinstance(e, p.Progress) and e.stage == "denoise"]
