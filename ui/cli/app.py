"""`riffstudio app`: open the desktop app (also what the bare `riffstudio` command does)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help="open the desktop app (the default)",
                                   description="Open the riffstudio desktop app.")
    parser.add_argument("--quit-after", type=float, metavar="SECONDS", default=None,
                        help="close the window after SECONDS (smoke tests, screenshots)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ui.app import run_app

    return run_app(quit_after=args.quit_after)
