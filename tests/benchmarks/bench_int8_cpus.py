"""int8 VAE decoder schemes on both kinds of x86 CPU: SNR against fp32 on final latents of real generations.

    python tests/benchmarks/bench_int8_cpus.py [--bundle FP32_BUNDLE | --preset full] [--width PX] [--prompts N]

ONNX Runtime's u8 x s8 kernels sum pairs of products in saturating 16 bits on AVX2-only CPUs
(VPMADDUBSW) and in 32 bits with VNNI, so one int8 model gives two accuracies. Each scheme is calibrated
on the same latents (other seeds than the ones scored), then scored natively (this machine's CPU, timed)
and on an emulated AVX2-only AMD Zen 2 (qemu-user, tests/cpu_emulation.py: SNR only, emulated time means
nothing). Baseline in the same run: the fp32 decoder's own time. Default bundle: the suite's tiny fp32 one.
`--preset full`: SD 1.5's full sizes (random weights) without a bundle: diffusers makes the final latents
(DPM-Solver++ 2M Karras, 15 steps, guidance 7) and only the VAE decoder is exported, so it takes minutes,
not the hour a full conversion takes. Writes tests/benchmarks/results/int8-cpus-<name>.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from report import RESULTS, machine_line, publish

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

SCHEMES = ("static_qdq_u8s7", "static_qdq_u8s8")
PROMPTS = ("funky slap bass, 100 bpm", "ambient synth pads, slow, dreamy", "techno kick and hi-hats, 128 bpm",
           "jazzy piano trio, brushed drums", "heavy metal riff with double kick drums", "lofi hip hop beat")


def final_latents(generator, prompts, width: int, seed: int) -> list[np.ndarray]:
    from engine.generation.settings import GenerationSettings

    scale = np.float32(generator.manifest.latent_scale_factor)
    return [(generator.generate(GenerationSettings(prompt=p, seed=seed + i, width=width)).latents / scale)
            .astype(np.float32) for i, p in enumerate(prompts)]


def full_size_inputs(prompts, width: int) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """The full-size VAE decoder exported to fp32 ONNX, and final latents (calibration, scored) of
    guided generations by the full-size random UNet through diffusers."""
    from types import SimpleNamespace

    import torch
    from conftest import cached_bundle
    from diffusers import DPMSolverMultistepScheduler
    from random_sd_model import build_pipeline

    from engine.export.isolated_export import export_isolated
    from engine.tokenizer import PromptTokenizer

    pipeline = build_pipeline("full")
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config, use_karras_sigmas=True,
                                                                 algorithm_type="dpmsolver++")
    tokenizer = PromptTokenizer(cached_bundle("fp32") / "tokenizer.json")  # the CLIP vocabulary, any size

    work = REPO / ".cache" / "bench-int8-cpus"

    def latents(seed: int) -> list[np.ndarray]:
        cached = work / f"latents-{seed}-{width}-{len(prompts)}.npz"
        if cached.is_file():
            with np.load(cached) as data:
                return [data[str(i)] for i in range(len(prompts))]
        out = []
        for i, prompt in enumerate(prompts):
            with torch.no_grad():
                embed = [pipeline.text_encoder(torch.from_numpy(tokenizer.encode([text]).astype(np.int64)))[0]
                         for text in (prompt, "")]
                result = pipeline(prompt_embeds=embed[0], negative_prompt_embeds=embed[1], height=512, width=width,
                                  num_inference_steps=15, guidance_scale=7.0, output_type="latent",
                                  generator=torch.Generator().manual_seed(seed + i))
            out.append((result.images.numpy() / pipeline.vae.config.scaling_factor).astype(np.float32))
            print(f"latents {seed + i}", flush=True)
        work.mkdir(parents=True, exist_ok=True)
        np.savez(cached, **{str(i): x for i, x in enumerate(out)})
        return out

    model = work / "vae_decoder.onnx"
    if not model.is_file():
        export_isolated(SimpleNamespace(vae=pipeline.vae), "vae_decoder", model, fixed_width=None)
    return model, latents(1000), latents(0)


def native_seconds(model: Path, latents: list[np.ndarray]) -> float:
    from engine.sessions import SessionSettings, create_session

    session = create_session(model, SessionSettings())
    session.run(None, {"latent": latents[0]})
    times = []
    for latent in latents * 3:
        start = time.perf_counter()
        session.run(None, {"latent": latent})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="an fp32 bundle (default: the test suite's tiny one)")
    parser.add_argument("--preset", choices=("tiny", "full"), default="tiny",
                        help="full: SD 1.5 sizes through diffusers, no bundle needed")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from cpu_emulation import AVX2_ONLY_CPU, QEMU
    from test_int8_every_cpu import run_model

    from engine.bundle import open_bundle
    from engine.bundle.quantize import quantize_int8
    from engine.bundle.reference import snr_db
    from engine.cpu_features import cpu_info
    from engine.generation.pipeline import LoopGenerator

    prompts = PROMPTS[: args.prompts]
    if args.preset == "full":
        fp32, calibration_latents, scored = full_size_inputs(prompts, args.width)
        name = "full"
    else:
        if args.bundle is None:
            from conftest import cached_bundle

            args.bundle = cached_bundle("fp32")
        generator = LoopGenerator(open_bundle(args.bundle))
        fp32 = args.bundle / "vae_decoder.onnx"
        calibration_latents = final_latents(generator, prompts, args.width, seed=1000)
        scored = final_latents(generator, prompts, args.width, seed=0)
        name = "tiny" if "test-bundles" in str(args.bundle) else args.bundle.name
    calibration = [{"latent": x} for x in calibration_latents]
    cpus = ["native", *(["avx2-only"] if QEMU else [])]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        np.savez(work / "latents.npz", **{str(i): x for i, x in enumerate(scored)})
        run_model("native", fp32, work / "latents.npz", work / "fp32.npz")
        with np.load(work / "fp32.npz") as data:
            expected = np.stack([data[k] for k in sorted(data.files, key=int)])
        base = native_seconds(fp32, scored)
        rows.append(("fp32 (baseline)", "-", "-", base, 1.0))
        for scheme in SCHEMES:
            model = work / f"{scheme}.onnx"
            quantize_int8(fp32, model, "vae_decoder", scheme=scheme, calibration=calibration)
            seconds = native_seconds(model, scored)
            for cpu in cpus:
                run_model(cpu, model, work / "latents.npz", work / f"{scheme}-{cpu}.npz", timeout=3600)
                with np.load(work / f"{scheme}-{cpu}.npz") as data:
                    actual = np.stack([data[k] for k in sorted(data.files, key=int)])
                rows.append((scheme, cpu, f"{snr_db(expected, actual):.2f}",
                             seconds if cpu == "native" else None, base / seconds if cpu == "native" else None))
            print(rows[-1], flush=True)
    native = cpu_info().describe()
    lines = [f"# int8 VAE decoder on two kinds of x86 CPU ({name} SD 1.5 VAE, random weights, 512 x {args.width})", "",
             f"Native: {machine_line()}. Emulated: {AVX2_ONLY_CPU} (AVX2, no AVX-512, no VNNI) under qemu-user"
             f"{'' if QEMU else ' (not installed: no emulated rows)'}; SNR only there. "
             f"Command: `python tests/benchmarks/bench_int8_cpus.py {' '.join(sys.argv[1:])}`. SNR against the fp32 "
             f"decoder on the final latents of {len(prompts)} real generations (default sampler), each scheme "
             "calibrated on the same other-seed latents. Random weights: this judges the kernels' arithmetic, not "
             "musical quality.", "",
             "| scheme | CPU | SNR vs fp32 dB | native s per decode | vs fp32 |", "|---|---|---|---|---|"]
    for scheme, cpu, snr, seconds, speedup in rows:
        cpu_name = {"native": native.split(",")[0] + " (native)", "avx2-only": f"{AVX2_ONLY_CPU} (emulated)"}.get(
            cpu, cpu)
        lines.append(f"| {scheme} | {cpu_name} | {snr} | {'' if seconds is None else f'{seconds:.3f}'} | "
                     f"{'' if speedup is None else f'{speedup:.2f}x'} |")
    publish(lines, args.out or RESULTS / f"int8-cpus-{name}.md")


if __name__ == "__main__":
    main()
