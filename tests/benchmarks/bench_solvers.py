"""Solver-accuracy study: how far each scheduler's final latent is from a 200-step reference, per step count.

    python tests/benchmarks/bench_solvers.py [--bundle BUNDLE] [--width PX] [--steps 10,15,20,25,30,50]

Random weights still define an ODE (the guided UNet's probability-flow ODE): the question is how many
steps each solver needs to land where a very fine solve lands. The model is the bundle's UNet with
classifier-free guidance 7 on a fixed prompt, one fixed noise; the distance is ||x - ref|| / ||ref||.
Two references: each scheduler's own 200-step run (its convergence), and DPM-Solver++ 2M at 200 steps
(where the ODE really ends, for comparing schedulers with each other). The baseline, in the same run, is
riffusion's own choice: PNDM at 50 steps. Default bundle: the test suite's tiny fp32 bundle.
Writes tests/benchmarks/results/solvers-<name>.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from report import RESULTS, machine_line, publish

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

REFERENCE_STEPS = 200
GUIDANCE = 7.0
PROMPT = "funky slap bass, 100 bpm"


def distance(x: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(x - reference) / np.linalg.norm(reference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", default="10,15,20,25,30,50")
    parser.add_argument("--schedulers", default="")
    parser.add_argument("--ode-only", action="store_true",
                        help="measure against the dpmpp_2m 200-step end point only (no per-scheduler reference)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from engine.bundle import open_bundle
    from engine.generation.pipeline import LoopGenerator
    from engine.schedulers import SCHEDULER_NAMES, sample

    if args.bundle is None:
        from conftest import cached_bundle

        args.bundle = cached_bundle("fp32")
    generator = LoopGenerator(open_bundle(args.bundle))
    config = generator.manifest.scheduler
    context = generator.encode_prompts(PROMPT, "")
    def model(sample: np.ndarray, timestep: float) -> np.ndarray:
        return generator.predict_noise(sample, float(timestep), context, GUIDANCE)

    noise = generator.initial_noise(1234, args.width)
    names = [n for n in args.schedulers.split(",") if n] or list(SCHEDULER_NAMES)
    step_counts = [int(s) for s in args.steps.split(",")]

    def run(name: str, steps: int) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        latents = sample(model, name, steps, config, noise, rng=np.random.default_rng(7))
        return latents, time.perf_counter() - start

    common, _ = run("dpmpp_2m", REFERENCE_STEPS)
    rows = []
    for name in names:
        # Full-size runs can skip the own references (200 UNet calls each): the ODE column compares solvers.
        own = common if name == "dpmpp_2m" or args.ode_only else run(name, REFERENCE_STEPS)[0]
        for steps in step_counts:
            latents, seconds = run(name, steps)
            rows.append((name, steps, distance(latents, own), distance(latents, common), seconds))
            print(rows[-1], flush=True)
    baseline = next((r for r in rows if r[0] == "pndm" and r[1] == 50), None)
    lines = [f"# Solver accuracy ({args.bundle.name}, {args.width} px, guidance {GUIDANCE:g})", "",
             f"Distance of the final latent from a {REFERENCE_STEPS}-step reference, same model and noise: "
             "`own` = the scheduler's own 200-step run, `ODE` = DPM-Solver++ 2M at 200 steps. Baseline: "
             "riffusion's PNDM at 50 steps. Command: `python tests/benchmarks/bench_solvers.py "
             + " ".join(sys.argv[1:]) + "`" + (" (`own` column = ODE column)" if args.ode_only else "") + ". "
             + machine_line() + ".", "",
             "| scheduler | steps | vs own 200 | vs ODE (dpmpp_2m 200) | seconds |", "|---|---|---|---|---|"]
    for name, steps, own, ode, seconds in rows:
        lines.append(f"| {name} | {steps} | {own:.4f} | {ode:.4f} | {seconds:.1f} |")
    if baseline:
        lines += ["", f"Baseline pndm@50: {baseline[3]:.4f} from the ODE end point. Cheapest setting at least as "
                  "close: " + ", ".join(f"{n}@{s} ({ode:.4f})" for n, s, _, ode, _ in rows
                                          if ode <= baseline[3] and s < 50 and n != "euler_a")]
    publish(lines, args.out or RESULTS / f"solvers-{args.width}px.md")


if __name__ == "__main__":
    main()
