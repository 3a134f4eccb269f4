"""In the app folder (PyInstaller sets sys.frozen) child processes run the console `riffstudio-cli` beside
the program: a frozen program cannot run `python -m` (the built folder's own run is
tests/test_packaging_build.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.process.launch import riffstudio_command, serve_command
from engine.process.settings import EngineSettings


def test_from_source_the_engine_runs_as_a_module():
    assert serve_command(EngineSettings())[:4] == [sys.executable, "-m", "engine.process", "serve"]
    assert riffstudio_command() == [sys.executable, "-m", "ui.cli.main"]


def test_in_the_app_folder_the_engine_runs_through_riffstudio_cli(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "riffstudio"))
    cli = str(tmp_path / ("riffstudio-cli.exe" if sys.platform == "win32" else "riffstudio-cli"))
    command = serve_command(EngineSettings(idle_timeout_s=5, model="/bundles/int8"))
    assert command[:3] == [cli, "engine", "serve"]
    assert command[3:] == EngineSettings(idle_timeout_s=5, model="/bundles/int8").serve_args()
    assert riffstudio_command() == [cli]


def test_engine_serve_takes_every_argument_a_client_passes():
    from ui.cli.main import build_parser

    settings = EngineSettings(idle_timeout_s=5, intra_op_threads=2, memory_limit_mb=900, model="/b", provider="cpu",
                              after_crash="killed")
    args = build_parser().parse_args(["engine", "serve", *settings.serve_args()])
    from engine.process.launch import settings_from_args

    assert settings_from_args(args) == EngineSettings(idle_timeout_s=5, intra_op_threads=2, memory_limit_mb=900,
                                                      model=str(Path("/b").resolve()), provider="cpu",
                                                      after_crash="killed")
