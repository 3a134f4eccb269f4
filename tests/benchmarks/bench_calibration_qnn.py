"""qnn (w8a16) calibration: `model get`'s forward-process inputs against `model convert`'s guided denoising runs.

    python tests/benchmarks/bench_calibration_qnn.py [--width 256] [--prompts 8] [--out FILE]

`model convert --precision qnn` calibrates every model on what it sees along guided denoising runs of music
prompts (torch; at full size most of an hour). `model get` calibrates without a single UNet call: the
shipped spectrograms through the VAE encoder, noised at the default sampler's timesteps for the UNet. Both
quantise the same fp32 models (the tiny test checkpoint, exported at fixed shapes) with the same quantiser;
each quantised model is then scored against fp32 (ONNX Runtime's CPU emulation of the QDQ graph) on inputs
neither calibration saw: guided denoising runs of held-out prompts (convert's kind) and held-out fluidsynth
spectrograms (seeds >= 1000) with other noise (get's kind; its text encoder inputs are the calibration list's
prompts, so that column is not held out for the text encoder). Random weights judge the calibration's coverage of
each model's activations, not musical quality. Writes results/calibration-qnn-tiny.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from report import RESULTS, machine_line, publish

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

HELD_OUT = ("warm analog synth bass with a slow filter sweep", "tight funk drums, ghost notes, 96 bpm",
            "lush string pad in d minor", "distorted surf guitar twang", "glitchy idm percussion",
            "soft jazz brushes and vibraphone", "steel drum calypso melody", "male choir chant")
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")


def main() -> None:
    from conftest import EXPORT_CACHE, cached_model_dir

    from engine.bundle.quantize import component_snr_db, quantize_qnn
    from engine.export.calibration import MUSIC_PROMPTS, CalibrationSettings, capture_calibration_set
    from engine.export.export_cache import export_with_cache
    from engine.export.source import load_checkpoint
    from engine.model_get.calibration import CalibrationPlan, calibration_feeds
    from engine.model_get.clip_tokenizer import write_clip_tokenizer
    from engine.tokenizer import PromptTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=8, help="convert's calibration prompts (default 8)")
    parser.add_argument("--out", type=Path, default=RESULTS / "calibration-qnn-tiny.md")
    args = parser.parse_args()
    before = machine_line()
    model = cached_model_dir()
    checkpoint = load_checkpoint(str(model))
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        fp32 = {c: export_with_cache(checkpoint, c, folder / f"{c}.onnx", fixed_width=args.width,
                                     cache=EXPORT_CACHE).path for c in COMPONENTS}
        write_clip_tokenizer(model / "tokenizer", folder / "tokenizer.json")
        tokenizer = PromptTokenizer(folder / "tokenizer.json")
        scale = float(checkpoint.vae.config.scaling_factor)
        # Calibration: convert's (guided runs of the first prompts of its list) and get's (8 shipped images).
        convert_set = capture_calibration_set(checkpoint, CalibrationSettings(
            prompts=MUSIC_PROMPTS[: args.prompts], width=args.width, vae_samples=args.prompts))
        get_set = calibration_feeds(fp32, tokenizer, checkpoint.scheduler_config, scale,
                                    CalibrationPlan(width=args.width))
        hybrid_set = calibration_feeds(fp32, tokenizer, checkpoint.scheduler_config, scale,
                                       CalibrationPlan(width=args.width, guided_runs=2))
        # Held out: guided runs of other prompts, and other pieces' spectrograms noised at random timesteps.
        held_runs = capture_calibration_set(checkpoint, CalibrationSettings(
            prompts=HELD_OUT[:4], width=args.width, vae_samples=4, seed=7))
        held_images = _held_out_images(fp32, tokenizer, checkpoint.scheduler_config, scale, args.width, folder)
        rows = []
        for component in COMPONENTS:
            scores = []
            for name, feeds in (("convert", convert_set.for_component(component)),
                                ("get, forward process only", get_set[component]),
                                ("get + 2 guided runs' ends (the qnn default)", hybrid_set[component])):
                out = folder / f"{name}-{component}.onnx"
                quantize_qnn(fp32[component], out, component, feeds)
                scores.append((name, len(feeds), [
                    component_snr_db(fp32[component], out, held_runs.for_component(component)[:8]),
                    component_snr_db(fp32[component], out, held_images[component][:8])]))
            rows.append((component, scores))
    lines = ["# qnn calibration: model get's (forward process, no UNet call) vs model convert's (guided runs)", "",
             f"{before} at the start; {machine_line()} at the end. Tiny test checkpoint (random weights), fixed "
             f"{args.width} px exports, w8a16 QDQ, scored on ONNX Runtime's CPU. Command: "
             "`python tests/benchmarks/bench_calibration_qnn.py`.", "",
             "| model | calibration | samples | SNR dB on held-out guided runs | SNR dB on held-out noised "
             "spectrograms |", "|---|---|---:|---:|---:|"]
    for component, scores in rows:
        for name, count, (runs, images) in scores:
            lines.append(f"| {component} | {name} | {count} | {runs:.2f} | {images:.2f} |")
    publish(lines, args.out)


def _held_out_images(fp32, tokenizer, scheduler_config, scale, width, folder: Path) -> dict[str, list]:
    """`calibration_feeds` on fluidsynth pieces from held-out seeds (tests/music_corpus.py, >= 1000)."""
    from music_corpus import piece, spectrogram

    from engine.model_get import calibration
    from engine.model_get.calibration import CalibrationPlan, calibration_feeds

    images = folder / "held-out"
    images.mkdir()
    for seed in range(1000, 1004):
        spectrogram(piece(seed), images / f"piece-{seed}.png")
    shipped, calibration.IMAGES = calibration.IMAGES, images
    try:
        return calibration_feeds(fp32, tokenizer, scheduler_config, scale,
                                 CalibrationPlan(images=4, timesteps=2, width=width, seed=99))
    finally:
        calibration.IMAGES = shipped


if __name__ == "__main__":
    main()
