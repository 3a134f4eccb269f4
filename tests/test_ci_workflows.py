"""The Windows workflow (.github/workflows/windows.yml) cannot run here; what can be checked is: it is a valid
workflow (actionlint: syntax, expressions, runner labels, shell), it has none of the known security faults
(zizmor, offline: unpinned actions, credentials persisted, template injection), and it runs the README's
test command and the app folder's self-test on both Windows runners."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "windows.yml"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"needs {name} (the dev extra)")
    return found


def lint(workflow: Path) -> list[subprocess.CompletedProcess]:
    return [subprocess.run([tool("actionlint"), "-no-color", str(workflow)], capture_output=True, text=True,
                           timeout=120),
            subprocess.run([tool("zizmor"), "--offline", "--no-progress", str(workflow)], capture_output=True,
                           text=True, timeout=120)]


def test_the_windows_workflow_passes_actionlint_and_zizmor():
    for result in lint(WORKFLOW):
        assert result.returncode == 0, result.args[0] + ":\n" + result.stdout + result.stderr


@pytest.mark.parametrize(("fault", "old", "new"), [
    ("an unknown runner", "windows-11-arm]", "windows-11-armm]"),
    ("a bad expression", "${{ matrix.runner }}", "${{ matrix.runer }}"),
    ("an action by tag", "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "actions/checkout@v4"),
    ("a template injection", "run: python bootstrap.py test --durations=25",
     'run: echo "${{ github.head_ref }}" && python bootstrap.py test --durations=25'),
])
def test_the_lint_catches_a_broken_workflow(tmp_path, fault, old, new):
    text = WORKFLOW.read_text(encoding="utf-8")
    assert old in text, fault
    broken = tmp_path / ".github" / "workflows" / "windows.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert any(result.returncode != 0 for result in lint(broken)), fault


def test_both_windows_runners_run_the_readmes_test_command_and_the_app_folders_self_test():
    jobs = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]
    for job in ("test", "app-folder"):
        assert jobs[job]["strategy"]["matrix"]["runner"] == ["windows-latest", "windows-11-arm"]
    steps = " ".join(step.get("run", "") for step in jobs["test"]["steps"])
    assert "python bootstrap.py test" in steps and "python bootstrap.py test" in (REPO / "README.md").read_text()
    assert "packaging\\build.py" in " ".join(step.get("run", "") for step in jobs["app-folder"]["steps"])
