"""How an engine process starts: its arguments (shared by `riffstudio engine serve` and by clients that
start one), the command a client spawns, and the foreground run with its one-line report."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.choices import PROVIDERS
from engine.errors import RiffstudioError
from engine.process.settings import DEFAULT_IDLE_TIMEOUT_S, EngineSettings

# The environment variable a spawning client hands its start token in (see ConnectionInfo.start_token).
START_TOKEN_ENV = "RIFFSTUDIO_START_TOKEN"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S, metavar="S",
                        help=f"exit after S seconds with no client and no work (default {DEFAULT_IDLE_TIMEOUT_S:g})")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="ONNX Runtime intra-op threads (default 0: the physical cores)")
    parser.add_argument("--memory-limit", type=int, default=0, metavar="MB",
                        help="refuse jobs estimated to need more than this (default 0: no ceiling)")
    parser.add_argument("--model", metavar="BUNDLE", help="open this bundle at start, so the first job is warm")
    parser.add_argument("--provider", choices=PROVIDERS, default="auto",
                        help="the provider for --model (default auto)")
    parser.add_argument("--after-crash", metavar="REASON", help=argparse.SUPPRESS)  # from a restarting client


def settings_from_args(args: argparse.Namespace) -> EngineSettings:
    model = str(Path(args.model).resolve()) if args.model else None
    return EngineSettings(idle_timeout_s=args.idle_timeout, intra_op_threads=args.threads,
                          memory_limit_mb=args.memory_limit, model=model, provider=args.provider,
                          after_crash=args.after_crash)


CLI_NAME = "riffstudio-cli"


def is_frozen() -> bool:
    """True inside the PyInstaller app folder, where `sys.executable` is our program, not Python."""
    return bool(getattr(sys, "frozen", False))


def frozen_cli() -> Path:
    """The console `riffstudio-cli` beside the running program in the app folder: the windowed app
    cannot run `-m` modules, and a console program keeps the engine's output for its log."""
    name = CLI_NAME + (".exe" if sys.platform == "win32" else "")
    return Path(sys.executable).resolve().parent / name


def riffstudio_command() -> list[str]:
    """How to run `riffstudio ...` as a child process: the CLI program in the app folder, else this
    interpreter on the CLI module (no reliance on the `riffstudio` script being on PATH)."""
    return [str(frozen_cli())] if is_frozen() else [sys.executable, "-m", "ui.cli.main"]


def serve_command(settings: EngineSettings) -> list[str]:
    """The engine's command line: `riffstudio-cli engine serve` in the app folder; from source
    `python -m engine.process serve`, so the engine package does not depend on the command line's."""
    if is_frozen():
        return [*riffstudio_command(), "engine", "serve", *settings.serve_args()]
    return [sys.executable, "-m", "engine.process", "serve", *settings.serve_args()]


def spawn(settings: EngineSettings, log_file: Path, start_token: str = "") -> subprocess.Popen:
    """Start an engine detached from the caller (its own session: a client's Ctrl-C or death never
    reaches it), its output appended to `log_file`. `start_token` reaches the engine in its environment and
    comes back in its connection file: the spawned process may be a launcher of the engine, not the engine."""
    env = {**os.environ, START_TOKEN_ENV: start_token} if start_token else None
    with open(log_file, "ab") as log:
        kwargs = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS} \
            if sys.platform == "win32" else {"start_new_session": True}
        return subprocess.Popen(serve_command(settings), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                close_fds=True, env=env, **kwargs)


def run_serve(settings: EngineSettings) -> int:
    """The engine in the foreground; a second one finds the first and says so instead of starting."""
    from engine.process.server import EngineAlreadyRunning, serve

    if settings.model:  # a bad --model is one line now, not a log entry after the engine is up
        from engine.bundle import open_bundle

        open_bundle(settings.model)

    def ready(info) -> None:
        print(f"engine running (pid {info.pid}, protocol {info.protocol}) at {info.address}", flush=True)

    try:
        why = serve(settings, ready)
    except EngineAlreadyRunning as error:
        print(str(error), flush=True)
        return 0
    print(f"engine stopped: {why}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.process")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve"))
    args = parser.parse_args(argv)
    try:
        code = run_serve(settings_from_args(args))
    except RiffstudioError as error:
        print(f"riffstudio: {error}", file=sys.stderr, flush=True)
        code = error.exit_code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # daemon threads may sit in blocking reads: skip interpreter teardown
