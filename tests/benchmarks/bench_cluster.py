"""`riffstudio batch --cluster` benchmark: items per minute on the tiny bundle, the local batch (the baseline)
beside 1 and 2 Ray actors on this machine, in one run, and the cluster's overhead per item.

    python tests/benchmarks/bench_cluster.py [--items N] [--out FILE]

Each run renders the same N fast items (tests/test_batch.py's FAST: 2 Euler steps, draft audio) into a fresh
folder through run_batch, so planning, writing and the summary are in every number. Overhead per item is
what an actor spends not rendering: (the time from the first item handed out to the last result back, minus
the busiest actor's own rendering seconds) / that actor's items. The driver writes each result while the
actor renders its next item, so writing is not overhead. On 2 cores, 2 actors cannot beat one process: the
point is the overhead, set against a full-size item's time (results/generation-full.md), and from both, on
paper, how a 10,000-loop pack scales over N nodes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from report import RESULTS, machine_line, publish

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from plugin.batch import InProcessRenderer, Outcome, run_batch  # noqa: E402

FAST = 'steps = 2\nscheduler = "euler"\nquality = "draft"\nbpm = 200\nbeats = 2\n'
WORK = REPO / ".cache" / "bench-cluster"
FULL_ITEM_S = 57.28  # results/generation-full.md: the int8 bundle at today's default speed, with audio, 2 cores
PACK = 10_000


def presets(bundle: Path, items: int) -> Path:
    path = WORK / "pack.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[defaults]\nmodel = "{bundle}"\n{FAST}\n[[preset]]\nprompt = "funky slap bass"\n'
                    f"seeds = {list(range(1, items + 1))}\n", encoding="utf-8")
    return path


def timed(renderer):
    """The renderer with each outcome's render seconds and worker kept (wrapping render_many or render)."""
    renderer.outcomes = []
    renderer.first_handed_out = None
    many = getattr(renderer, "render_many", None)
    if many is not None:
        def render_many(items, stop):
            for outcome in many(items, stop):
                renderer.outcomes.append((outcome, time.perf_counter()))
                yield outcome
        renderer.render_many = render_many
    return renderer


def first_hand_out(renderer):
    """A progress report that notes when the first item went to an actor (the actors are up by then)."""
    def report(status) -> None:
        if renderer.first_handed_out is None and status.running:
            renderer.first_handed_out = time.perf_counter()
    return report


def run(name: str, folder: str, renderer, pack: Path, items: int) -> dict:
    out = WORK / folder
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = run_batch(pack, out, renderer, say=lambda _: None)
    wall = time.perf_counter() - started
    renderer.close()
    assert (result.done, result.failed) == (items, 0), result
    row = {"name": name, "wall": wall, "per_min": items / wall * 60, "overhead": None, "render": None}
    outcomes: list[tuple[Outcome, float]] = getattr(renderer, "outcomes", [])
    if outcomes and renderer.first_handed_out is not None:
        by_worker: dict[str, list[float]] = {}
        for outcome, _ in outcomes:
            by_worker.setdefault(outcome.rendered.record["cluster"]["worker"], []).append(outcome.seconds)
        busiest = max(by_worker.values(), key=sum)
        span = outcomes[-1][1] - renderer.first_handed_out
        row["render"] = sum(busiest) / len(busiest)
        row["overhead"] = max(0.0, span - sum(busiest)) / len(busiest)
        row["startup"] = renderer.first_handed_out - started
        summary = json.loads((out / "summary.json").read_text())
        seconds = {entry["key"]: entry["seconds"] for entry in summary["items"]}
        row["write"] = sum(seconds[o.item.key] - o.seconds for o, _ in outcomes) / len(outcomes)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--out", type=Path, default=RESULTS / "cluster-tiny.md")
    args = parser.parse_args()

    import ray
    from conftest import cached_bundle

    from plugin.cluster import ClusterRenderer

    bundle = cached_bundle("fp32")
    pack = presets(bundle, args.items)
    load_before = machine_line()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    rows = []
    try:
        local = InProcessRenderer()
        rows.append(run("local batch (InProcessRenderer, 1 process, ORT's default threads)", "local", local, pack,
                        args.items))
        for workers, cpus in ((1, 2), (2, 1)):
            renderer = timed(ClusterRenderer(workers=workers, cpus_per_worker=cpus))
            renderer.report = first_hand_out(renderer)
            rows.append(run(f"cluster: {workers} actor(s) x {cpus} CPU (= ORT intra-op threads)",
                            f"cluster-{workers}x{cpus}", renderer, pack, args.items))
    finally:
        ray.shutdown()
    base = rows[0]
    lines = ["# Batch on a Ray cluster vs the local batch (tiny bundle)", "",
             f"{load_before}. Ray {ray.__version__}, local cluster `ray.init(num_cpus=2)`. Command: "
             f"`python tests/benchmarks/bench_cluster.py --items {args.items}`. {args.items} items of "
             "tests/test_batch.py's FAST preset (2 Euler steps, 144 px, draft audio) per run, one run each, "
             "into fresh folders; wall time includes starting the actors and opening the model. The local batch "
             "renders and writes in turn; the cluster's driver writes while the actor renders the next item, "
             "which is why 1 actor can beat it. The machine is shared (see the load): compare rows of one run, "
             "not runs.", "",
             "| run | wall s | items/min | vs local | actor start + model open s | render s/item (busiest actor) "
             "| overhead s/item |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        overhead = "-" if row["overhead"] is None else f"{row['overhead']:.3f}"
        render = "-" if row["render"] is None else f"{row['render']:.3f}"
        startup = f"{row['startup']:.2f}" if "startup" in row else "-"
        lines.append(f"| {row['name']} | {row['wall']:.2f} | {row['per_min']:.1f} | "
                     f"{row['per_min'] / base['per_min']:.2f}x | {startup} | {render} | {overhead} |")
    overhead = max(row["overhead"] for row in rows if row["overhead"] is not None)
    lines += ["", f"Overhead per item at full size: {overhead:.3f} s against {FULL_ITEM_S} s per loop "
              f"(results/generation-full.md, int8, today's default) = {overhead / FULL_ITEM_S * 100:.2f} % "
              "(target <= 10 %). The payload grows with the loop (a 5 s loop's float32 audio is ~0.9 MB, its "
              "512 x 512 image 0.8 MB): bytes through Ray's object store, milliseconds on a LAN.", "",
              f"On paper, a {PACK:,}-loop pack at {FULL_ITEM_S} s per loop per node of this machine's kind "
              "(2 cores, one 2-CPU actor per node), with the measured overhead:", "",
              "| nodes | loops per node | hours |", "|---|---|---|"]
    for nodes in (1, 10, 50, 100):
        per_node = -(-PACK // nodes)
        hours = per_node * (FULL_ITEM_S + overhead) / 3600
        lines.append(f"| {nodes} | {per_node} | {hours:.1f} |")
    write = max(row["write"] for row in rows if "write" in row)
    lines += ["", f"Linear in nodes while the one driver keeps up: it writes each result (measured here: "
              f"{write * 1000:.0f} ms per tiny loop, while the actor already renders its next item), so it serves "
              f"about {FULL_ITEM_S / write:,.0f} busy actors at that cost per write; a full-size loop (~10x the "
              "samples) costs more to fit and write, and the shared output volume's bandwidth is the other "
              "ceiling.",
              "", f"After: {machine_line()}"]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
