"""Which calibration makes `model get`'s int8 VAE decoder closest to fp32, at full SD 1.5 size.

    python tests/benchmarks/bench_vae_calibration.py [NAME:GUIDED_RUNS:WIDTH:all|ends ...]

Needs bench_model_get.py's bundles under .cache/bench-model-get/ (its fp32 bundle, and its int8 bundle's UNet,
which drives the guided runs as in `model get`). Each variant calibrates the static VAE decoder on the shipped
spectrograms' latents ("all") or not ("ends"), plus the ends of GUIDED_RUNS guided runs at WIDTH px, and is
scored on bench_model_get's held-out inputs (spectrograms of pieces from seeds no calibration saw; Gaussian
latents of the sampler's prior). Prints a markdown table; the default variants are the ones in
tests/benchmarks/results/model-get-full.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "benchmarks"), str(REPO / "tests"), str(REPO)]

from bench_model_get import WORK, held_out_feeds  # noqa: E402
from report import machine_line  # noqa: E402

from engine.bundle.quantize import quantize_int8  # noqa: E402
from engine.bundle.reference import snr_db  # noqa: E402
from engine.model_get.calibration import CalibrationPlan, calibration_feeds  # noqa: E402
from engine.sessions import SessionSettings, create_session  # noqa: E402
from engine.tokenizer import PromptTokenizer  # noqa: E402

DEFAULT = ("shipped (2 runs):2:256:all", "more runs (4):4:256:all", "run ends alone (4):4:256:ends")


def main() -> None:
    fp32, int8_unet = WORK / "get-fp32", WORK / "get-int8" / "unet.onnx"
    if not (fp32 / "manifest.json").is_file() or not int8_unet.is_file():
        raise SystemExit("run tests/benchmarks/bench_model_get.py first (it makes the bundles this one reads)")
    manifest = json.loads((fp32 / "manifest.json").read_text())
    scale = manifest["latent_scale_factor"]
    held = {k: v for k, v in held_out_feeds(fp32, scale).items() if k.startswith("vae_decoder")}
    decoder = create_session(fp32 / "vae_decoder.onnx", SessionSettings())
    reference = {k: np.concatenate([decoder.run(None, f)[0] for f in v]) for k, v in held.items()}
    del decoder
    paths = {c: fp32 / f"{c}.onnx" for c in ("text_encoder", "unet", "vae_decoder", "vae_encoder")}
    tokenizer = PromptTokenizer(fp32 / "tokenizer.json")
    print(f"{machine_line()}. Command: `python tests/benchmarks/bench_vae_calibration.py`.\n")
    print("| calibration | samples | " + " | ".join(f"{k} SNR dB" for k in held) + " | s |")
    print("|---|---:|" + "---:|" * len(held) + "---:|")
    for spec in sys.argv[1:] or DEFAULT:
        name, runs, width, which = spec.rsplit(":", 3)
        started = time.perf_counter()
        plan = CalibrationPlan(images=8, width=int(width), timesteps=1, guided_runs=int(runs), decode_run_ends=False)
        samples = calibration_feeds(paths, tokenizer, manifest["scheduler"], latent_scale_factor=scale, plan=plan,
                                    guide_unet=int8_unet)["vae_decoder"]
        samples = samples[plan.images:] if which == "ends" else samples
        out = WORK / "vae-calibration" / "vae_decoder.onnx"
        quantize_int8(paths["vae_decoder"], out, "vae_decoder", calibration=samples)
        quantized = create_session(out, SessionSettings())
        scores = [snr_db(reference[k], np.concatenate([quantized.run(None, f)[0] for f in v])) for k, v in held.items()]
        print(f"| {name} | {len(samples)} | " + " | ".join(f"{s:.2f}" for s in scores)
              + f" | {time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
