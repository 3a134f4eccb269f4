"""Model-bundle benchmark: each component on this CPU, torch fp32 (the baseline) beside ONNX Runtime.

    python tests/benchmarks/bench_bundle.py [--preset full|tiny] [--runs N] [--out FILE]

`--preset full` (the default) uses full SD 1.5 sizes with random weights (an 860M-parameter UNet):
the model is written once under .cache/ (about 4 GB), converted to fp32 and int8 bundles (minutes),
then every (component, variant) is measured in its own fresh process, so session-creation time and
peak/steady RSS are that variant's alone. Latency is the median of N calls after one warm-up, at
riffusion's shapes: UNet batch 2 (classifier-free guidance), 512 x 512 images. SNR is against ORT
fp32 on the same inputs. Writes a Markdown table (default tests/benchmarks/results/bundle-<preset>.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from report import RESULTS, machine_line, publish

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from engine.bundle.reference import snr_db  # noqa: E402

COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
VARIANTS = ("torch-fp32", "ort-fp32", "ort-int8")
BATCH = {"text_encoder": 1, "unet": 2, "vae_decoder": 1, "vae_encoder": 1}
WORK = REPO / ".cache" / "bench-bundles" / "outputs"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM: unlike ru_maxrss, not inherited from the parent at fork)."""
    return _status_mb("VmHWM")


def inputs(component: str, hidden: int) -> dict[str, np.ndarray]:
    """Each component's inputs; the VAE's are real (from a generation, see `realistic_vae_inputs`): static
    quantisation is calibrated on real latents, and random ones would score it on inputs it never sees."""
    rng = np.random.default_rng(0)
    batch = BATCH[component]
    real = WORK / f"{component}-input.npy"
    if component.startswith("vae") and real.exists():
        return {"latent" if component == "vae_decoder" else "image": np.load(real)}
    if component == "text_encoder":
        return {"input_ids": rng.integers(0, 49407, (batch, 77)).astype(np.int32)}
    if component == "unet":
        return {"sample": rng.standard_normal((batch, 4, 64, 64), dtype=np.float32),
                "timestep": np.full((batch,), 500.0, np.float32),
                "encoder_hidden_states": rng.standard_normal((batch, 77, hidden), dtype=np.float32)}
    if component == "vae_decoder":
        return {"latent": rng.standard_normal((batch, 4, 64, 64), dtype=np.float32)}
    return {"image": rng.uniform(-1, 1, (batch, 3, 512, 512)).astype(np.float32)}


def measure(variant: str, component: str, model: str, runs: int, save: str | None) -> dict:
    """One variant of one component, in this (fresh) process."""
    base = rss_mb()
    hidden = json.loads((Path(model) / "manifest.json").read_text())["text_hidden_size"] \
        if variant != "torch-fp32" else None
    start = time.perf_counter()
    if variant == "torch-fp32":
        import torch

        from engine.export.onnx_export import wrap_component

        torch.set_num_threads(os.cpu_count() or 1)
        module = wrap_component(load_torch_component(Path(model), component), component)
        hidden = module.model.config.cross_attention_dim if component == "unet" else None
        feeds = inputs(component, hidden)

        def call() -> np.ndarray:
            with torch.no_grad():
                tensors = [torch.from_numpy(v) for v in feeds.values()]
                return module(*tensors).numpy()
    else:
        from engine.bundle import open_bundle
        from engine.sessions import SessionSettings, create_session

        bundle = open_bundle(model)
        session = create_session(bundle.component_path(component),
                                 bundle.session_settings(SessionSettings(provider="cpu")))
        feeds = inputs(component, hidden)

        def call() -> np.ndarray:
            return session.run(None, feeds)[0]
    created = time.perf_counter() - start
    steady = rss_mb()
    output = call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        output = call()
        times.append(time.perf_counter() - start)
    if save:
        np.save(save, output)
    return {"create_s": created, "latency_s": statistics.median(times), "steady_mb": steady - base,
            "peak_mb": peak_rss_mb(), "base_mb": base}


def load_torch_component(folder: Path, component: str) -> SimpleNamespace:
    """Only the one model a component needs, so its RSS is its own."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    if component == "text_encoder":
        return SimpleNamespace(text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder").eval())
    if component == "unet":
        return SimpleNamespace(unet=UNet2DConditionModel.from_pretrained(folder / "unet").eval())
    return SimpleNamespace(vae=AutoencoderKL.from_pretrained(folder / "vae").eval())


def run_child(variant: str, component: str, model: Path, runs: int, save: Path | None) -> dict:
    command = [sys.executable, __file__, "--measure", variant, component, str(model), "--runs", str(runs)]
    if save:
        command += ["--save", str(save)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{variant} {component} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bundle_steady_rss(bundle: Path) -> float:
    """RSS of one process with all four sessions of the bundle open."""
    script = "\n".join([
        f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests' / 'benchmarks')!r}]",
        "from bench_bundle import rss_mb",
        "from engine.bundle import open_bundle",
        "from engine.sessions import SessionSettings, create_session",
        f"bundle = open_bundle({str(bundle)!r})",
        "base = rss_mb()",
        "settings = bundle.session_settings(SessionSettings())",
        f"sessions = [create_session(bundle.component_path(c), settings) for c in {COMPONENTS!r}]",
        "print(rss_mb() - base)"])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def realistic_vae_inputs(bundle: Path) -> None:
    """A short generation with the fp32 bundle: its final latents feed the VAE decoder, its image the encoder."""
    from engine.bundle import open_bundle
    from engine.generation.pipeline import LoopGenerator
    from engine.generation.settings import GenerationSettings

    generator = LoopGenerator(open_bundle(bundle))
    result = generator.generate(GenerationSettings(prompt="funky slap bass, 100 bpm", seed=0, steps=10))
    scale = np.float32(generator.manifest.latent_scale_factor)
    np.save(WORK / "vae_decoder-input.npy", (result.latents / scale).astype(np.float32))
    image = (result.image.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)[None]
    np.save(WORK / "vae_encoder-input.npy", np.ascontiguousarray(image))


def ensure_bundles(preset: str) -> tuple[Path, dict[str, Path]]:
    from random_sd_model import cached_model

    from engine.export.convert import ConvertSettings, convert

    source = cached_model(preset)
    bundles = {}
    for precision in ("fp32", "int8"):
        out = REPO / ".cache" / "bench-bundles" / f"{preset}-{precision}"
        if not (out / "manifest.json").exists():
            print(f"converting {preset} to {precision} (minutes for full size)...", flush=True)
            start = time.perf_counter()
            convert(ConvertSettings(source=str(source), out=out, precision=precision,
                                    export_cache=REPO / ".cache" / "bench-exports"))
            print(f"  {time.perf_counter() - start:.0f} s", flush=True)
        bundles[precision] = out
    return source, bundles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=("full", "tiny"), default="full")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--measure", nargs=3, metavar=("VARIANT", "COMPONENT", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, runs=args.runs, save=args.save)))
        return

    source, bundles = ensure_bundles(args.preset)
    work = WORK
    work.mkdir(parents=True, exist_ok=True)
    realistic_vae_inputs(bundles["fp32"])
    rows = []
    for component in COMPONENTS:
        outputs = {}
        for variant in VARIANTS:
            model = source if variant == "torch-fp32" else bundles[variant.split("-")[1]]
            save = work / f"{component}-{variant}.npy"
            print(f"measuring {component} {variant}...", flush=True)
            result = run_child(variant, component, model, args.runs, save)
            outputs[variant] = np.load(save)
            file_mb = (sum(e["size"] for e in json.loads((model / "manifest.json").read_text())["files"]
                           if e["path"].startswith(component + ".onnx")) / 1e6) if variant != "torch-fp32" else None
            quant = "" if variant != "ort-int8" else json.loads(
                (model / "manifest.json").read_text())["components"][component]["quantization"]
            rows.append((component, variant, quant, file_mb, result))
        base = rows[-3][4]["latency_s"]
        for row in rows[-3:]:
            row[4]["speedup"] = base / row[4]["latency_s"]
            row[4]["snr"] = snr_db(outputs["ort-fp32"], outputs[row[1]])
    totals = {precision: bundle_steady_rss(path) for precision, path in bundles.items()}
    write_table(args, rows, totals)


def write_table(args: argparse.Namespace, rows: list, totals: dict[str, float]) -> None:
    lines = [f"# Model-bundle benchmark ({args.preset} SD 1.5 sizes, random weights)", "",
             f"{machine_line()} (at the end); "
             f"onnxruntime {__import__('onnxruntime').__version__}; "
             f"median of {args.runs} calls after a warm-up; UNet batch 2, 512 x 512. "
             f"Command: `python tests/benchmarks/bench_bundle.py --preset {args.preset}`.", "",
             "| component | variant | scheme | file MB | create s | peak RSS MB | steady RSS MB | latency s "
             "| vs torch | SNR vs ORT fp32 dB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for component, variant, quant, file_mb, r in rows:
        snr = "ref" if variant == "ort-fp32" else f"{r['snr']:.1f}"
        lines.append(f"| {component} | {variant} | {quant or '-'} | {'-' if file_mb is None else f'{file_mb:.0f}'} "
                     f"| {r['create_s']:.2f} | {r['peak_mb']:.0f} | {r['steady_mb']:.0f} | {r['latency_s']:.3f} "
                     f"| {r['speedup']:.2f}x | {snr} |")
    lines += ["", "Whole bundle loaded (all four sessions, CPU provider), steady RSS: "
              + ", ".join(f"{p} {mb:.0f} MB" for p, mb in totals.items()), ""]
    publish(lines, args.out or RESULTS / f"bundle-{args.preset}.md")


if __name__ == "__main__":
    main()
