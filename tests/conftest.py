"""Shared fixtures. Qt runs offscreen: CI and this machine have no screen."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # Windows: no prebuild, no lock (one process builds)
    fcntl = None

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# ONNX exports of the tiny checkpoint, shared by every fixture that converts or quantises it.
EXPORT_CACHE = REPO / ".cache" / "test-exports"
BUNDLE_CACHE = REPO / ".cache" / "test-bundles"


@pytest.fixture(scope="session")
def tiny_sd_dir() -> Path:
    """A tiny random-weight checkpoint in riffusion-model-v1's diffusers layout (cached in .cache/)."""
    return cached_model_dir()


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `riffstudio ARGS` in a fresh interpreter (as a user would), returning the CompletedProcess."""
    import subprocess

    def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
        return subprocess.run(
            [sys.executable, "-m", "ui.cli.main", *map(str, args)], cwd=tmp_path, capture_output=True,
            text=True, timeout=timeout, env={**os.environ, **(env or {})})

    return run


def bundle_path(precision: str, **options) -> Path:
    """Where the tiny checkpoint's `precision` bundle with `options` is cached (keyed by the export code)."""
    import hashlib

    digest = hashlib.sha256(f"{cached_model_dir().name}-{precision}".encode())
    for name, value in sorted(options.items()):
        digest.update(Path(value).read_bytes() if name == "calibration_prompts" else f"{name}={value}".encode())
    for path in sorted((REPO / "engine").rglob("*.py")):
        if path.parent.name in ("export", "bundle") or path.name in ("sessions.py", "tokenizer.py"):
            digest.update(path.read_bytes())
    return BUNDLE_CACHE / f"{precision}-{digest.hexdigest()[:12]}"


def cached_bundle(precision: str, **options) -> Path:
    """The tiny checkpoint converted to a `precision` bundle, cached until the export code changes.

    Waits for a background prebuild first (see pytest_collection_modifyitems), then builds what is still
    missing itself; a lock file keeps two processes from building the same bundle at once."""
    from engine.export.convert import ConvertSettings, convert

    _wait_for_prebuild()
    out = bundle_path(precision, **options)
    with _build_lock(precision):
        if not (out / "manifest.json").exists():
            import shutil

            for stale in BUNDLE_CACHE.glob(f"{precision}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            convert(ConvertSettings(source=str(cached_model_dir()), out=out, precision=precision,
                                    export_cache=EXPORT_CACHE, **options))
    return out


@contextlib.contextmanager
def _build_lock(name: str):
    BUNDLE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(BUNDLE_CACHE / f".{name}.lock", "w") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def cached_artifacts(name: str, build) -> Path:
    """A folder that `build(folder)` fills once, cached under .cache/test-artifacts/ until the export,
    quantization or session code (or onnxruntime) changes; built under a temporary name, then renamed."""
    import hashlib
    import shutil
    import tempfile
    from importlib.metadata import version

    digest = hashlib.sha256(f"{cached_model_dir().name}-{name}-{version('onnxruntime')}".encode())
    # What exporting, calibrating and quantizing read (not convert.py: bundles are cached_bundle's).
    sources = ["export/onnx_export.py", "export/source.py", "export/calibration.py", "export/ranges.py",
               "export/quantize.py", "export/qnn_export_fixes.py", "sessions.py"]
    for path in [*(REPO / "engine" / name for name in sources), REPO / "tests" / "random_sd_model.py"]:
        digest.update(path.read_bytes())
    root = REPO / ".cache" / "test-artifacts"
    out = root / f"{name}-{digest.hexdigest()[:12]}"
    if out.is_dir():
        return out
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{name}-{'?' * 12}"):
        shutil.rmtree(stale, ignore_errors=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build(temp)
        temp.rename(out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return out


def cached_model_dir() -> Path:
    from random_sd_model import cached_model

    return cached_model("tiny")


@pytest.fixture(scope="session")
def fp32_bundle() -> Path:
    return cached_bundle("fp32")


@pytest.fixture(scope="session")
def int8_bundle() -> Path:
    return cached_bundle("int8")


QNN_TEST_WIDTH = 256  # the narrowest width the w8a16 UNet stays accurate at on HTP
QNN_CALIBRATION_PROMPTS = "funky slap bass, 100 bpm\nlofi piano, rain\nchurch bells\ntechno kick, 130 bpm\n"


def qnn_bundle_options() -> dict[str, object]:
    """The tiny qnn bundle's options: 256 px, calibrated on four prompts to keep the suite short."""
    prompts = BUNDLE_CACHE / "qnn-calibration-prompts.txt"
    if not prompts.is_file() or prompts.read_text() != QNN_CALIBRATION_PROMPTS:
        BUNDLE_CACHE.mkdir(parents=True, exist_ok=True)
        temp = prompts.with_name(f".{prompts.name}.{os.getpid()}")
        temp.write_text(QNN_CALIBRATION_PROMPTS)
        temp.replace(prompts)
    return {"calibration_prompts": prompts, "qnn_width": QNN_TEST_WIDTH}


def bundle_options(precision: str) -> dict[str, object]:
    return qnn_bundle_options() if precision == "qnn" else {}


@pytest.fixture(scope="session")
def qnn_bundle() -> Path:
    return cached_bundle("qnn", **bundle_options("qnn"))


# -- a cold cache: build the bundles in the background while tests that need none run ------------------

BUNDLE_FIXTURES = {"fp32_bundle": "fp32", "int8_bundle": "int8", "qnn_bundle": "qnn"}
_PREBUILD: list[subprocess.Popen] = []


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules that need no bundle run first; on a cold cache the bundles the others need are built
    meanwhile by a background process (tests/prebuild_bundles.py) on the second core.

    Converting the tiny checkpoint three ways takes about six minutes, mostly single-threaded Python
    (torch.export tracing); the bundle-free modules (codec, schedulers, protocol, quantisation, ...)
    take about as long. The first test that needs a bundle waits for the whole prebuild, so the tests
    that time things (engine heartbeats, context caches) never share the machine with it."""
    needs: dict[str, set[str]] = {}
    for item in items:
        wanted = {BUNDLE_FIXTURES[name] for name in item.fixturenames if name in BUNDLE_FIXTURES}
        needs.setdefault(item.nodeid.split("::")[0], set()).update(wanted)
    items.sort(key=lambda item: bool(needs[item.nodeid.split("::")[0]]))  # stable: file order otherwise
    wanted = set().union(*needs.values()) if needs else set()
    if config.option.collectonly or fcntl is None or os.environ.get("RIFFSTUDIO_TEST_PREBUILD") == "0":
        return
    missing = [name for name in ("fp32", "int8", "qnn")
               if name in wanted and not (bundle_path(name, **bundle_options(name)) / "manifest.json").exists()]
    if missing:
        cached_model_dir()  # the checkpoint first, here: both processes read it
        BUNDLE_CACHE.mkdir(parents=True, exist_ok=True)
        with open(BUNDLE_CACHE / "prebuild.log", "wb") as log:
            _PREBUILD.append(subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "prebuild_bundles.py"), *missing], cwd=REPO,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))


def _wait_for_prebuild() -> None:
    if _PREBUILD:  # only the pytest process has one; the prebuild itself builds straight away
        _PREBUILD[0].wait()


def pytest_unconfigure(config: pytest.Config) -> None:
    """A run stopped early (-x, Ctrl+C) stops the prebuild and its export children with it."""
    for process in _PREBUILD:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait()
