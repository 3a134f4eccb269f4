"""`model get` against `model convert` at full SD 1.5 size: time, peak memory, and what each int8 model keeps.

    python tests/benchmarks/bench_model_get.py [--out FILE] [--skip-convert]

A full-size random-weight checkpoint in riffusion-model-v1's layout (written once under .cache/, ~4.3 GB)
is served by the local Hub (tests/fake_hub.py) as riffusion/riffusion-model-v1. In one run:

1. `riffstudio model get --precision fp32 FOLDER`: the fp32 reference, poured into SD 1.5's shipped templates;
2. `riffstudio model get riffusion/riffusion-model-v1 --precision int8`: download over loopback, then the
   build; the JSON progress lines' arrival times split the two;
3. `riffstudio model convert FOLDER --precision int8` (the baseline: torch export, calibration on guided
   denoising runs);
4. each int8 model of both bundles scored against the fp32 reference on held-out inputs: prompts not in the
   calibration list, spectrograms of fluidsynth pieces from seeds neither calibration saw
   (tests/music_corpus.py, seeds >= 1000), noised at timesteps drawn at random, and Gaussian latents of the
   sampler's prior for the VAE decoder.

Wall time and the peak RSS of each command's whole process tree (polled every 0.2 s) are measured in
fresh processes. Writes tests/benchmarks/results/model-get-full.md. About an hour on 2 cores (model
convert is most of it). `--skip-convert` reuses the convert bundle and the numbers of the run that made it
(kept under .cache/bench-model-get/; the table names that run's date): the SNR comparison is still made in
this run, on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from report import RESULTS, machine_line, publish

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

WORK = REPO / ".cache" / "bench-model-get"
HELD_OUT_PROMPTS = ("warm analog synth bass with a slow filter sweep", "tight funk drums, ghost notes, 96 bpm",
                    "lush string pad in d minor", "distorted surf guitar twang", "glitchy idm percussion",
                    "soft jazz brushes and vibraphone", "steel drum calypso melody", "male choir chant")
MODELS = ("text_encoder", "unet", "vae_decoder")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and every process below it (MB)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def run(command: list[str], env: dict[str, str]) -> dict:
    """Run `command`; its wall and CPU time, peak tree RSS, and the arrival time of each stdout line."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=REPO)
    peak = 0.0
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic() - started, line)
                                                          for line in process.stdout), daemon=True)
    reader.start()
    while True:
        peak = max(peak, tree_rss_mb(process.pid))
        done, status, usage = os.wait4(process.pid, os.WNOHANG)
        if done:
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.2)
    reader.join()
    stderr = process.stderr.read()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {stderr[-2000:]}")
    # CPU seconds of the command and every process it waited for: what the work costs, whatever else ran.
    return {"seconds": time.monotonic() - started, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak,
            "lines": lines}


def held_out_feeds(fp32: Path, latent_scale: float) -> dict[str, list[dict[str, np.ndarray]]]:
    from music_corpus import piece, spectrogram

    from engine.model_get.calibration import calibration_images
    from engine.sessions import SessionSettings, create_session
    from engine.tokenizer import PromptTokenizer

    ids = PromptTokenizer(fp32 / "tokenizer.json").encode([*HELD_OUT_PROMPTS, ""])
    text = create_session(fp32 / "text_encoder.onnx", SessionSettings())
    embeddings = [text.run(None, {"input_ids": row[None]})[0] for row in ids]
    with tempfile.TemporaryDirectory() as work:
        for seed in range(1000, 1004):
            spectrogram(piece(seed), Path(work) / f"piece-{seed}.png")
        from engine.model_get import calibration

        shipped, calibration.IMAGES = calibration.IMAGES, Path(work)
        try:
            images = calibration_images(4, 512)
        finally:
            calibration.IMAGES = shipped
    encoder = create_session(fp32 / "vae_encoder.onnx", SessionSettings())
    latents = [encoder.run(None, {"image": image})[0][:, :4] for image in images]
    rng = np.random.default_rng(1234)
    alphas = None
    from engine.schedulers.noise import TrainingNoise

    config = json.loads((fp32 / "manifest.json").read_text())["scheduler"]
    alphas = TrainingNoise.from_config(config).alphas_cumprod()
    unet = []
    for number, latent in enumerate(latents):
        for t in rng.integers(0, 1000, 2):
            alpha = np.float32(alphas[t])
            noise = rng.standard_normal(latent.shape, dtype=np.float32)
            sample = (np.sqrt(alpha) * latent * np.float32(latent_scale) + np.sqrt(1 - alpha) * noise)
            unet.append({"sample": sample.astype(np.float32), "timestep": np.array([t], np.float32),
                         "encoder_hidden_states": embeddings[number if t % 2 else -1]})
    prior = [{"latent": (rng.standard_normal((1, 4, 64, 64), dtype=np.float32) / np.float32(latent_scale))}
             for _ in range(4)]
    return {"text_encoder": [{"input_ids": row[None]} for row in ids], "unet": unet,
            "vae_decoder (spectrogram latents)": [{"latent": latent} for latent in latents],
            "vae_decoder (prior latents)": prior}


def snr_table(fp32: Path, bundles: dict[str, Path], feeds: dict[str, list]) -> list[str]:
    from engine.bundle.reference import snr_db
    from engine.sessions import SessionSettings, create_session

    def outputs(bundle: Path, component: str, samples: list) -> np.ndarray:
        session = create_session(bundle / f"{component}.onnx", SessionSettings())
        return np.concatenate([session.run(None, sample)[0] for sample in samples])

    rows = ["| model (held-out inputs) | samples | " + " | ".join(f"{name} SNR dB" for name in bundles)
            + " | difference dB |", "|---|---:|" + "---:|" * len(bundles) + "---:|"]
    for label, samples in feeds.items():
        component = label.split(" ")[0]
        reference = outputs(fp32, component, samples)
        scores = [snr_db(reference, outputs(bundle, component, samples)) for bundle in bundles.values()]
        rows.append(f"| {label} | {len(samples)} | " + " | ".join(f"{s:.2f}" for s in scores)
                    + f" | {scores[0] - scores[-1]:+.2f} |")
    return rows


def main() -> None:
    from fake_hub import FakeHub, FakeRepo
    from random_sd_model import cached_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "model-get-full.md")
    parser.add_argument("--skip-convert", action="store_true", help="reuse an earlier model convert bundle")
    args = parser.parse_args()
    before = machine_line()
    model = cached_model("full", seed=7)
    WORK.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "ui.cli.main"]
    results = {}
    repo = FakeRepo("riffusion/riffusion-model-v1", model)
    with tempfile.TemporaryDirectory(dir=WORK) as home, FakeHub([repo]) as hub:
        env = {**os.environ, **hub.env(), "XDG_CACHE_HOME": f"{home}/cache", "XDG_DATA_HOME": f"{home}/data",
               "HF_HOME": f"{home}/hf"}
        fp32 = WORK / "get-fp32"
        results["model get fp32 (folder)"] = run([*cli, "model", "get", str(model), "--precision", "fp32", "--out",
                                                 str(fp32)], env)
        print("get fp32", results["model get fp32 (folder)"]["seconds"], flush=True)
        get_int8 = WORK / "get-int8"
        results["model get int8 (Hub)"] = run([*cli, "model", "get", "--precision", "int8", "--out", str(get_int8),
                                              "--json"], env)
        print("get int8", results["model get int8 (Hub)"]["seconds"], flush=True)
        convert_int8 = WORK / "convert-int8"
        measured = WORK / "convert-int8.json"  # its run's numbers, kept for --skip-convert
        if args.skip_convert and (convert_int8 / "manifest.json").is_file() and measured.is_file():
            earlier = json.loads(measured.read_text())
            results[f"model convert int8 (folder), run of {earlier['date']}"] = earlier
        else:
            result = run([*cli, "model", "convert", str(model), "--precision", "int8", "--out", str(convert_int8)],
                         env)
            results["model convert int8 (folder)"] = result
            measured.write_text(json.dumps({**{k: result[k] for k in ("seconds", "cpu", "peak_mb")},
                                            "date": time.strftime("%Y-%m-%d"), "machine": machine_line()}))
            print("convert int8", result["seconds"], flush=True)
    get_lines = results["model get int8 (Hub)"]["lines"]
    downloaded = max(t for t, line in get_lines if '"bytes"' in line)
    download_bytes = max(json.loads(line)["total"] for _, line in get_lines if '"bytes"' in line)
    build = results["model get int8 (Hub)"]["seconds"] - downloaded
    convert = next((r for name, r in results.items() if name.startswith("model convert")), None)
    lines = ["# `model get` vs `model convert` (full SD 1.5 sizes, random weights)", "",
             f"{before} at the start; {machine_line()} at the end. Command: "
             "`python tests/benchmarks/bench_model_get.py`. Weights: tests/random_sd_model.py `full` preset, "
             "seed 7, safetensors fp32, served by the local Hub (loopback).", "",
             "| command | wall s | of which download s | conversion after download s | CPU s (whole command) | "
             "peak RSS of the process tree MB |", "|---|---:|---:|---:|---:|---:|"]
    for name, result in results.items():
        split = (f"{downloaded:.1f} | {build:.1f}" if name.startswith("model get int8") else
                 f"- | {result['seconds']:.1f}")
        lines.append(f"| {name} | {result['seconds']:.1f} | {split} | {result['cpu']:.0f} | {result['peak_mb']:.0f} |")
    if convert:
        get_cpu = results["model get int8 (Hub)"]["cpu"]
        lines += ["", f"Conversion after download: model get {build:.0f} s against model convert "
                  f"{convert['seconds']:.0f} s: **{convert['seconds'] / build:.1f}x** faster in wall time; in CPU "
                  f"time (download included for get, so its ratio is a floor) {get_cpu:.0f} s against "
                  f"{convert['cpu']:.0f} s: **{convert['cpu'] / get_cpu:.1f}x**. Download: "
                  f"{download_bytes / 1e9:.2f} GB in {downloaded:.0f} s over loopback."]
    scale = json.loads((fp32 / "manifest.json").read_text())["latent_scale_factor"]
    feeds = held_out_feeds(fp32, scale)
    lines += ["", "SNR of each int8 model against the fp32 bundle, on inputs neither calibration saw "
              "(difference: model get minus model convert):", ""]
    lines += snr_table(fp32, {"model get int8": get_int8, "model convert int8": convert_int8}, feeds)
    manifests = {name: json.loads((path / "manifest.json").read_text())["components"]
                 for name, path in (("get", get_int8), ("convert", convert_int8))}
    lines += ["", "Each bundle's own score at build time (its manifest's snr_db_vs_fp32, on its own calibration "
              "samples): " + "; ".join(
                  f"{c}: get {manifests['get'][c]['validation'].get('snr_db_vs_fp32', '-')}, convert "
                  f"{manifests['convert'][c]['validation'].get('snr_db_vs_fp32', '-')}" for c in MODELS)]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
