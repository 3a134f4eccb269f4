"""The app window's start: time to its first paint and what its process has loaded by then, here and at an older
commit (the baseline), in the same run.

    .venv/bin/python tests/benchmarks/bench_window_start.py      # writes tests/benchmarks/results/window-start.md

Options: --baseline COMMIT (default 4bd6e44, before the window stopped loading the codec: issue #24 item 5),
--repeats N (default 7), --out FILE.

The baseline's tree is `git archive`d into a temporary folder (no worktree or branch is made). Both trees run the
same probe, tests/window_probe.py of this tree, which imports `ui.app` from whatever tree is first on the path: a
fresh interpreter per run, Qt offscreen, every platformdirs folder a fresh temporary one. Each tree gets one
unmeasured warm-up (its bytecode compiled, the files in the page cache), then the runs alternate, baseline first;
medians. Two times: from the process's launch to the first paint (what a producer waits for, interpreter start
included) and from `import ui.app.window` to the first paint (the app's own share). And the modules in
sys.modules at that paint: how many, and which of the notable ones (the codec's DSP, FFTs, model runtimes) each
tree has loaded.

Not collected by pytest (the file name does not start with test_).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "window_probe.py"
BASELINE = "4bd6e44"
# What a window's process needs only when it exports, decodes or runs a model.
NOTABLE = ("onnxruntime", "torch", "scipy", "numpy.fft", "pypocketfft", "engine.sessions", "engine.generation",
           "engine.export", "engine.codec.decode", "engine.codec.encode", "engine.codec.fft", "engine.codec.stft",
           "engine.codec.griffin_lim", "engine.codec.pghi", "engine.codec.metrics", "engine.schedulers", "PIL",
           "soundfile")


def checkout(commit: str, folder: Path) -> Path:
    """`commit`'s tracked files in `folder` (git archive: the repository's worktrees and branches are untouched)."""
    archive = folder / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], stdout=out, check=True)
    tree = folder / commit
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def probe(tree: Path) -> dict:
    """One fresh window process importing `tree`'s code: the probe's report plus the launch-to-paint time."""
    env = {**os.environ, "PYTHONPATH": str(tree), "QT_QPA_PLATFORM": "offscreen"}
    launched = time.time()
    result = subprocess.run([sys.executable, str(PROBE)], cwd=tree, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the window probe failed in {tree}:\n{result.stderr}")
    report = json.loads(result.stdout.splitlines()[-1])
    report["from_launch"] = report["started"] - launched
    return report


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


def cpu_name() -> str:
    """lscpu's model name and the CPUs this process may use."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {len(os.sched_getaffinity(0))} CPUs usable"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import RESULTS, publish

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="rs-bench-window-") as temp:
        trees = {f"baseline {args.baseline}": checkout(args.baseline, Path(temp)),
                 f"this tree ({head}{' + changes' if dirty else ''})": REPO}
        load_before = os.getloadavg()[0]
        for tree in trees.values():
            probe(tree)  # warm-up: bytecode and page cache
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():
                runs[name].append(probe(tree))
        load_after = os.getloadavg()[0]

    lines = [
        "# App window start: time to the first paint, and the modules loaded by then",
        "",
        f"`.venv/bin/python tests/benchmarks/bench_window_start.py` ({time.strftime('%Y-%m-%d')}). CPU: "
        f"{cpu_name()}; Python {platform.python_version()}, {platform.system()}, Qt offscreen; load average "
        f"{load_before:.2f} before, {load_after:.2f} after. Medians of {args.repeats} fresh processes per tree, run "
        "alternately after one warm-up each.",
        "",
        "| tree | launch to first paint (s) | import ui.app.window to first paint (s) | modules loaded | engine "
        "modules | notable modules loaded |",
        "|---|---|---|---|---|---|",
    ]
    for name, reports in runs.items():
        modules = reports[-1]["modules"]
        notable = ", ".join(loaded(modules, NOTABLE)) or "none"
        lines.append(f"| {name} | {statistics.median(r['from_launch'] for r in reports):.3f} | "
                     f"{statistics.median(r['seconds'] for r in reports):.3f} | "
                     f"{statistics.median(len(r['modules']) for r in reports):.0f} | "
                     f"{sum(m.split('.')[0] == 'engine' for m in modules)} | {notable} |")
    (before, after) = (set(reports[-1]["modules"]) for reports in runs.values())
    (old, new) = (statistics.median(r["from_launch"] for r in reports) for reports in runs.values())
    lines += [
        "",
        f"This tree against the baseline, launch to first paint: {new - old:+.3f} s ({(new - old) / old:+.0%}).",
        "",
        "Every run's times (s, launch to paint): " + "; ".join(
            f"{name}: {', '.join(format(r['from_launch'], '.3f') for r in reports)}" for name, reports in runs.items()),
        "",
        f"Loaded by the baseline only ({len(before - after)}): {', '.join(sorted(before - after)) or 'none'}.",
        "",
        f"Loaded by this tree only ({len(after - before)}): {', '.join(sorted(after - before)) or 'none'}.",
    ]
    publish(lines, args.out or RESULTS / "window-start.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
