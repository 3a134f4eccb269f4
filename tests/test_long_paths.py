"""A path too long for the system is one line that says what to do, before any work, with nothing left
behind (issue 25): on POSIX a name over 255 bytes (ENAMETOOLONG); on Windows a path past MAX_PATH, which
Windows reports as its own error numbers (206, or 3 for a folder it cannot name), simulated here as the other
Windows errors are (tests/test_windows_simulated.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from engine.errors import InvalidInputError, PathTooLongError

pytestmark = pytest.mark.usefixtures("home")

TOO_LONG = "x" * 300  # one name over the 255 bytes every POSIX file system allows
FAST = 'steps = 2\nscheduler = "euler"\nquality = "draft"\nbpm = 200\nbeats = 2\n'


def windows_error(winerror: int, filename: str) -> OSError:
    """The OSError Windows raises: errno from its C runtime's map (both of these are ENOENT), and `winerror`."""
    error = FileNotFoundError(errno.ENOENT, "The system cannot find the path specified", filename)
    error.winerror = winerror
    return error


def test_windows_own_numbers_for_a_long_path_are_read_as_too_long():
    long_folder = "C:\\Users\\Zoë\\Music\\" + "stems " * 45
    too_long = PathTooLongError.of(windows_error(206, long_folder + "\\kick.wav"), windows=True)
    assert too_long is not None and "enable long paths" in str(too_long) and "shorter output folder" in str(too_long)
    assert PathTooLongError.of(windows_error(3, long_folder), windows=True) is not None  # a folder it cannot name
    assert PathTooLongError.of(windows_error(3, "C:\\gone\\kick.wav"), windows=True) is None  # truly missing
    assert PathTooLongError.of(windows_error(5, long_folder), windows=True) is None  # access denied is not length
    assert PathTooLongError.of(OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + TOO_LONG)) is not None


def test_a_long_path_refused_by_windows_when_the_check_writes_is_one_line(monkeypatch, tmp_path):
    """The check's probe write fails as Windows fails it past MAX_PATH: the line says so, not "cannot write"."""
    import tempfile

    from engine.atomic import check_writable

    def past_max_path(*args, **kwargs):
        raise windows_error(206, str(tmp_path / "kick.wav"))

    monkeypatch.setattr(tempfile, "mkstemp", past_max_path)
    with pytest.raises(PathTooLongError, match="too long a path"):
        check_writable(tmp_path / "kick.wav")


def check_refused(result, workdir: Path, before: set[Path]) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == InvalidInputError.exit_code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("riffstudio: ") and "too long a path" in lines[0], result.stderr
    assert "shorter output folder" in lines[0]
    assert set(workdir.rglob("*")) == before  # nothing made: no folder, no temporary, no partial loop


@pytest.fixture
def input_loop(tmp_path) -> Path:
    import numpy as np
    import soundfile as sf

    path = tmp_path / "in.wav"
    sf.write(path, np.zeros((44100, 2), np.float32), 44100)
    return path


@pytest.mark.parametrize("out", [f"{TOO_LONG}/loop.wav", f"{TOO_LONG}.wav", f"ok/{TOO_LONG}/loop.wav"])
def test_loop_with_an_output_path_too_long_says_so_in_one_line(run_cli, tmp_path, input_loop, out):
    before = set(tmp_path.rglob("*"))
    check_refused(run_cli("loop", input_loop, "--bpm", "120", "--out", tmp_path / out), tmp_path, before)


@pytest.mark.parametrize("out", [f"{TOO_LONG}/loop.wav", f"{TOO_LONG}.wav"])
def test_generate_with_an_output_path_too_long_says_so_in_one_line(run_cli, tmp_path, fp32_bundle, out):
    before = set(tmp_path.rglob("*"))
    result = run_cli("generate", "funky slap bass", "--model", fp32_bundle, "--steps", "2", "--out", tmp_path / out)
    check_refused(result, tmp_path, before)


def test_batch_with_an_output_folder_too_long_says_so_in_one_line(run_cli, tmp_path, fp32_bundle):
    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "kick"\nseeds = [1]\n')
    before = set(tmp_path.rglob("*"))
    check_refused(run_cli("batch", presets, "--out", tmp_path / "packs" / TOO_LONG), tmp_path, before)
    assert os.listdir(tmp_path) == ["pack.toml"]


def test_batch_whose_longest_loop_path_is_past_max_path_stops_before_the_first_loop(monkeypatch, tmp_path,
                                                                                   fp32_bundle):
    """The output folder is short enough, but a preset's folder and loop name take the path past Windows'
    limit: the run stops with the long-path line before it renders anything (not at that loop's write, hours in)."""
    import tempfile

    from plugin.batch import InProcessRenderer, run_batch

    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nname = "a long preset name for a '
                       f'very long folder"\nprompt = "warm dusty tape loop of jazz piano chords"\nseeds = [1]\n')
    out = tmp_path / "packs"
    limit = len(str(out)) + 70  # MAX_PATH as Windows counts it: past the folder's own files, short of a loop's
    real_mkstemp = tempfile.mkstemp

    def windows_mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if len(os.path.join(str(dir), (prefix or "") + "12345678" + (suffix or ""))) > limit:
            raise windows_error(206, os.path.join(str(dir), prefix or ""))
        return real_mkstemp(suffix, prefix, dir, text)

    monkeypatch.setattr(tempfile, "mkstemp", windows_mkstemp)
    with pytest.raises(PathTooLongError, match="too long a path"):
        run_batch(presets, out, InProcessRenderer())
    assert not out.exists()  # refused before the output folder was made: no loop rendered, nothing written


def test_batch_tries_the_name_a_loop_takes_with_its_key(monkeypatch, tmp_path, fp32_bundle):
    """A loop on the grid takes its key into its name once found ("..._Amin_seed1.wav"): a planned name just short
    of the limit, with room for no key, stops the run before the first loop too."""
    import tempfile

    from engine.atomic import MARKER
    from plugin.batch import InProcessRenderer, plan, run_batch

    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "dusty keys"\n'
                       'seeds = [1]\n')
    out = tmp_path / "packs"
    planned = out / plan(presets, out)[1]["items"][0]["audio"]
    longest_temporary = os.path.join(str(planned.parent), f".{planned.name}.12345678{MARKER}{planned.suffix}")
    limit = len(longest_temporary) + 3  # the planned name fits; with "_C#min" it would not
    real_mkstemp = tempfile.mkstemp

    def windows_mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if len(os.path.join(str(dir), (prefix or "") + "12345678" + (suffix or ""))) > limit:
            raise windows_error(206, os.path.join(str(dir), prefix or ""))
        return real_mkstemp(suffix, prefix, dir, text)

    monkeypatch.setattr(tempfile, "mkstemp", windows_mkstemp)
    with pytest.raises(PathTooLongError, match="too long a path"):
        run_batch(presets, out, InProcessRenderer())
    assert not out.exists()
