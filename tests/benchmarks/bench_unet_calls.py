"""Cost of one UNet call at 512 px: the int8 schemes and the session's shape options, beside the bundle's own.

    .venv/bin/python tests/benchmarks/bench_unet_calls.py [--bundle .cache/bench-bundles/full-int8]

Why: a generation is mostly UNet calls (15 batch-2 calls are ~95% of a loop at full size on 2 cores), so a
cheaper call is worth as much as a step saved. Variants, each in its own process (its own peak RSS):
- `fp32`: the fp32 bundle's UNet (the int8 bundle's `fp32` sibling folder);
- `dynamic_u8_per_channel`: today's int8 UNet (MatMul and Conv int8, run-time activation scales): the baseline;
- `dynamic_u8_matmul`: MatMul/Gemm int8, Conv fp32 (ONNX Runtime's fp32 Conv is NCHWc-blocked, its ConvInteger
  is im2col + integer GEMM), quantised here from the fp32 export once and cached;
- each of those with the free dimensions fixed (`batch`, `latent_width`: a shape-specialised session, which lets
  ONNX Runtime fold shape arithmetic and plan memory once).
Inputs are the same random latents / embeddings for every variant; SNR is against fp32 on them. Writes
`results/unet-calls-<bundle>.md`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "benchmarks")]

from bench_bundle import peak_rss_mb  # noqa: E402
from report import machine_line, publish  # noqa: E402

from engine.bundle.reference import snr_db  # noqa: E402

WORK = REPO / ".cache" / "bench-bundles" / "unet-calls"


def inputs(batch: int, latent_width: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"sample": rng.standard_normal((batch, 4, 64, latent_width)).astype(np.float32),
            "timestep": np.full((batch,), 500, dtype=np.int64),
            "encoder_hidden_states": rng.standard_normal((batch, 77, 768)).astype(np.float32)}


def measure(model: str, fixed: bool, batch: int, latent_width: int, runs: int, save: str) -> dict:
    import onnxruntime as ort

    from engine.sessions import SessionSettings, _common_options

    options = _common_options(SessionSettings())
    if fixed:
        options.add_free_dimension_override_by_name("batch", batch)
        options.add_free_dimension_override_by_name("latent_width", latent_width)
    start = time.perf_counter()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - start
    feeds = inputs(batch, latent_width)
    kinds = {i.name: i.type for i in session.get_inputs()}
    if kinds["timestep"] != "tensor(int64)":
        feeds["timestep"] = feeds["timestep"].astype(np.float32)
    output = session.run(None, feeds)[0]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        output = session.run(None, feeds)[0]
        times.append(time.perf_counter() - start)
    np.save(save, output)
    return {"create_s": created, "latency_s": statistics.median(times), "peak_mb": peak_rss_mb()}


def matmul_only(fp32_unet: Path) -> Path:
    from engine.bundle.quantize import quantize_int8

    out = WORK / "dynamic_u8_matmul" / "unet.onnx"
    if not out.exists():
        print("quantising the UNet: MatMul/Gemm int8, Conv fp32...", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_int8(fp32_unet, out, "unet", scheme="dynamic_u8_matmul")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO / ".cache" / "bench-bundles" / "full-int8")
    parser.add_argument("--fp32-bundle", type=Path)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    latent_width = args.width // 8
    if args.measure:
        model, fixed = args.measure
        print(json.dumps(measure(model, fixed == "fixed", args.batch, latent_width, args.runs, args.save)))
        return
    fp32_bundle = args.fp32_bundle or args.bundle.with_name(args.bundle.name.replace("int8", "fp32"))
    models = {"fp32": fp32_bundle / "unet.onnx", "dynamic_u8_per_channel": args.bundle / "unet.onnx",
              "dynamic_u8_matmul": matmul_only(fp32_bundle / "unet.onnx")}
    WORK.mkdir(parents=True, exist_ok=True)
    rows, outputs = [], {}
    for scheme, model in models.items():
        for shapes in ("dynamic", "fixed"):
            save = WORK / f"out-{scheme}-{shapes}.npy"
            print(f"measuring {scheme} {shapes}...", flush=True)
            command = [sys.executable, __file__, "--measure", str(model), shapes, "--batch", str(args.batch),
                       "--width", str(args.width), "--runs", str(args.runs), "--save", str(save)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise SystemExit(f"{scheme} {shapes} failed:\n{result.stderr[-3000:]}")
            row = json.loads(result.stdout.strip().splitlines()[-1])
            outputs[(scheme, shapes)] = np.load(save)
            rows.append((scheme, shapes, row))
    reference = outputs[("fp32", "dynamic")]
    base = next(r for s, f, r in rows if s == "dynamic_u8_per_channel" and f == "dynamic")["latency_s"]
    lines = [f"# UNet call cost ({args.bundle.name}, batch {args.batch}, {args.width} px)", "",
             f"{machine_line()}. Command: `python tests/benchmarks/bench_unet_calls.py --bundle {args.bundle}`. "
             f"Median of {args.runs} calls after a warm-up, each variant in its own process; SNR of the output "
             "against the fp32 UNet's (dynamic shapes) on the same random inputs. Baseline: the bundle's own "
             "int8 UNet (dynamic_u8_per_channel, dynamic shapes). Random weights: speed is the point here, "
             "the SNR only shows nothing broke.", "",
             "| scheme | shapes | create s | s per call | vs baseline | peak RSS MB | SNR vs fp32 dB |",
             "|---|---|---|---|---|---|---|"]
    for scheme, shapes, row in rows:
        snr = snr_db(reference, outputs[(scheme, shapes)])
        lines.append(f"| {scheme} | {shapes} | {row['create_s']:.2f} | {row['latency_s']:.3f} | "
                     f"{base / row['latency_s']:.2f}x | {row['peak_mb']:.0f} | "
                     f"{'ref' if (scheme, shapes) == ('fp32', 'dynamic') else f'{snr:.1f}'} |")
    publish(lines, args.out or REPO / "tests" / "benchmarks" / "results" / f"unet-calls-{args.bundle.name}.md")


if __name__ == "__main__":
    main()
