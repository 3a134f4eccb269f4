"""`riffstudio batch PRESETS.toml [--model BUNDLE] [--out DIR]`: render a preset file, resumably."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="render a preset file (a sample pack overnight); resumable",
        description="Render every preset of a TOML preset file (see docs/batch-presets.example.toml): each result "
        "with its JSON sidecar in OUT/<preset>/, and OUT/summary.json + summary.csv. Run the same command again "
        "after a crash or Ctrl+C: what is complete is kept, the rest is rendered, nothing twice.")
    parser.add_argument("presets", type=Path, metavar="PRESETS.toml")
    parser.add_argument("--model", type=Path, metavar="BUNDLE",
                        help="model bundle for every preset that names none itself (over the file's [defaults] model)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: beside the preset file, "
                        "named after it)")
    parser.add_argument("--engine", action="store_true",
                        help="render in the engine process (started if needed; the warm model is shared)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from plugin.batch import EngineRenderer, InProcessRenderer, run_batch
    from ui.cli.progress import TerminalProgress

    out = args.out or args.presets.with_suffix("")
    if out.resolve() == args.presets.resolve():
        out = args.presets.parent / f"{args.presets.stem}-out"
    default_bundle = str(args.model.resolve()) if args.model else None
    renderer = EngineRenderer() if args.engine else InProcessRenderer()
    if args.engine:
        from ui.cli.engine import say_engine_notes

        say_engine_notes(renderer.client)
    bar = TerminalProgress()
    try:
        result = run_batch(args.presets, out, renderer, default_bundle=default_bundle,
                           say=lambda text: (bar.close(), print(text, file=sys.stderr, flush=True)),
                           item_progress=bar)
    finally:
        bar.close()
        renderer.close()
    print(f"batch: {result.done} rendered, {result.skipped} already complete, {result.failed} failed, "
          f"{result.remaining} left; summary: {result.summary}")
    if result.interrupted:
        print("riffstudio: stopped after the current item; run the same command again to carry on",
              file=sys.stderr)
        return 130
    return 1 if result.failed else 0
