"""The Windows workflow (.github/workflows/windows.yml) cannot run here; what can be checked is: it is a valid
workflow (actionlint: syntax, expressions, runner labels, shell), it has none of the known security faults
(zizmor, offline, as an auditor: unpinned actions, credentials persisted, template injection, secrets outside
an environment), it runs the README's test command and the app folder's self-test on both Windows runners,
and it signs with the repository's secrets only, never for a pull request."""

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
            subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--persona", "auditor", str(workflow)],
                           capture_output=True, text=True, timeout=120)]


def test_the_windows_workflow_passes_actionlint_and_zizmor():
    for result in lint(WORKFLOW):
        assert result.returncode == 0, result.args[0] + ":\n" + result.stdout + result.stderr


@pytest.mark.parametrize(("fault", "old", "new"), [
    ("an unknown runner", "windows-11-arm]", "windows-11-armm]"),
    ("a bad expression", "${{ matrix.runner }}", "${{ matrix.runer }}"),
    ("an action by tag", "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "actions/checkout@v4"),
    ("a template injection", "run: python bootstrap.py test --durations=25",
     'run: echo "${{ github.head_ref }}" && python bootstrap.py test --durations=25'),
    ("the signing secrets outside their environment", "    environment: windows-signing\n", ""),
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


def test_signing_uses_the_secrets_of_one_environment_never_for_a_pull_request_and_none_are_in_the_repository():
    jobs = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]
    with_secrets = {name for name, job in jobs.items() if "secrets." in yaml.safe_dump(job)}
    assert with_secrets == {"signed"}
    signed = jobs["signed"]
    assert signed["environment"] == "windows-signing" and signed["if"] == "github.event_name != 'pull_request'"
    assert signed["strategy"]["matrix"]["runner"] == ["windows-latest", "windows-11-arm"]
    runs = [step.get("run", "") for step in signed["steps"]]
    assert sum("packaging/sign.ps1" in run for run in runs) == 2  # the app folder, then the installer
    assert "packaging/sign.ps1 dist/riffstudio" in " ".join(step.get("run", "") for step in jobs["app-folder"]["steps"])
    for step in signed["steps"]:
        if "secrets." in yaml.safe_dump(step):
            assert "packaging/sign.ps1" in step["run"] and "${{" not in step["run"]  # secrets via env only
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not [name for name in tracked if name.lower().endswith((".pfx", ".p12", ".snk", ".key"))]
    script = (REPO / "packaging" / "sign.ps1").read_text(encoding="utf-8")
    assert "$env:SIGNING_CERTIFICATE" in script and "::notice title=unsigned::" in script
