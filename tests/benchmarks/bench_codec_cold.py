"""Cold-start codec benchmark: a whole `riffstudio codec decode` process beside riffusion's recipe's.

    .venv/bin/python tests/benchmarks/bench_codec_cold.py       # writes tests/benchmarks/results/codec-cold.md

What a producer waits for when a command (or the engine's first job, or a batch item in a new
process) decodes one image: interpreter start, imports, the first decode with whatever it sets up,
and the WAV write. Two measurements, same run:

- Whole process: `python -m ui.cli.main codec decode IMAGE OUT.wav` (riffstudio's CLI) beside a
  process running riffusion's recipe in plain numpy on the same image (bench_codec's `Baseline`:
  pseudo-inverse of the filterbank, 32 Griffin-Lim iterations at the 17640-point FFT; everything a
  fresh process of it must do) and writing the same WAV. Each is a fresh interpreter, run
  alternately, `--repeats` times; medians. The recipe borrows riffusion's filterbank formula and pixel
  curve from our codec package, so its process also imports that package, which a plain numpy script
  would not: that surplus (a fresh `import bench_codec` minus a fresh `import numpy, scipy.fft,
  soundfile, PIL.Image`, same run) is taken off its time, so the ratio does not flatter us.
- In a fresh interpreter: the first default decode of a 513-column image, then warm ones (the
  median); the ratio says how much one-time set-up is left.

Not collected by pytest (the file name does not start with test_).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELD_OUT = REPO / "tests" / "data" / "riffusion" / "clip_2_start_103694_ms_duration_5678_ms.png"
GOLDEN = REPO / "tests" / "data" / "golden" / "piano.riffusion.png"
WARM_DECODES = 3
TARGET_RATIO = 8.0  # whole process, recipe / ours
TARGET_FIRST = 1.2  # first decode / warm decode


def run_recipe(image_path: Path, out: Path) -> None:
    """The recipe's whole job in this (fresh) process: read the image, decode it, write a 24-bit WAV."""
    import numpy as np
    import soundfile
    from bench_codec import Baseline
    from PIL import Image

    image = np.asarray(Image.open(image_path))
    audio = Baseline().decode(image)
    soundfile.write(out, np.clip(audio, -1.0, 1.0), 44100, subtype="PCM_24")


def timed_process(command: list[str], cwd: Path) -> tuple[float, str]:
    """Wall-clock seconds of a fresh interpreter running `command`, and what it printed."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return seconds, result.stdout


def ours_command(image: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ui.cli.main", "codec", "decode", str(image), str(out)]


def recipe_command(image: Path, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--recipe", str(image), str(out)]


def import_seconds(modules: str, cwd: Path) -> float:
    """Wall-clock seconds of a fresh interpreter that only imports `modules` (comma-separated)."""
    return timed_process([sys.executable, "-c", f"import {modules}"], cwd)[0]


def decoded_in(stdout: str) -> float:
    """The decode time the CLI prints ("... decoded in 0.41 s; ...")."""
    return float(stdout.split("decoded in ")[1].split(" s")[0])


def first_and_warm(image: Path, cwd: Path) -> list[float]:
    """Decode times in one fresh interpreter: the first, then WARM_DECODES warm ones."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_codec_decode import FRESH_PROCESS_DECODES  # the script the suite's cold-start test runs

    _, stdout = timed_process([sys.executable, "-c", FRESH_PROCESS_DECODES, str(image), str(1 + WARM_DECODES)], cwd)
    return json.loads(stdout)["times"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes of each kind (default 5)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--recipe", nargs=2, type=Path, metavar=("IMAGE", "OUT"),
                        help=argparse.SUPPRESS)  # the baseline's child process
    args = parser.parse_args()
    if args.recipe:
        run_recipe(*args.recipe)
        return 0

    from report import RESULTS, machine_line, publish

    sys.path.insert(0, str(REPO))
    load_before = os.getloadavg()
    ours, ours_decode, recipe, surplus, fresh = [], [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for run in range(args.repeats):
            seconds, stdout = timed_process(ours_command(HELD_OUT, work / "ours.wav"), REPO)
            ours.append(seconds)
            ours_decode.append(decoded_in(stdout))
            recipe.append(timed_process(recipe_command(HELD_OUT, work / "recipe.wav"), REPO)[0])
            surplus.append(import_seconds("bench_codec", Path(__file__).parent)
                           - import_seconds("numpy, scipy.fft, soundfile, PIL.Image", Path(__file__).parent))
            print(f"run {run + 1}: ours {ours[-1]:.2f} s (decode {ours_decode[-1]:.2f} s), "
                  f"recipe {recipe[-1]:.2f} s (surplus imports {surplus[-1]:.2f} s)", flush=True)
        for _ in range(args.repeats):  # the ratio's noise is ~0.1: as many interpreters as processes
            fresh.append(first_and_warm(GOLDEN, work))
            print("first, warm decodes: " + ", ".join(f"{t:.3f}" for t in fresh[-1]), flush=True)
    load_after = os.getloadavg()

    import numpy as np
    import scipy
    from PIL import Image

    ours_s, recipe_s = statistics.median(ours), statistics.median(recipe)
    decode_s, surplus_s = statistics.median(ours_decode), max(0.0, statistics.median(surplus))
    ratio = (recipe_s - surplus_s) / ours_s
    firsts = [times[0] for times in fresh]
    warms = [statistics.median(times[1:]) for times in fresh]
    first_ratio = statistics.median(first / warm for first, warm in zip(firsts, warms, strict=True))
    columns = Image.open(HELD_OUT).size[0]
    lines = [
        "# Spectrogram codec: cold start",
        "",
        f"`.venv/bin/python tests/benchmarks/bench_codec_cold.py` on {datetime.date.today().isoformat()}: "
        f"{machine_line()} (at the end), Python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        "",
        f"Whole process, cold: a fresh interpreter decoding `tests/data/riffusion/{HELD_OUT.name}` ({columns} "
        f"columns, {(columns - 1) / 100:.2f} s, held out from the tuning clips) at the default quality and "
        f"writing a 24-bit WAV; median of {args.repeats}, run alternately. Ours = `python -m ui.cli.main codec "
        "decode IMAGE OUT.wav`; recipe = riffusion's recipe plainly in numpy (bench_codec.py's baseline: "
        "filterbank pseudo-inverse, 32 Griffin-Lim iterations, 17640-point FFT), all of it inside its process, "
        f"less the {surplus_s:.2f} s its process spends importing our codec package (see the script's docstring).",
        "",
        "| process | whole process s | of which decode s | ratio |",
        "|---|---:|---:|---:|",
        f"| riffusion's recipe, numpy | {recipe_s:.2f} - {surplus_s:.2f} = {recipe_s - surplus_s:.2f} | | 1.0x |",
        f"| `riffstudio codec decode` | {ours_s:.2f} | {decode_s:.2f} | **{ratio:.1f}x** |",
        "",
        f"First decode in a fresh interpreter (`tests/data/golden/{GOLDEN.name}`, 513 columns, default "
        f"quality) vs the median of the {WARM_DECODES} warm decodes after it, in {len(fresh)} fresh interpreters:",
        "",
        "| interpreter | first s | warm s | first / warm |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {index + 1} | {first:.3f} | {warm:.3f} | {first / warm:.2f} |"
              for index, (first, warm) in enumerate(zip(firsts, warms, strict=True))]
    checks = [
        (f"whole process >= {TARGET_RATIO:g}x faster than the recipe's: {ratio:.1f}x", ratio >= TARGET_RATIO),
        (f"first decode <= {TARGET_FIRST:g}x a warm one: {first_ratio:.2f}x (median)", first_ratio <= TARGET_FIRST),
    ]
    lines += ["", "Targets:", ""] + [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks]
    publish(lines, args.out or RESULTS / "codec-cold.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
