"""Entry point of the `riffstudio` command.

Each sub-command lives in its own module beside this one and exposes `register(subparsers)`; the
parser sets `run` to the function that does the work. Heavy imports (ONNX Runtime, Qt) happen inside
those functions, so `riffstudio --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine.errors import RiffstudioError
from engine.version import __version__

COMMANDS = ("app", "model", "codec", "generate", "interpolate", "engine", "loop", "batch")  # ui/cli/<name>.py


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `only` the one command's: a command run imports its own module alone
    (the others' defaults and help import what they describe: ~30 ms a codec command need not pay)."""
    parser = argparse.ArgumentParser(
        prog="riffstudio",
        description="Local AI loop generator: a text prompt becomes a loop for your DAW. "
        "With no command, opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"riffstudio {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check that riffstudio works on this machine ([--json] [--model BUNDLE]; "
                        "see `riffstudio --self-test --help`)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"ui.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:
        from ui.cli import self_test

        return self_test.main(argv[1:])
    if argv[:1] == ["--qt-probe"]:  # hidden: the self-test's window, in a child process
        from ui.cli import self_test

        return self_test.qt_probe()
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["app"])
    try:
        return int(args.run(args) or 0)
    except RiffstudioError as error:
        print(f"riffstudio: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("riffstudio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
