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
    from random_sd_model import cached_model

    return cached_model("tiny")


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `riffstudio ARGS` in a fresh interpreter (as a user would), returning the CompletedProcess."""
    import subprocess

    def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
        return subprocess.run(
            [sys.executable, "-m", "ui.cli.main", *map(str, args)], cwd=tmp_path, capture_output=True,
            text=True, timeout=timeout, env={**os.environ, **(env or {})})

    return run
