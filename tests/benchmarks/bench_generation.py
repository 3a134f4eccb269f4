"""Generation benchmark: one 512 x 512 loop, diffusers + torch (the baseline) beside ours, in one run.

    python tests/benchmarks/bench_generation.py [--preset tiny|full]

Rows, each in its own fresh process (so peak RSS is that run's alone):
- diffusers + torch fp32 at riffusion's defaults (PNDM, 50 steps = 51 UNet calls, guidance 7),
- ours (ONNX Runtime) at the same settings, fp32 bundle, and int8 bundle where one is converted,
- ours at our defaults (dpmpp_2m_karras, 15 steps), fp32 and int8.
Per-step seconds are denoising time / UNet evaluations; end-to-end is prompt -> image (text encoder,
denoising, VAE decode; the audio decode is timed separately since diffusers has none). `--preset full`
uses the full-size random-weight model and bundles under .cache/ (a diffusers run takes ~10 min on 2
cores, so every row runs once). Writes tests/benchmarks/results/generation-<preset>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from report import RESULTS, machine_line, publish

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "benchmarks")]

PROMPT = "funky slap bass, 100 bpm"
RIFFUSION = {"scheduler": "pndm", "steps": 50, "guidance": 7.0}


def bundles(preset: str) -> dict[str, Path]:
    if preset == "tiny":
        from conftest import cached_bundle

        return {"fp32": cached_bundle("fp32"), "int8": cached_bundle("int8")}
    root = REPO / ".cache" / "bench-bundles"
    return {p: root / f"full-{p}" for p in ("fp32", "int8") if (root / f"full-{p}" / "manifest.json").exists()}


def run_diffusers(model: str, width: int) -> dict:
    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None)
    load = time.perf_counter() - start
    calls = {"n": 0, "t": 0.0}
    unet_forward = pipe.unet.forward

    def timed(*args, **kwargs):
        begin = time.perf_counter()
        out = unet_forward(*args, **kwargs)
        calls["n"] += 1
        calls["t"] += time.perf_counter() - begin
        return out

    pipe.unet.forward = timed
    start = time.perf_counter()
    image = pipe(PROMPT, num_inference_steps=RIFFUSION["steps"], guidance_scale=RIFFUSION["guidance"], width=width,
                 height=512, generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    total = time.perf_counter() - start
    assert np.isfinite(image).all()
    return {"load_s": load, "e2e_s": total, "unet_calls": calls["n"], "per_step_s": calls["t"] / calls["n"]}


def run_ours(bundle: str, scheduler: str, steps: int, width: int) -> dict:
    from engine.bundle import open_bundle
    from engine.codec import decode_image
    from engine.generation.pipeline import LoopGenerator
    from engine.generation.settings import GenerationSettings

    start = time.perf_counter()
    generator = LoopGenerator(open_bundle(bundle))
    load = time.perf_counter() - start
    settings = GenerationSettings(prompt=PROMPT, seed=0, steps=steps, scheduler=scheduler, width=width,
                                  guidance=RIFFUSION["guidance"])
    start = time.perf_counter()
    result = generator.generate(settings)
    total = time.perf_counter() - start
    start = time.perf_counter()
    decode_image(result.image, stereo=False)
    audio = time.perf_counter() - start
    evaluations = result.timings["steps"]
    return {"load_s": load, "e2e_s": total, "unet_calls": int(evaluations),
            "per_step_s": result.timings["denoise_s"] / evaluations, "audio_s": audio}


def child(kind: str, *args: str) -> dict:
    command = [sys.executable, __file__, "--child", kind, *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{kind} {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--precisions", default="fp32,int8",
                        help="bundles to run (full size: int8 alone saves ~10 min; bench_bundle has fp32 per call)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = run_diffusers(rest[0], int(rest[1])) if kind == "diffusers" else run_ours(
            rest[0], rest[1], int(rest[2]), int(rest[3]))
        from bench_bundle import peak_rss_mb

        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    from random_sd_model import cached_model

    from engine.generation.settings import DEFAULT_SCHEDULER, DEFAULT_STEPS

    model = cached_model(args.preset)
    found = {p: path for p, path in bundles(args.preset).items() if p in args.precisions.split(",")}
    rows = [("diffusers + torch fp32", "riffusion: pndm 50", child("diffusers", str(model), str(args.width)))]
    for precision, path in found.items():
        rows.append((f"ours, {precision} bundle", "riffusion: pndm 50",
                     child("ours", str(path), "pndm", str(RIFFUSION["steps"]), str(args.width))))
    for precision, path in found.items():
        rows.append((f"ours, {precision} bundle", f"ours: {DEFAULT_SCHEDULER} {DEFAULT_STEPS}",
                     child("ours", str(path), DEFAULT_SCHEDULER, str(DEFAULT_STEPS), str(args.width))))
    base = rows[0][2]["e2e_s"]
    lines = [f"# Generation benchmark ({args.preset} model, random weights, 512 x {args.width})", "",
             f"{machine_line()}. "
             f"Command: `python tests/benchmarks/bench_generation.py {' '.join(sys.argv[1:])}`. Each row once, in its "
             "own process; end-to-end = prompt -> image (audio decode listed apart).", "",
             "| run | settings | UNet calls | s per call | end-to-end s | vs diffusers | audio s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for name, settings, r in rows:
        audio = f"{r['audio_s']:.2f}" if "audio_s" in r else "-"
        lines.append(f"| {name} | {settings} | {r['unet_calls']} | {r['per_step_s']:.3f} | {r['e2e_s']:.2f} | "
                     f"{base / r['e2e_s']:.2f}x | {audio} | {r['peak_rss_mb']:.0f} |")
    publish(lines, args.out or RESULTS / f"generation-{args.preset}.md")


if __name__ == "__main__":
    main()
