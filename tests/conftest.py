"""Shared fixtures. Qt runs offscreen: CI and this machine have no screen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


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


def cached_bundle(precision: str) -> Path:
    """The tiny checkpoint converted to a `precision` bundle, cached until the export code changes."""
    import hashlib

    from engine.export.convert import ConvertSettings, convert

    source = cached_model_dir()
    digest = hashlib.sha256(f"{source.name}-{precision}".encode())
    for path in sorted((REPO / "engine").rglob("*.py")):
        if path.parent.name in ("export", "bundle") or path.name in ("sessions.py", "tokenizer.py"):
            digest.update(path.read_bytes())
    root = REPO / ".cache" / "test-bundles"
    out = root / f"{precision}-{digest.hexdigest()[:12]}"
    if not (out / "manifest.json").exists():
        import shutil

        for stale in root.glob(f"{precision}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        convert(ConvertSettings(source=str(source), out=out, precision=precision))
    return out


def cached_model_dir() -> Path:
    from random_sd_model import cached_model

    return cached_model("tiny")


@pytest.fixture(scope="session")
def fp32_bundle() -> Path:
    return cached_bundle("fp32")
