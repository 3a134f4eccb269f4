"""The `riffstudio` command: version, help, and the one-line error contract."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

from engine.version import __version__
from ui.cli.main import COMMANDS, build_parser


def test_version_prints_the_package_version(run_cli):
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"riffstudio {__version__}"


def test_help_lists_exactly_the_registered_commands(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0
    listed = set(re.findall(r"^    (\w+)\s", result.stdout, flags=re.MULTILINE))
    registered = set(build_parser()._subparsers._group_actions[0].choices)
    assert listed == registered
    assert len(registered) == len(COMMANDS)


@pytest.mark.parametrize("args", [("no-such-command",), ("loop",), ("loop", "x.wav", "--bpm", "fast"),
                                  ("engine", "jobs", "--limit"), ("model", "get", "--precision", "fp64")])
def test_a_usage_mistake_is_one_line_that_points_at_the_help(run_cli, args):
    """argparse printed six lines of usage before its message; now one `riffstudio:` line, exit code 2."""
    result = run_cli(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("riffstudio: ") and "--help`" in lines[0], result.stderr


def test_help_imports_no_torch_diffusers_or_transformers():
    code = ("import sys, contextlib, io\n"
            "from ui.cli.main import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help'])\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'PySide6') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_run_time_modules_import_no_torch_diffusers_or_transformers():
    code = ("import sys\n"
            "import ui.app, ui.app.window, engine.codec, engine.generation.loop, engine.generation.interpolate\n"
            "import engine.bundle.check, engine.sessions, engine.schedulers, engine.tokenizer\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.stdout.strip() == "[]"


def test_a_command_imports_its_own_module_and_no_other_command_s(tmp_path):
    image = str(REPO / "tests" / "data" / "golden" / "piano.riffusion.png")
    code = ("import sys\n"
            "from ui.cli.main import main\n"
            f"assert main(['codec', 'decode', {image!r}, {str(tmp_path / 'piano.wav')!r}, '--quality', 'draft']) == 0\n"
            "print(sorted(m for m in sys.modules if m.startswith(('ui.cli.', 'engine.generation', 'engine.process'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "['ui.cli.codec', 'ui.cli.main']"


def test_the_documented_defaults_are_the_defaults():
    """The README's defaults, pinned as literals once: the product's own constants must match what producers
    read (changing the default steps from 7 to 8 passed every test while the README said 7)."""
    from engine.generation.settings import GenerationSettings

    settings = GenerationSettings(prompt="x")
    assert (settings.scheduler, settings.steps, tuple(settings.guidance_interval)) == ("dpmpp_2m_karras", 7,
                                                                                        (0.28, 1000.0))
    readme = (REPO / "README.md").read_text()
    assert "The default (`--speed full`) is `dpmpp_2m_karras` at 7 steps" in readme
    assert "(σ below 0.28" in readme and "(0.28, 1000]" in readme
