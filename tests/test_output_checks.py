"""An output that cannot be written fails at once: one line, a non-zero exit, nothing written, no model work.

Through the real `riffstudio` command in a subprocess, as a producer runs it. Tests run as root, whom
chmod does not stop, so the unwritable places are ones the kernel refuses to anyone: a folder that cannot
be created under /proc, /sys itself, and a "folder" that is a regular file.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, EXPORT_CACHE

from engine.errors import InvalidInputError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses Linux's /proc and /sys")

FAST = ("--steps", "2", "--width", "64")
PLACES = ("folder that cannot be created", "folder that cannot be written", "regular file")
# Each command with every output it writes put at PLACE: (arguments, the output path).
COMMANDS = {
    "generate --out": lambda place, here, model, source: (
        "generate", "x", "--model", model, "--out", place / "a.wav", *FAST),
    "generate --image": lambda place, here, model, source: (
        "generate", "x", "--model", model, "--out", here / "ok.wav", "--image", place / "a.png", *FAST),
    "codec encode": lambda place, here, model, source: (
        "codec", "encode", DATA / "audio" / "speech.wav", place / "a.png"),
    "codec decode": lambda place, here, model, source: (
        "codec", "decode", DATA / "golden" / "drums.riffusion.png", place / "a.wav", "--quality", "draft"),
    "interpolate --out-dir": lambda place, here, model, source: (
        "interpolate", "a", "b", "--model", model, "--out-dir", place / "clips", "--count", "2", *FAST),
    "model convert --out": lambda place, here, model, source: (
        "model", "convert", source, "--out", place / "bundle", "--export-cache", EXPORT_CACHE),
}
MODEL_COMMANDS = ("generate --out", "generate --image", "interpolate --out-dir", "model convert --out")


def unwritable_place(kind: str, tmp_path: Path) -> Path:
    """A folder no output can go into, even for root."""
    if kind == "folder that cannot be created":
        return Path("/proc/riff")
    if kind == "folder that cannot be written":
        return Path("/sys")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n")
    return notes


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder` (hidden ones too), files with their bytes: what a refused command leaves."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def assert_refused_in_one_line(result: subprocess.CompletedProcess, place: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == InvalidInputError.exit_code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("riffstudio: "), result.stderr
    assert str(place) in lines[0], lines[0]


@pytest.mark.parametrize("kind", PLACES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_unwritable_output_is_refused_in_one_line_and_nothing_is_written(
        run_cli, tmp_path, fp32_bundle, tiny_sd_dir, command, kind):
    place = unwritable_place(kind, tmp_path)
    before = tree(tmp_path)
    result = run_cli(*COMMANDS[command](place, tmp_path, fp32_bundle, tiny_sd_dir))
    assert_refused_in_one_line(result, place)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_unwritable_output_is_refused_before_the_model_is_opened(run_cli, tmp_path, command):
    """With no model at all, the output's error still comes first: the check runs before any model work."""
    missing = tmp_path / "no-such-model"
    place = unwritable_place("folder that cannot be created", tmp_path)
    result = run_cli(*COMMANDS[command](place, tmp_path, missing, missing), timeout=60)
    assert_refused_in_one_line(result, place)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("command", "output"), [
    ("generate --image", "a.png"), ("codec encode", "a.png"), ("codec decode", "a.wav")])
def test_output_that_is_an_existing_folder_is_refused(run_cli, tmp_path, fp32_bundle, command, output):
    place = tmp_path / "out"
    (place / output).mkdir(parents=True)
    before = tree(tmp_path)
    result = run_cli(*COMMANDS[command](place, tmp_path, fp32_bundle, None))
    assert_refused_in_one_line(result, place / output)
    assert "is a folder" in result.stderr
    assert tree(tmp_path) == before


def run_with_file_size_limit(args: tuple, cwd: Path, limit: int) -> subprocess.CompletedProcess:
    """`riffstudio ARGS` where no file may grow past `limit` bytes: a full disk, as the kernel reports it."""
    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "ui.cli.main", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit_file_size)


@pytest.mark.parametrize("command", ["generate --image", "codec encode", "codec decode"])
def test_write_that_fails_after_the_work_is_one_line_and_leaves_nothing(tmp_path, fp32_bundle, command):
    out = tmp_path / "out"
    out.mkdir()
    result = run_with_file_size_limit(COMMANDS[command](out, out, fp32_bundle, None), tmp_path, limit=16 << 10)
    errors = [line for line in result.stderr.splitlines() if line.startswith("riffstudio:")]
    assert result.returncode == InvalidInputError.exit_code, result.stderr
    assert len(errors) == 1 and "cannot write" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


# Each command that reads a file, writing over that very file: (arguments given the source, the output).
OVER_INPUT = {
    "loop": lambda source, out, model: ("loop", source, "--bpm", "120", "--bars", "1", "--out", out),
    "generate --init-audio": lambda source, out, model: (
        "generate", "x", "--model", model, "--init-audio", source, "--out", out, *FAST),
    "generate --init-audio --engine": lambda source, out, model: (
        "generate", "x", "--model", model, "--init-audio", source, "--out", out, "--engine", *FAST),
    "generate --init-audio --bpm": lambda source, out, model: (
        "generate", "x", "--model", model, "--init-audio", source, "--out", out, "--bpm", "120", "--bars", "1",
        *FAST),
    "codec encode": lambda source, out, model: ("codec", "encode", source, out),
}
SPELLINGS = ("the same path", "a hard link", "a symbolic link to it", "another spelling of the path")


def output_spelling(source: Path, spelling: str) -> Path:
    if spelling == "the same path":
        return source
    if spelling == "another spelling of the path":
        return source.parent / "." / "sub" / ".." / source.name
    other = source.with_name("other" + source.suffix)
    if spelling == "a hard link":
        other.hardlink_to(source)
    else:
        other.symlink_to(source)
    return other


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("command", list(OVER_INPUT))
def test_an_output_that_is_the_input_is_refused_and_the_input_is_kept(run_cli, tmp_path, fp32_bundle, command,
                                                                      spelling):
    """`loop in.wav --out in.wav` exited 0 and the recording was gone: now one line, before any work."""
    (tmp_path / "sub").mkdir()
    source = tmp_path / "source.wav"
    source.write_bytes((DATA / "audio" / "drums.wav").read_bytes())
    out = output_spelling(source, spelling)
    before = tree(tmp_path)
    result = run_cli(*OVER_INPUT[command](source, out, fp32_bundle), timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == InvalidInputError.exit_code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("riffstudio: ") and "is the input" in lines[0], result.stderr
    assert tree(tmp_path) == before


@pytest.mark.parametrize(("args", "words"), [
    (("loop", "{folder}", "--bpm", "120", "--bars", "1", "--out", "{here}/a.wav"), "is a folder"),
    (("codec", "decode", "{folder}", "{here}/a.wav"), "is a folder"),
    (("codec", "decode", str(DATA / "golden" / "drums.riffusion.png"), ""), "no output file name"),
])
def test_a_folder_for_a_file_and_an_empty_name_say_so(run_cli, tmp_path, args, words):
    """"does not exist" for a folder that does, and "cannot write audio to :" for an empty name, before."""
    (tmp_path / "folder").mkdir()
    result = run_cli(*(a.format(folder=tmp_path / "folder", here=tmp_path) for a in args), timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == InvalidInputError.exit_code and len(lines) == 1 and words in lines[0], result.stderr
