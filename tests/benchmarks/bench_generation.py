"""Generation benchmark: one 512 x 512 loop, diffusers + torch (the baseline) beside ours, in one run.

    python tests/benchmarks/bench_generation.py [--preset tiny|full]

Rows (`--rows`, each in its own fresh process, so peak RSS is that run's alone):
- `diffusers`: diffusers + torch fp32 at riffusion's defaults (PNDM, 50 steps = 51 UNet calls, guidance 7),
  the baseline every ratio is against;
- `riffusion`: ours (ONNX Runtime) at those same settings, per bundle;
- `previous`: ours at the default before issue 14 (dpmpp_2m_karras, 15 steps), per bundle;
- `full` and `draft`: ours at today's speed presets (engine/speeds.py), per bundle.
The default is `diffusers,previous,full,draft`: the issue's two ratios (vs diffusers, vs the previous
default) and the draft, in one run. Per-step seconds are denoising time / UNet evaluations (a batch-1
call counts as one, like a batch-2 one); end-to-end is prompt -> image (text encoder, denoising, VAE
decode) and "with audio" adds the codec decode at the row's quality, which diffusers has none of.
`--preset full` uses the full-size random-weight model and bundles under .cache/ (a diffusers run takes
~9 min on 2 cores, so every row runs once). Writes tests/benchmarks/results/generation-<preset>.md.
"""

from __future__ import annotations

import argparse
import contextlib
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
PREVIOUS_DEFAULT = {"scheduler": "dpmpp_2m_karras", "steps": 15, "quality": "standard", "guidance_interval": None}
PHASES = ("load", "text", "denoise", "vae decode", "audio")
ROW_LABELS = {"riffusion": "riffusion's settings", "previous": "previous default",
              "full": "today's default (speed full)", "draft": "speed draft"}
ROWS = ("diffusers", *ROW_LABELS)


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


def row_settings(row: str) -> dict:
    """What an `ours` row sets on top of the prompt, seed 0, riffusion's guidance and the width."""
    from engine.speeds import SPEED_PRESETS

    if row == "riffusion":
        return {"scheduler": RIFFUSION["scheduler"], "steps": RIFFUSION["steps"], "guidance_interval": None}
    if row == "previous":
        return dict(PREVIOUS_DEFAULT)
    return dict(SPEED_PRESETS[row])


class PhasePeaks:
    """High-water RSS of each phase of a run, to say which one sets the peak (Linux: VmHWM, reset after
    each phase by writing 5 to /proc/self/clear_refs; elsewhere every phase reads the running peak)."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self._reset()

    def end(self, phase: str) -> None:
        from bench_bundle import peak_rss_mb

        self.peaks[phase] = max(self.peaks.get(phase, 0.0), peak_rss_mb())
        self._reset()

    def on_progress(self, event) -> None:
        if event.stage == "text":
            self.end("text")
        elif event.stage == "denoise" and event.step == event.total:
            self.end("denoise")
        elif event.stage == "decode":
            self.end("vae decode")

    @staticmethod
    def _reset() -> None:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def run_ours(bundle: str, row: str, width: int) -> dict:
    from engine.bundle import open_bundle
    from engine.codec import decode_image
    from engine.generation.pipeline import LoopGenerator
    from engine.generation.settings import GenerationSettings

    phases = PhasePeaks()
    start = time.perf_counter()
    generator = LoopGenerator(open_bundle(bundle))
    load = time.perf_counter() - start
    phases.end("load")
    settings = GenerationSettings(prompt=PROMPT, seed=0, width=width, guidance=RIFFUSION["guidance"],
                                  **row_settings(row))
    start = time.perf_counter()
    result = generator.generate(settings, progress=phases.on_progress)
    total = time.perf_counter() - start
    start = time.perf_counter()
    decode_image(result.image, stereo=False, quality=settings.quality)
    audio = time.perf_counter() - start
    phases.end("audio")
    evaluations = result.timings["steps"]
    return {"load_s": load, "e2e_s": total, "unet_calls": int(evaluations),
            "per_step_s": result.timings["denoise_s"] / evaluations, "audio_s": audio,
            "settings": f"{settings.scheduler} {settings.steps}, {settings.quality} audio"
                        + (f", guided where σ in {settings.guidance_interval}" if settings.guidance_interval else ""),
            "phase_peaks_mb": phases.peaks, "peak_rss_mb": max(phases.peaks.values())}


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
    parser.add_argument("--rows", default="diffusers,previous,full,draft",
                        help=f"which runs, comma-separated, of {', '.join(ROWS)} (diffusers is the baseline)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = run_diffusers(rest[0], int(rest[1])) if kind == "diffusers" else run_ours(
            rest[0], rest[1], int(rest[2]))
        from bench_bundle import peak_rss_mb

        result.setdefault("peak_rss_mb", peak_rss_mb())
        print(json.dumps(result))
        return

    from random_sd_model import cached_model

    rows_asked = args.rows.split(",")
    unknown = sorted(set(rows_asked) - set(ROWS))
    if unknown or "diffusers" not in rows_asked:
        raise SystemExit(f"--rows: use diffusers (the baseline, always) and any of {', '.join(ROWS[1:])}; "
                         f"got {args.rows!r}")
    model = cached_model(args.preset)
    found = {p: path for p, path in bundles(args.preset).items() if p in args.precisions.split(",")}
    if not found:
        raise SystemExit(f"no {args.precisions} bundle for --preset {args.preset}: convert one first "
                         "(tests/benchmarks/bench_bundle.py ensure_bundles)")
    rows = [("diffusers + torch fp32", "riffusion: pndm 50",
             child("diffusers", str(model), str(args.width)))]
    for row in rows_asked[1:]:
        for precision, path in found.items():
            result = child("ours", str(path), row, str(args.width))
            rows.append((f"ours, {precision} bundle", f"{ROW_LABELS[row]}: {result['settings']}", result))
    base = rows[0][2]["e2e_s"]
    previous = {name: r["e2e_s"] + r["audio_s"] for name, settings, r in rows
                if settings.startswith("previous default")}
    lines = [f"# Generation benchmark ({args.preset} model, random weights, 512 x {args.width})", "",
             f"{machine_line()}. "
             f"Command: `python tests/benchmarks/bench_generation.py {' '.join(sys.argv[1:])}`. Each row once, in its "
             "own process; end-to-end = prompt -> image; + audio adds the codec decode at the row's quality "
             "(diffusers makes no audio). Random weights: times and memory, not musical quality (the solver "
             "study, solvers-full-fewsteps.md, has the distances).", "",
             "| run | settings | UNet calls | s per call | end-to-end s | + audio s | vs diffusers | "
             "vs previous default | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, settings, r in rows:
        audio = r.get("audio_s")
        with_audio = f"{r['e2e_s'] + audio:.2f}" if audio is not None else "-"
        against = f"{previous[name] / (r['e2e_s'] + audio):.2f}x" if audio is not None and name in previous else "-"
        lines.append(f"| {name} | {settings} | {r['unet_calls']} | {r['per_step_s']:.3f} | {r['e2e_s']:.2f} | "
                     f"{with_audio} | {base / r['e2e_s']:.2f}x | {against} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "Peak RSS MB by phase (which part of a run sets the peak):", "",
              "| run | settings | " + " | ".join(PHASES) + " |", "|---|---|" + "---|" * len(PHASES)]
    for name, settings, r in rows:
        if "phase_peaks_mb" in r:
            lines.append(f"| {name} | {settings} | "
                         + " | ".join(f"{r['phase_peaks_mb'].get(p, 0):.0f}" for p in PHASES) + " |")
    publish(lines, args.out or RESULTS / f"generation-{args.preset}.md")


if __name__ == "__main__":
    main()
