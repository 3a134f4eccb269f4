"""`riffstudio batch PRESETS.toml [--model BUNDLE] [--out DIR] [--engine | --cluster ADDRESS] [--json]`: render a
preset file, resumably, here, in the engine or on a Ray cluster (ui/cli/cluster_bar.py, imported only then);
with --json, for a parent process (ui/cli/batch_progress.py)."""

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
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="render on a Ray cluster: auto (RAY_ADDRESS, else a `ray start` cluster on this machine, "
                        "else a local Ray for this run) or ray://HEAD:10001; needs the cluster extra "
                        "(docs/cluster.md)")
    parser.add_argument("--workers", type=int, metavar="N", help="with --cluster: N workers (default: one per "
                        "--cpus-per-worker CPUs of the cluster)")
    parser.add_argument("--cpus-per-worker", type=float, metavar="C", help="with --cluster: CPUs (ONNX Runtime "
                        "threads) per worker, each holding the model in memory (default: 4, at most a node's)")
    parser.add_argument("--json", action="store_true",
                        help="progress as JSON lines on stdout (for the desktop app); a line `stop` on stdin stops "
                        "at once, keeping what is complete (run again to carry on)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import InvalidInputError
    from plugin.batch import EngineRenderer, InProcessRenderer, Interrupt, plan, run_batch
    from ui.cli.batch_progress import BatchJsonLines, stop_when_asked
    from ui.cli.progress import TerminalProgress

    out = args.out or args.presets.with_suffix("")
    if out.resolve() == args.presets.resolve():
        out = args.presets.parent / f"{args.presets.stem}-out"
    default_bundle = str(args.model.resolve()) if args.model else None
    if (args.workers is not None or args.cpus_per_worker is not None) and not args.cluster:
        raise InvalidInputError("--workers and --cpus-per-worker go with --cluster ADDRESS")
    if args.json and args.cluster:
        raise InvalidInputError("--json is for one machine's batch (here or --engine): leave out --cluster")
    # The preset file checked before anything starts (the engine, a cluster) or is written: a mistake is one line.
    plan(args.presets, out, default_bundle=default_bundle)
    connection = None
    if args.cluster:  # joined before anything is written: an unreachable cluster leaves no output folder
        from ui.cli.cluster_bar import start_cluster

        renderer, connection, bar = start_cluster(args, lambda text: print(text, file=sys.stderr, flush=True))
        say = bar.say
    else:
        renderer = EngineRenderer() if args.engine else InProcessRenderer()
        bar = BatchJsonLines(out) if args.json else TerminalProgress()
        say = bar.note if args.json else lambda text: (bar.close(), print(text, file=sys.stderr, flush=True))
    if args.engine:
        from ui.cli.engine import say_engine_notes

        say_engine_notes(renderer.client)
    interrupt = Interrupt(renderer, say)
    if args.json:
        def stop_now() -> None:  # the app's Stop: the current item is cancelled too (in the engine as well)
            interrupt.requested = True
            renderer.cancel_now.set()

        stop_when_asked(stop_now)
    try:
        result = run_batch(args.presets, out, renderer, default_bundle=default_bundle, say=say,
                           item_progress=None if connection else bar, interrupt=interrupt,
                           watch=bar if args.json else None)
    finally:
        bar.close()
        renderer.close()
        if connection is not None:
            connection.close()
    if args.json:
        bar.done(result)
    else:
        print(f"batch: {result.done} rendered, {result.skipped} already complete, {result.failed} failed, "
              f"{result.remaining} left; summary: {result.summary}")
    if result.interrupted:
        print("riffstudio: stopped after the current item; run the same command again to carry on",
              file=sys.stderr)
        return 130
    return 1 if result.failed else 0
