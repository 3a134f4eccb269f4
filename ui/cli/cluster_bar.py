"""`riffstudio batch --cluster`: joining the cluster before anything is written, and its progress as a tqdm bar
(items done / failed / running, per worker). Imported only when --cluster is given."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from engine.errors import InvalidInputError
from plugin.cluster import ClusterRenderer, ClusterStatus, Connection, connect, require_ray

INLINE_WORKERS = 4  # more workers than this: the bar sums them up instead of naming each


class ClusterBar:
    """The cluster's progress on stderr; `say` prints a line above the bar."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, status: ClusterStatus) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=status.total, unit="loop", file=sys.stderr, dynamic_ncols=True, leave=True)
        self.bar.n = status.done + status.failed
        self.bar.set_postfix_str(describe(status), refresh=False)
        self.bar.refresh()

    def say(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def describe(status: ClusterStatus) -> str:
    """`2 running, 1 failed | worker 1: 3 done, running | worker 2: 2 done` (or a sum for many workers)."""
    head = f"{status.running} running" + (f", {status.failed} failed" if status.failed else "")
    if status.replaced:
        head += f", {status.replaced} worker(s) replaced"
    if len(status.workers) > INLINE_WORKERS:
        nodes = len({worker.node for worker in status.workers})
        return f"{head} | {len(status.workers)} workers on {nodes} node(s)"
    parts = []
    for worker in status.workers:
        words = [f"{worker.done} done"] + ([f"{worker.failed} failed"] if worker.failed else [])
        words += ["running"] if worker.running is not None else []
        parts.append(f"{worker.name}: {', '.join(words)}")
    return " | ".join([head, *parts])


def start_cluster(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[ClusterRenderer, Connection,
                                                                                 ClusterBar]:
    """Ray found and the cluster joined (or ClusterError in one line, before any output is written)."""
    require_ray()
    if args.engine:
        raise InvalidInputError("--cluster and --engine: choose one (the cluster's workers run their own models)")
    bar = ClusterBar()
    connection = connect(args.cluster, say=say)
    try:
        renderer = ClusterRenderer(workers=args.workers, cpus_per_worker=args.cpus_per_worker, report=bar,
                                   say=bar.say)
    except BaseException:
        connection.close()
        raise
    return renderer, connection, bar
