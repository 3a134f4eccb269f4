"""Shared fixtures. Qt runs offscreen: CI and this machine have no screen."""

from __future__ import annotations

import os
import sys
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


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `riffstudio ARGS` in a fresh interpreter (as a user would), returning the CompletedProcess."""
    import subprocess

    def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
        return subprocess.run(
            [sys.executable, "-m", "ui.cli.main", *map(str, args)], cwd=tmp_path, capture_output=True,
            text=True, timeout=timeout, env={**os.environ, **(env or {})})

    return run


def cached_bundle(precision: str, **options) -> Path:
    """The tiny checkpoint converted to a `precision` bundle, cached until the export code changes."""
    import hashlib

    from engine.export.convert import ConvertSettings, convert

    source = cached_model_dir()
    digest = hashlib.sha256(f"{source.name}-{precision}".encode())
    for name, value in sorted(options.items()):
        digest.update(Path(value).read_bytes() if name == "calibration_prompts" else f"{name}={value}".encode())
    for path in sorted((REPO / "engine").rglob("*.py")):
        if path.parent.name in ("export", "bundle") or path.name in ("sessions.py", "tokenizer.py"):
            digest.update(path.read_bytes())
    root = REPO / ".cache" / "test-bundles"
    out = root / f"{precision}-{digest.hexdigest()[:12]}"
    if not (out / "manifest.json").exists():
        import shutil

        for stale in root.glob(f"{precision}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        convert(ConvertSettings(source=str(source), out=out, precision=precision, export_cache=EXPORT_CACHE,
                                **options))
    return out


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


@pytest.fixture(scope="session")
def qnn_bundle(tmp_path_factory) -> Path:
    """The tiny checkpoint as a qnn bundle (256 px, calibrated on four prompts to keep the suite short)."""
    prompts = tmp_path_factory.mktemp("calibration") / "prompts.txt"
    prompts.write_text("funky slap bass, 100 bpm\nlofi piano, rain\nchurch bells\ntechno kick, 130 bpm\n")
    return cached_bundle("qnn", calibration_prompts=prompts, qnn_width=QNN_TEST_WIDTH)
