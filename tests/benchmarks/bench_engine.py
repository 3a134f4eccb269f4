"""Engine process benchmark: what going through the engine costs, and what its warm model saves.

    python tests/benchmarks/bench_engine.py [--repeats 5] [--width 64] [--steps 20]

On the tiny fp32 bundle, in a private temporary home (no engine of yours is touched), baseline beside
engine in the same run:
- per job: a warm in-process `render_loop` + the same results-folder write, against submit -> `done` on
  a warm engine (the difference is the protocol, queue and journal cost per job; target < 50 ms);
- per progress event: the same at 10x the steps, the extra time divided by the extra events (an upper
  bound on the cost of one event; target < 5 ms), and the ping round trip;
- cold start: a fresh `riffstudio generate` process against starting an engine and getting its first
  result;
- the model load saved: a fresh `riffstudio generate` against `riffstudio generate --engine` with the
  engine already warm (both are whole CLI processes).
Full-size bundles are not measured here (each full-size run takes minutes on the 2-core machine).
Writes tests/benchmarks/results/engine-tiny.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "benchmarks")]

from report import RESULTS, machine_line, publish  # noqa: E402

PROMPT = "funky slap bass, 100 bpm"


def private_home() -> Path:
    """The engine tests' private home (tests/engine_fixtures.py), set in this process's environment."""
    from engine_fixtures import make_private_home

    home, folders = make_private_home("rs-bench-")
    os.environ.update(folders)
    return home


def median(times: list[float]) -> float:
    return statistics.median(times)


def in_process_job(generator, settings, folder: Path) -> float:
    from engine.generation.loop import render_loop
    from engine.process.results import write_results

    start = time.perf_counter()
    loop = render_loop(generator, settings)
    write_results(folder, loop, generator, "wav")
    return time.perf_counter() - start


def engine_job(client, settings, bundle) -> tuple[float, int]:
    start = time.perf_counter()
    events = list(client.submit(settings, bundle, provider="cpu").events(timeout=300))
    return time.perf_counter() - start, len(events)


def one_event_seconds(preview: bool, count: int = 2000) -> float:
    """Median cost of one progress event on the wire: encode, send, receive, decode, over a real local
    connection (what the engine and the client add to each step, whatever the load of the machine)."""
    from multiprocessing.connection import Pipe

    import numpy as np

    from engine.process import protocol as p

    left, right = Pipe()
    image = p.Preview.from_array(np.zeros((64, 64, 3), np.uint8)) if preview else None
    times = []
    for step in range(count):
        event = p.Progress(job="20260101-000000-abcdef", stage="denoise", step=step, total=count, fraction=0.5,
                           preview=image)
        start = time.perf_counter()
        left.send_bytes(p.encode(event))
        p.decode(right.recv_bytes(p.MAX_MESSAGE_BYTES))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ui.cli.main", *args], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "engine-tiny.md")
    args = parser.parse_args()

    from conftest import cached_bundle

    bundle = cached_bundle("fp32")
    home = private_home()
    load_before = machine_line()
    try:
        from engine.bundle import open_bundle
        from engine.client import EngineClient
        from engine.generation.pipeline import LoopGenerator
        from engine.generation.settings import GenerationSettings
        from engine.process.connection_file import live_engine

        def settings(steps: int, seed: int) -> GenerationSettings:
            return GenerationSettings(prompt=PROMPT, steps=steps, seed=seed, width=args.width, quality="draft")

        many = args.steps * 10
        scratch = home / "in-process"
        generator = LoopGenerator(open_bundle(bundle))
        in_process_job(generator, settings(args.steps, 0), scratch / "warm-up")
        local, local_many = [], []

        fresh_generate = []
        for i in range(args.repeats):
            fresh_generate.append(cli("generate", PROMPT, "--model", str(bundle), "--out", str(home / f"g{i}.wav"),
                                      "--steps", str(args.steps), "--width", str(args.width), "--seed", str(i),
                                      "--quality", "draft", "--provider", "cpu"))

        cold = []
        for i in range(args.repeats):
            start = time.perf_counter()
            with EngineClient(name="bench") as client:
                engine_job(client, settings(args.steps, i), bundle)
                cold.append(time.perf_counter() - start)
                client.shutdown()

        with EngineClient(name="bench") as client:
            engine_job(client, settings(args.steps, 0), bundle)
            remote, remote_many, events_few, events_many = [], [], 0, 0
            for i in range(args.repeats):  # interleaved, so that a change of load hits both sides alike
                local.append(in_process_job(generator, settings(args.steps, i), scratch / f"a{i}"))
                seconds, events_few = engine_job(client, settings(args.steps, i), bundle)
                remote.append(seconds)
                local_many.append(in_process_job(generator, settings(many, i), scratch / f"b{i}"))
                seconds, events_many = engine_job(client, settings(many, i), bundle)
                remote_many.append(seconds)
            pings = [client.ping() for _ in range(50)]
        event_cost = one_event_seconds(preview=False)
        preview_cost = one_event_seconds(preview=True)
        with EngineClient(name="bench") as client:
            warm_generate = [cli("generate", PROMPT, "--model", str(bundle), "--out", str(home / f"e{i}.wav"),
                                 "--steps", str(args.steps), "--width", str(args.width), "--seed", str(i),
                                 "--quality", "draft", "--provider", "cpu", "--engine")
                             for i in range(args.repeats)]
            client.shutdown()
        assert live_engine() is None
    finally:
        shutil.rmtree(home, ignore_errors=True)

    per_job_ms = (median(remote) - median(local)) * 1000
    extra_events = events_many - events_few
    per_event_ms = ((median(remote_many) - median(local_many)) - (median(remote) - median(local))) / extra_events * 1000
    rows = [
        ("per job: warm in-process render_loop + results write", f"{median(local) * 1000:.1f} ms", "baseline", ""),
        ("per job: submit -> done on a warm engine", f"{median(remote) * 1000:.1f} ms",
         f"{per_job_ms:+.1f} ms", "< 50 ms"),
        (f"per progress event ({extra_events} extra events at {many} steps)",
         f"{median(remote_many) * 1000:.0f} ms vs {median(local_many) * 1000:.0f} ms in-process",
         f"{per_event_ms:+.3f} ms", "< 5 ms"),
        ("one progress event on the wire: encode, send, receive, decode", f"{event_cost * 1000:.3f} ms", "",
         "< 5 ms"),
        ("the same with a 512 px loop's preview (64 x 64 RGB)", f"{preview_cost * 1000:.3f} ms", "", "< 5 ms"),
        ("ping round trip to the engine (median of 50)", f"{median(pings) * 1000:.3f} ms", "", ""),
        ("cold: fresh `riffstudio generate` process", f"{median(fresh_generate):.2f} s", "baseline", ""),
        ("cold: start an engine + first result (in a warm client process)", f"{median(cold):.2f} s",
         f"{median(cold) - median(fresh_generate):+.2f} s", ""),
        ("warm: `riffstudio generate --engine` process, engine warm", f"{median(warm_generate):.2f} s",
         f"{median(warm_generate) - median(fresh_generate):+.2f} s", "saves the model load"),
    ]
    lines = [
        "# Engine process benchmark (tiny fp32 bundle, random weights)",
        "",
        f"{machine_line()} (at the end; {load_before.split('; ')[-1]} at the start). Command: "
        f"`python tests/benchmarks/bench_engine.py --repeats {args.repeats} --width {args.width} "
        f"--steps {args.steps}`. Medians of {args.repeats} runs after a warm-up; {args.width} px, "
        f"{args.steps} steps, draft audio, CPU. Full-size bundles not measured (minutes per run here).",
        "",
        "| measurement | time | vs baseline | target |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ]
    publish(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
