"""`python packaging/check_wheels.py`: does riffstudio's run-time dependency set resolve to binary wheels
on every platform we ship for? Needs only the package index.

For each target (Windows ARM64 and x64, macOS ARM64, Linux x86_64) the dependencies are read from
pyproject.toml, their markers evaluated for that target (pip's --platform does not: it would judge them
for this machine), and `pip install --dry-run --only-binary=:all: --platform ...` resolves them. So a new
dependency, or a floor, with no wheel for Windows ARM64 fails here, not on a producer's laptop. One line
per target; a failure names the package and the platform. The targets run in parallel.

pip's --platform picks wheels for the target but evaluates every marker for this machine (a Linux
x86_64 host pulls hf-xet into a Windows ARM64 resolution, because `platform_machine == 'x86_64'` holds
here). So pip runs with its marker environment replaced by the target's (PIP_MARKERS below), and the
transitive dependencies resolve as on the target. The machine's pip configuration (extra indexes,
constraints) is ignored, as a producer's pip would not have it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = "3.11"  # the oldest Python we support
TIMEOUT_S = 240.0
# pip with the target's PEP 508 environment: its vendored packaging reads default_environment() at
# every Marker.evaluate, so replacing that one function is enough (a pip without it fails loudly).
PIP_MARKERS = """
import json, sys
from pip._vendor.packaging import markers
target = json.loads(sys.argv.pop(1))
markers.default_environment = lambda: dict(target)
from pip._internal.cli.main import main
sys.exit(main())
"""


@dataclass(frozen=True)
class Target:
    name: str
    platforms: tuple[str, ...]  # pip --platform tags, most specific first
    markers: dict[str, str]  # the PEP 508 environment on that platform
    python: str = PYTHON


def _env(sys_platform: str, system: str, machine: str, os_name: str, python: str = PYTHON) -> dict[str, str]:
    return {"sys_platform": sys_platform, "platform_system": system, "platform_machine": machine,
            "os_name": os_name, "python_version": python, "python_full_version": f"{python}.9",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "implementation_version": f"{python}.9"}


# Linux: pip does not expand a manylinux_2_28 tag to the older manylinux tags it implies; list them.
MANYLINUX = (*(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)), "manylinux2014_x86_64")
# Measured here: Windows ARM64 needs Python 3.12 (tokenizers -> huggingface-hub -> PyYAML, whose
# win_arm64 wheels start at cp312), macOS ARM64 needs macOS 14 (onnxruntime's arm64 wheels are
# macosx_14_0; nothing of ours resolves on 11, 12 or 13).
TARGETS = {
    "win_arm64": Target("win_arm64", ("win_arm64",), _env("win32", "Windows", "ARM64", "nt", "3.12"), "3.12"),
    "win_amd64": Target("win_amd64", ("win_amd64",), _env("win32", "Windows", "AMD64", "nt")),
    "macosx_14_0_arm64": Target("macosx_14_0_arm64", ("macosx_14_0_arm64",),
                                _env("darwin", "Darwin", "arm64", "posix")),
    "manylinux_2_28_x86_64": Target("manylinux_2_28_x86_64", MANYLINUX, _env("linux", "Linux", "x86_64", "posix")),
}


@dataclass(frozen=True)
class Resolution:
    target: str
    ok: bool
    line: str
    wheels: dict[str, str]  # name -> wheel file
    seconds: float


def runtime_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])


def requirements_for(target: Target, requirements: Sequence[str]) -> list[str]:
    """The requirements that apply on `target` (markers evaluated there), without their markers."""
    from packaging.requirements import Requirement

    chosen = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(target.markers):
            requirement.marker = None
            chosen.append(str(requirement))
    return chosen


def start(target: Target, requirements: Sequence[str], folder: Path) -> tuple[subprocess.Popen, Path]:
    report = folder / f"{target.name}.json"
    command = [sys.executable, "-c", PIP_MARKERS, json.dumps(target.markers), "install", "--dry-run",
               "--ignore-installed", "--only-binary=:all:", "--python-version", target.python, "--implementation", "cp",
               "--target", str(folder / f"{target.name}-target"), "--report", str(report),
               *(arg for tag in target.platforms for arg in ("--platform", tag)), *requirements]
    kept = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in kept}
    env["PIP_CONFIG_FILE"] = os.devnull  # no machine-wide extra indexes or constraints
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return process, report


def finish(target: Target, process: subprocess.Popen, report: Path, began: float) -> Resolution:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return Resolution(target.name, False, f"{target.name}: the package index did not answer within "
                          f"{TIMEOUT_S:g} s", {}, time.monotonic() - began)
    seconds = time.monotonic() - began
    if process.returncode != 0:
        why = why_unresolved(stdout + stderr, target.python)
        return Resolution(target.name, False, f"{target.name}: {why}", {}, seconds)
    items = json.loads(report.read_text(encoding="utf-8"))["install"]
    wheels = {item["metadata"]["name"]: item["download_info"]["url"].rsplit("/", 1)[-1] for item in items}
    not_wheels = [name for name, file in wheels.items() if not file.endswith(".whl")]
    if not_wheels:
        return Resolution(target.name, False, f"{target.name}: {', '.join(not_wheels)} would build from source",
                          wheels, seconds)
    summary = ", ".join(f"{item['metadata']['name']} {item['metadata']['version']}" for item in items
                        if item.get("requested"))
    line = f"{target.name} (Python {target.python}): {len(wheels)} wheels ({summary})"
    return Resolution(target.name, True, line, wheels, seconds)


def why_unresolved(stderr: str, python: str = PYTHON) -> str:
    """pip's reason as one line naming the package: no binary wheel of it, or conflicting requirements."""
    missing = re.search(r"No matching distribution found for (\S+)", stderr)
    if missing:
        return f"{missing.group(1)} has no binary wheel for this platform and Python {python}"
    conflict = re.search(r"Cannot install (.+?) because these package versions have conflicting", stderr)
    if conflict:
        # pip lists every version it tried ("huggingface-hub 0.21.3 depends on pyyaml>=5.1"): the
        # requirement named most often is the one with no wheel.
        needs = re.findall(r"(\S+) \S+ depends on (\S+)", stderr)
        if needs:
            wanted = Counter(b for _, b in needs).most_common(1)[0][0]
            via = next(a for a, b in needs if b == wanted)
            return (f"{conflict.group(1)} cannot be installed: {wanted} (needed by {via}) has no binary wheel "
                    f"for this platform and Python {python}")
        return f"{conflict.group(1)} cannot be resolved to binary wheels (conflicting requirements)"
    errors = [line.removeprefix("ERROR: ") for line in stderr.splitlines() if line.startswith("ERROR")]
    return (errors or [stderr.strip().splitlines()[-1] if stderr.strip() else "pip failed"])[0][:300]


def check(targets: Sequence[str], extra: Sequence[str] = ()) -> list[Resolution]:
    """Resolve every target in parallel. `extra`: requirements added to (or replacing, by name) the
    run-time set, e.g. to prove what a new floor would do."""
    from packaging.requirements import Requirement

    replaced = {Requirement(text).name.lower() for text in extra}
    base = [text for text in runtime_requirements() if Requirement(text).name.lower() not in replaced]
    with tempfile.TemporaryDirectory(prefix="riffstudio-wheels-") as folder:
        began = time.monotonic()
        running = [(TARGETS[name], *start(TARGETS[name], requirements_for(TARGETS[name], [*base, *extra]),
                                          Path(folder)))
                   for name in targets]
        return [finish(target, process, report, began) for target, process, report in running]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python packaging/check_wheels.py", description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", choices=list(TARGETS), help="default: every target")
    parser.add_argument("--with", dest="extra", action="append", default=[], metavar="REQUIREMENT",
                        help="add or replace a requirement (e.g. 'numpy==1.26.4') for this check")
    parser.add_argument("--json", action="store_true", help="one JSON list")
    args = parser.parse_args(argv)
    results = check(args.target or list(TARGETS), args.extra)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        for result in results:
            print(f"{'ok  ' if result.ok else 'FAIL'}  {result.line}  ({result.seconds:.0f} s)")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
