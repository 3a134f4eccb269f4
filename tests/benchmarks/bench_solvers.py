"""Solver-accuracy study: how far each scheduler's final latent is from a 200-step reference, per step count.

    python tests/benchmarks/bench_solvers.py [--bundle BUNDLE] [--width PX] [--steps 10,15,20,25,30,50]
        [--schedulers a,b] [--intervals full,0.28:5.42] [--ode-only] [--decoded]

Random weights still define an ODE (the guided UNet's probability-flow ODE): the question is how many
steps each solver needs to land where a very fine solve lands. The model is the bundle's UNet with
classifier-free guidance 7 on a fixed prompt, one fixed noise; the distance is ||x - ref|| / ||ref||.
Two references: each scheduler's own 200-step run (its convergence), and DPM-Solver++ 2M at 200 steps
(where the ODE really ends, for comparing schedulers with each other). The baseline, in the same run, is
riffusion's own choice: PNDM at 50 steps. Default bundle: the test suite's tiny fp32 bundle.

`--intervals` adds the guidance interval (engine/generation/guidance.py) as a third axis: `full` guides
every step, `LO:HI` only the steps whose σ is in (LO, HI]; the reference stays the full-guidance ODE.
`--decoded` also decodes every final latent with the bundle's VAE and compares the images with the
reference's: mean absolute pixel difference (0-255) and the mean log-mel distance in dB (the pixels are
riffusion's mel amplitudes; floor -80 dB), the distances a listener's ear is closer to.
Random weights judge solver numerics, not musical quality; run it with `--bundle` on riffusion's own
weights to confirm a choice. Writes tests/benchmarks/results/solvers-<name>.md.
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
LOG_MEL_FLOOR_DB = -80.0


def distance(x: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(x - reference) / np.linalg.norm(reference))


def parse_interval(text: str) -> tuple[float, float] | None:
    if text == "full":
        return None
    low, high = (float(v) for v in text.split(":"))
    return low, high


def log_mel_db(image: np.ndarray) -> np.ndarray:
    from engine.codec.params import DEFAULT_PARAMS
    from engine.codec.pixels import channel_levels, mel_from_levels

    mel = mel_from_levels(channel_levels(image, stereo=False), DEFAULT_PARAMS.power)
    return np.maximum(20 * np.log10(np.maximum(mel, 1e-12)), LOG_MEL_FLOOR_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", default="10,15,20,25,30,50")
    parser.add_argument("--schedulers", default="")
    parser.add_argument("--ode-only", action="store_true",
                        help="measure against the dpmpp_2m 200-step end point only (no per-scheduler reference)")
    parser.add_argument("--intervals", default="full",
                        help="guidance intervals, comma separated: full or LO:HI (σ bounds)")
    parser.add_argument("--decoded", action="store_true",
                        help="also compare the decoded images (pixels, log-mel dB) with the reference's")
    parser.add_argument("--cases", default="", help="NAME@STEPS,... instead of every --schedulers x --steps pair "
                        "(e.g. pndm@50 as the baseline beside few-step candidates)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from engine.bundle import open_bundle
    from engine.generation.guidance import guided_steps, step_noise_levels
    from engine.generation.pipeline import LoopGenerator
    from engine.schedulers import SCHEDULER_NAMES, sample

    if args.bundle is None:
        from conftest import cached_bundle

        args.bundle = cached_bundle("fp32")
    generator = LoopGenerator(open_bundle(args.bundle))
    config = generator.manifest.scheduler
    context = generator.encode_prompts(PROMPT, "")
    noise = generator.initial_noise(1234, args.width)
    names = [n for n in args.schedulers.split(",") if n] or list(SCHEDULER_NAMES)
    step_counts = [int(s) for s in args.steps.split(",")]
    intervals = [parse_interval(text) for text in args.intervals.split(",")]

    def run(name: str, steps: int, interval: tuple[float, float] | None = None) -> tuple[np.ndarray, float, int]:
        calls = 0

        def model(latents: np.ndarray, timestep: float) -> np.ndarray:
            nonlocal calls
            level = step_noise_levels(config, np.array([timestep]))
            guided = bool(guided_steps(level, interval)[0])
            calls += 2 if guided else 1
            return generator.predict_noise(latents, float(timestep), context, GUIDANCE if guided else 1.0)

        start = time.perf_counter()
        latents = sample(model, name, steps, config, noise, rng=np.random.default_rng(7))
        return latents, time.perf_counter() - start, calls

    common = run("dpmpp_2m", REFERENCE_STEPS)[0]
    common_image = generator.decode_latents(common) if args.decoded else None
    cases = [(case.split("@")[0], int(case.split("@")[1])) for case in args.cases.split(",") if case] \
        or [(name, steps) for name in names for steps in step_counts]
    rows = []
    owns: dict[str, np.ndarray] = {}
    for name, steps in cases:
        # Full-size runs can skip the own references (200 UNet calls each): the ODE column compares solvers.
        if name not in owns:
            owns[name] = common if name == "dpmpp_2m" or args.ode_only else run(name, REFERENCE_STEPS)[0]
        own = owns[name]
        for interval in intervals:
            latents, seconds, calls = run(name, steps, interval)
            row = {"name": name, "steps": steps, "interval": interval, "own": distance(latents, own),
                   "ode": distance(latents, common), "calls": calls, "seconds": seconds}
            if common_image is not None:
                image = generator.decode_latents(latents)
                row["pixels"] = float(np.mean(np.abs(image.astype(np.float32) - common_image)))
                row["log_mel_db"] = float(np.mean(np.abs(log_mel_db(image) - log_mel_db(common_image))))
            rows.append(row)
            print(row, flush=True)
    publish(report(rows, args), args.out or RESULTS / f"solvers-{args.width}px.md")


def report(rows: list[dict], args: argparse.Namespace) -> list[str]:
    baseline = next((r for r in rows if r["name"] == "pndm" and r["steps"] == 50 and r["interval"] is None), None)
    decoded = "pixels" in rows[0]
    lines = [f"# Solver accuracy ({args.bundle.name}, {args.width} px, guidance {GUIDANCE:g})", "",
             f"Distance of the final latent from a {REFERENCE_STEPS}-step reference, same model and noise: "
             "`own` = the scheduler's own 200-step run, `ODE` = DPM-Solver++ 2M at 200 steps with guidance "
             "on every step. `interval` = the σ range (LO, HI] where guidance runs (`full`: every step); "
             "`UNet` = batch-1 UNet evaluations (a guided step costs two)."
             + (" `pixels` = mean |difference| of the decoded image from the reference's (0-255), `log-mel` "
                "= mean |difference| of its mel amplitudes in dB (floor -80 dB)." if decoded else "")
             + " Baseline: riffusion's PNDM at 50 steps. Random weights judge the solvers' numerics, not "
             "musical quality. Command: `python tests/benchmarks/bench_solvers.py " + " ".join(sys.argv[1:])
             + "`" + (" (`own` column = ODE column)" if args.ode_only else "") + ". " + machine_line() + ".", "",
             "| scheduler | steps | interval | UNet | vs own 200 | vs ODE | "
             + ("pixels | log-mel dB | " if decoded else "") + "seconds |",
             "|---|---|---|---|---|---|" + ("---|---|" if decoded else "") + "---|"]
    for row in rows:
        interval = "full" if row["interval"] is None else f"{row['interval'][0]:g}:{row['interval'][1]:g}"
        lines.append(f"| {row['name']} | {row['steps']} | {interval} | {row['calls']} | {row['own']:.4f} | "
                     f"{row['ode']:.4f} | " + (f"{row['pixels']:.2f} | {row['log_mel_db']:.2f} | " if decoded else "")
                     + f"{row['seconds']:.1f} |")
    if baseline:
        cheaper = sorted((r for r in rows if r["ode"] <= baseline["ode"] and r["calls"] < baseline["calls"]
                          and r["name"] != "euler_a"), key=lambda r: r["calls"])
        lines += ["", f"Baseline pndm@50: {baseline['ode']:.4f} from the ODE end point, {baseline['calls']} UNet "
                  "evaluations. At least as close, cheapest first: " + ", ".join(
                      f"{r['name']}@{r['steps']}"
                      + ("" if r["interval"] is None else f" [{r['interval'][0]:g}, {r['interval'][1]:g}]")
                      + f" ({r['ode']:.4f}, {r['calls']} calls)" for r in cheaper[:12])]
    return lines


if __name__ == "__main__":
    main()
