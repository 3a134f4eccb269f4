"""Shared fixtures. Qt runs offscreen: CI and this machine have no screen."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# ONNX exports of the tiny checkpoint, shared by every fixture that converts or quantises it.
EXPORT_CACHE = REPO / ".cache" / "test-exports"


@pytest.fixture(scope="session")
def tiny_sd_dir() -> Path:
    """A tiny random-weight checkpoint in riffusion-model-v1's diffusers layout (cached in .cache/)."""
    return cached_model_dir()


@pytest.fixture(scope="session", autouse=True)
def private_user_folders() -> Iterator[Path]:
    """Every test, and every process a test starts, sees user folders in a temporary home unless it asks for its
    own (`home`): nothing a test runs (a CLI run that records its loop for the app, a batch, an engine) can
    write into the real user's data, config or music folders."""
    import shutil

    from engine_fixtures import make_private_home

    folder, folders = make_private_home("rs-tests-")
    saved = {name: os.environ.get(name) for name in folders}
    os.environ.update(folders)
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def home(monkeypatch):
    """A private home for this test: the engine's and the app's folders (platformdirs) in a temporary place,
    and every engine started there stopped at the end (tests/engine_fixtures.py `engine_home`)."""
    from engine_fixtures import engine_home

    with engine_home(monkeypatch) as folder:
        yield folder


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
    """Where cached_bundle keeps this bundle: keyed by the checkpoint, the options and the export code."""
    import hashlib

    digest = hashlib.sha256(f"{cached_model_dir().name}-{precision}".encode())
    for name, value in sorted(options.items()):
        digest.update(Path(value).read_bytes() if name == "calibration_prompts" else f"{name}={value}".encode())
    for path in sorted((REPO / "engine").rglob("*.py")):
        if path.parent.name in ("export", "bundle") or path.name in ("sessions.py", "tokenizer.py"):
            digest.update(path.read_bytes())
    return REPO / ".cache" / "test-bundles" / f"{precision}-{digest.hexdigest()[:12]}"


def cached_bundle(precision: str, **options) -> Path:
    """The tiny checkpoint converted to a `precision` bundle, cached until the export code changes.
    A lock per precision: the prebuild's processes and this one never build the same bundle twice."""
    import shutil

    from filelock import FileLock

    from engine.export.convert import ConvertSettings, convert

    out = bundle_path(precision, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.parent / f"{precision}.lock"):
        if not (out / "manifest.json").exists():
            for stale in out.parent.glob(f"{precision}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            convert(ConvertSettings(source=str(cached_model_dir()), out=out, precision=precision,
                                    export_cache=EXPORT_CACHE, **options))
    return out


def artifacts_path(name: str) -> Path:
    """Where cached_artifacts keeps `name`: keyed by what exporting, calibrating and quantizing read (not
    convert.py: bundles are cached_bundle's), the builder and onnxruntime's version."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256(f"{cached_model_dir().name}-{name}-{version('onnxruntime')}".encode())
    sources = ["export/onnx_export.py", "export/source.py", "export/calibration.py", "bundle/ranges.py",
               "bundle/quantize.py", "export/qnn_export_fixes.py", "sessions.py"]
    builders = ["random_sd_model.py", f"{ARTIFACTS[name]}.py"]
    for path in [*(REPO / "engine" / name for name in sources), *(REPO / "tests" / f for f in builders)]:
        digest.update(path.read_bytes())
    return REPO / ".cache" / "test-artifacts" / f"{name}-{digest.hexdigest()[:12]}"


# Test artifacts by name: the tests/ module whose `build_artifacts(folder)` makes each (part of its key).
ARTIFACTS = {"quantize-qnn": "qnn_artifacts"}


def cached_artifacts(name: str) -> Path:
    """The folder ARTIFACTS[name]'s builder fills once, cached under .cache/test-artifacts/ until its inputs
    change; built under a temporary name, then renamed."""
    import importlib
    import shutil
    import tempfile

    from filelock import FileLock

    out = artifacts_path(name)
    root = out.parent
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / f"{name}.lock"):
        if out.is_dir():
            return out
        for stale in root.glob(f"{name}-{'?' * 12}"):
            shutil.rmtree(stale, ignore_errors=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            importlib.import_module(ARTIFACTS[name]).build_artifacts(temp)
            temp.rename(out)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return out


TEMPLATE_CACHE = REPO / ".cache" / "test-templates"
# Template variants of the tiny model's architecture (engine/model_get/template_store.py) by prebuild name.
TEMPLATES = {"templates-dynamic": "dynamic", "templates-fixed256": "fixed256"}


def templates_path(variant: str) -> Path:
    from engine.model_get.architecture import read_architecture

    return TEMPLATE_CACHE / f"{read_architecture(cached_model_dir()).signature}-{variant}"


def cached_templates(variant: str) -> Path:
    """The tiny architecture's templates as `model get` builds them with the export extra, kept where
    RIFFSTUDIO_TEMPLATE_CACHE points in tests; rebuilt when the export code or torch changes
    (engine/export/templates.py's export_key)."""
    from filelock import FileLock

    from engine.export.source import load_checkpoint
    from engine.export.templates import build_templates, export_key, read_configs
    from engine.model_get.template import TemplateSet

    out = templates_path(variant)
    TEMPLATE_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(TEMPLATE_CACHE / f"{variant}.lock"):
        if not _templates_current(out, export_key()):
            # Made from the tiny checkpoint itself, whose exports the fp32 and qnn bundles' prebuild has cached
            # already (random weights of its own would cost two more minutes of exports); the map is proved by
            # pouring another checkpoint's weights (tests/test_model_get.py).
            build_templates(read_configs(cached_model_dir()), variant, out, export_cache=EXPORT_CACHE,
                            modules=load_checkpoint(str(cached_model_dir())))
        TemplateSet.read(out)
    return TEMPLATE_CACHE


def _templates_current(folder: Path, key: str) -> bool:
    import json

    try:
        return json.loads((folder / "templates.json").read_text(encoding="utf-8"))["export_key"] == key
    except (OSError, ValueError, KeyError):
        return False


def cached_model_dir() -> Path:
    from random_sd_model import cached_model

    return cached_model("tiny")


@pytest.fixture(scope="session")
def fp32_bundle() -> Path:
    return build_named("fp32")


@pytest.fixture(scope="session")
def int8_bundle() -> Path:
    return build_named("int8")


@pytest.fixture(scope="session")
def tiny_templates() -> Path:
    """A template cache folder holding the tiny architecture's dynamic templates (RIFFSTUDIO_TEMPLATE_CACHE)."""
    return build_named("templates-dynamic")


@pytest.fixture(scope="session")
def tiny_qnn_templates() -> Path:
    """The same folder, also holding the tiny architecture's fixed 256 px templates (qnn bundles)."""
    build_named("templates-dynamic")
    return build_named("templates-fixed256")


QNN_TEST_WIDTH = 256  # the narrowest width the w8a16 UNet stays accurate at on HTP
# Four prompts keep the qnn bundle's calibration short.
QNN_CALIBRATION_PROMPTS = DATA / "qnn_calibration_prompts.txt"
QNN_OPTIONS = {"calibration_prompts": QNN_CALIBRATION_PROMPTS, "qnn_width": QNN_TEST_WIDTH}


@pytest.fixture(scope="session")
def qnn_bundle() -> Path:
    """The tiny checkpoint as a qnn bundle (256 px, calibrated on four prompts)."""
    return build_named("qnn")


# --- prebuild: the cached bundles and artifacts a run needs, built side by side before its tests -------------

# The session fixtures whose bundle or artifacts the prebuild can make, and the name of what each needs.
PREBUILT = {"fp32_bundle": "fp32", "int8_bundle": "int8", "qnn_bundle": "qnn", "artifacts": "quantize-qnn",
            "tiny_templates": "templates-dynamic", "tiny_qnn_templates": "templates-fixed256"}
BUNDLE_OPTIONS = {"fp32": {}, "int8": {}, "qnn": QNN_OPTIONS}
# Each chain is one process with its own share of the cores; a chain's later builds reuse its earlier ones'
# exports (the export cache). Independent chains: the dynamic exports (CPU bundles) and the fixed-shape ones.
PREBUILD_CHAINS = (("fp32", "templates-dynamic", "int8"), ("qnn", "templates-fixed256", "quantize-qnn"))
PREBUILD_LOG = REPO / ".cache" / "test-logs"
PREBUILD_REPORT = PREBUILD_LOG / "prebuild-report.txt"
PREBUILD_TIMEOUT_S = 1200  # 4-5.5 min cold here; twice pytest-timeout's 600 s per test


def build_named(name: str) -> Path:
    """Build (or find) the cached bundle (a precision) or artifacts called `name` (the fixtures' and
    tests/prebuild.py's entry point)."""
    if name in TEMPLATES:
        return cached_templates(TEMPLATES[name])
    return cached_artifacts(name) if name in ARTIFACTS else cached_bundle(name, **BUNDLE_OPTIONS[name])


def _is_built(name: str) -> bool:
    if name in TEMPLATES:
        from engine.export.templates import export_key

        return _templates_current(templates_path(TEMPLATES[name]), export_key())
    if name in ARTIFACTS:
        return artifacts_path(name).is_dir()
    return (bundle_path(name, **BUNDLE_OPTIONS[name]) / "manifest.json").is_file()


def pytest_collection_finish(session) -> None:
    """The bundles the selected tests use are built before the first test, the independent ones in parallel
    processes (exports run on one core each; this machine kind has two). The fixtures then find them cached.
    Under pytest-xdist every worker comes here: the first builds, the others wait for it and find everything
    built. Then each worker takes a core of its own (see _pin_worker). RIFFSTUDIO_TEST_PREBUILD=0 leaves each
    build to its fixture. A failed prebuild is reported and left to the fixture, which fails its tests with
    the real error."""
    from filelock import FileLock

    if session.config.option.collectonly:
        return
    if os.environ.get("RIFFSTUDIO_TEST_PREBUILD", "1") != "0":
        PREBUILD_LOG.mkdir(parents=True, exist_ok=True)
        with FileLock(PREBUILD_LOG / "prebuild.lock"):
            _prebuild(session.items)
    _pin_worker()


def _prebuild(items) -> None:
    import subprocess
    import time

    used = {PREBUILT[f] for item in items for f in getattr(item, "fixturenames", ()) if f in PREBUILT}
    missing = {name for name in used if not _is_built(name)}
    chains = [[name for name in chain if name in missing] for chain in PREBUILD_CHAINS]
    chains = [chain for chain in chains if chain]
    if len(chains) < 2:  # one build gains nothing from a process of its own
        return
    cached_model_dir()  # the checkpoint every build reads, made once before they start
    started = time.perf_counter()
    runs, report = [], []
    for chain, cores in zip(chains, _core_shares(len(chains)), strict=True):
        log = PREBUILD_LOG / f"prebuild-{'-'.join(chain)}.log"
        # Pinned to its cores with thread pools to match: two chains each running 2-thread torch and ONNX
        # Runtime pools on 2 cores spin against each other and took longer than building one after another.
        env = {**os.environ, "OMP_NUM_THREADS": str(len(cores) or os.cpu_count() or 1)}
        with log.open("w") as out:
            runs.append((chain, log, time.perf_counter(), subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "prebuild.py"), *chain], cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT, env=env,
                preexec_fn=(lambda cores=cores: os.sched_setaffinity(0, cores)) if cores else None)))
    for chain, log, began, process in runs:
        # pytest-timeout does not reach this hook: a hung build is stopped here and left to its fixture.
        try:
            code = process.wait(timeout=max(1.0, PREBUILD_TIMEOUT_S - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            process.kill()
            code = f"none, killed after {PREBUILD_TIMEOUT_S} s"
        line = f"{' + '.join(chain)}: {time.perf_counter() - began:.0f} s"
        report.append(line if code == 0 else f"{line}, FAILED (exit {code}; see {log})")
    report.append(f"all, side by side: {time.perf_counter() - started:.0f} s")
    # The summary is printed by the process that writes the terminal: an xdist worker's output is not shown.
    PREBUILD_REPORT.write_text("\n".join(report) + "\n")


def _pin_worker() -> None:
    """An xdist worker runs on one core of its own, as do the engines and CLIs its tests start (affinity is
    inherited), so a test's timings and thread pools are not squeezed by the other worker's (the same
    reason the prebuild's chains are pinned); ONNX Runtime sessions size their pools to it
    (engine.sessions.default_intra_op_threads). Without xdist, or with more workers than cores, nothing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    if count < 2 or count > len(cores):
        return
    core = {cores[int(worker[2:]) % len(cores)]}
    # Every thread: the call sets one thread's affinity, and pools started at import (torch's) are running.
    for thread in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(thread), core)
    os.environ["OMP_NUM_THREADS"] = "1"  # for the processes the tests start
    if "torch" in sys.modules:  # already imported by a test module: its pool was sized for every core
        sys.modules["torch"].set_num_threads(1)


# The test files that take longest cold (here: 50-110 s each), handed out first: xdist gives out whole files
# (--dist loadfile) in this order, so the long ones start at once on both workers instead of one of them
# being left alone with one at the end. Only the order changes, never what runs.
LONGEST_FIRST = ("test_qnn_bundle.py", "test_quantize_qnn.py", "test_packaging_build.py", "test_app.py",
                 "test_int8_every_cpu.py", "test_isolated_export.py", "test_generation.py", "test_batch.py",
                 "test_engine_faults.py", "test_wheels.py")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's order is kept


def _core_shares(parts: int) -> list[set[int]]:
    """This process's cores split into `parts` disjoint sets (empty sets where affinity cannot be set)."""
    if not hasattr(os, "sched_setaffinity"):
        return [set() for _ in range(parts)]
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < parts:
        return [set() for _ in range(parts)]
    return [set(cores[i::parts]) for i in range(parts)]


def pytest_sessionstart(session) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the process that prints the summary
        PREBUILD_REPORT.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter) -> None:
    if PREBUILD_REPORT.is_file():
        terminalreporter.section("prebuilt test bundles (before the first test)")
        for line in PREBUILD_REPORT.read_text().splitlines():
            terminalreporter.write_line(line)


# On CI (.ci/run sets RIFFSTUDIO_CI=1) a test skipped for want of a tool or back end fails instead: a missing
# qemu-user, Xvfb or HTP simulator must not turn the AVX2-only int8 cases or the real drag into silent skips.
CI_TOOL_SKIPS = ("needs ", "HTP back end")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("RIFFSTUDIO_CI") == "1" and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if any(words in reason for words in CI_TOOL_SKIPS):
            report.outcome = "failed"
            report.longrepr = f"on CI this test must run, not skip: {reason}"
