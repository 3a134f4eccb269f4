"""The run-time dependency set resolves to binary wheels on every platform we ship for
(packaging/check_wheels.py against the package index), so a floor or a new dependency without a
Windows ARM64 wheel fails here, not on a producer's laptop. Both runs go in parallel: ~30-50 s."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow
SCRIPT = REPO / "packaging" / "check_wheels.py"
TARGETS = {"win_arm64", "win_amd64", "macosx_14_0_arm64", "manylinux_2_28_x86_64"}


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    """Every target with our pyproject, and Windows ARM64 with a numpy that has no ARM64 wheel."""
    commands = {"all": [sys.executable, str(SCRIPT), "--json"],
                "old_numpy": [sys.executable, str(SCRIPT), "--target", "win_arm64", "--with", "numpy==1.26.4"]}
    started = {name: subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, command in commands.items()}
    done = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return done


def test_runtime_dependencies_resolve_to_wheels_on_every_target(runs):
    done = runs["all"]
    results = {r["target"]: r for r in json.loads(done.stdout)}
    assert set(results) == TARGETS
    failed = [r["line"] for r in results.values() if not r["ok"]]
    assert not failed and done.returncode == 0, failed
    for result in results.values():
        assert all(file.endswith(".whl") for file in result["wheels"].values())
    assert "onnxruntime-qnn" in results["win_arm64"]["wheels"]
    assert "onnxruntime-qnn" not in results["macosx_14_0_arm64"]["wheels"]  # markers evaluated per target
    windows_arm = {name.lower(): file for name, file in results["win_arm64"]["wheels"].items()}
    assert all("win_arm64" in file or "none-any" in file for file in windows_arm.values())


def test_a_dependency_without_a_wheel_fails_naming_package_and_platform(runs):
    done = runs["old_numpy"]
    assert done.returncode == 1
    line = done.stdout.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("FAIL  win_arm64") and "numpy==1.26.4" in line and "no binary wheel" in line
