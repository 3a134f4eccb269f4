"""Entry point of the `riffstudio` command.

Each sub-command lives in its own module beside this one and exposes `register(subparsers)`; the
parser sets `run` to the function that does the work. Heavy imports (ONNX Runtime, Qt) happen inside
those functions, so `riffstudio --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from engine.errors import PathTooLongError, RiffstudioError
from engine.version import __version__

COMMANDS = ("app", "model", "codec", "generate", "interpolate", "engine", "loop", "batch")  # ui/cli/<name>.py


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one `riffstudio:` line that says where the help is (argparse prints the whole usage,
    six lines and more, before its message); the exit code stays argparse's 2. Sub-command parsers are
    made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"riffstudio: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `only` the one command's: a command run imports its own module alone
    (the others' defaults and help import what they describe: ~30 ms a codec command need not pay)."""
    parser = OneLineParser(
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
    if os.environ.get("RIFFSTUDIO_UTF8_OUTPUT") == "1":  # the app reads its children's output as UTF-8
        for stream in (sys.stdout, sys.stderr):
            if stream is not None and hasattr(stream, "reconfigure"):
                stream.reconfigure(encoding="utf-8")
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
    except BrokenPipeError:  # `riffstudio engine jobs | head -1`: the reader has gone; so do we, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail again
        return 141  # 128 + SIGPIPE, as tools killed by it report
    except OSError as error:  # a path too long even to look at (the checks' own stat, before any work)
        too_long = PathTooLongError.of(error)
        if too_long is None:
            raise
        print(f"riffstudio: {too_long}", file=sys.stderr)
        return too_long.exit_code


if __name__ == "__main__":
    sys.exit(main())
