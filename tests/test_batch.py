"""`riffstudio batch`: preset files checked before anything is written, results exactly once across kill -9,
Ctrl+C after the current item, changed presets re-rendered alone, and the same results through the engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile
from conftest import REPO

from engine.file_hash import file_sha256
from plugin.batch import SUMMARY, EngineRenderer, InProcessRenderer, run_batch
from plugin.grid_loop import is_complete
from plugin.presets import PresetFileError, expand, read_presets
from ui.cli.main import main

# Fast items on the tiny model: 2 beats at 200 bpm paint a 144 px image; 2 Euler steps.
FAST = 'steps = 2\nscheduler = "euler"\nquality = "draft"\nbpm = 200\nbeats = 2\n'


pytestmark = pytest.mark.usefixtures("home")  # the user folders in a private home; its engines stopped after


def six_items(folder: Path, bundle: Path, *, fixed_seeds: bool = False) -> Path:
    """Six loops in three presets; with fixed_seeds every seed is given (a drawn seed differs between runs)."""
    draw = "seeds = [7, 8]" if fixed_seeds else "count = 2"
    path = folder / "pack.toml"
    path.write_text(f"""# six loops
[defaults]
model = "{bundle}"
{FAST}
[[preset]]
name = "funk bass"
prompt = "funky slap bass"
seeds = [1, 2, 3]

[[preset]]
prompt = "lofi piano / rain"
{draw}
format = "flac"

[[preset]]
prompt = "CON"
seeds = [5]
bpm = 180
""", encoding="utf-8")
    return path


def result_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name not in (SUMMARY, "summary.csv"))


def check_complete(out: Path, count: int) -> dict:
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["counts"] == {"done": count}
    files = result_files(out)
    assert not [p for p in files if "partial" in p.name or p.name.startswith(".")]  # nothing half-written left
    assert len(files) == 2 * count  # each result exactly once: its audio and its sidecar, nothing else
    keys = set()
    for entry in summary["items"]:
        audio = out / entry["audio"]
        assert is_complete(audio, entry["key"]), entry
        sidecar = json.loads(audio.with_suffix(".json").read_text())
        keys.add(sidecar["batch"]["key"])
        info = soundfile.info(audio)
        assert info.frames == sidecar["audio"]["samples"] == sidecar["fit"]["samples"] * info.samplerate // 44100
    assert len(keys) == count
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert len(csv_lines) == count + 1 and all(",done," in line for line in csv_lines[1:])
    return summary


def _batch_process(presets: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ui.cli.main", "batch", str(presets), "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _wait_done(out: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            summary = json.loads((out / SUMMARY).read_text())
            if summary.get("counts", {}).get("done", 0) >= count:
                return
        except (OSError, ValueError):
            pass
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{count} items not done within {timeout} s")


@pytest.mark.slow
def test_batch_killed_after_the_second_item_resumes_exactly_once(tmp_path, fp32_bundle):
    presets = six_items(tmp_path, fp32_bundle)
    out = tmp_path / "pack"
    process = _batch_process(presets, out)
    _wait_done(out, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = json.loads((out / SUMMARY).read_text())
    kept = {e["audio"]: (out / e["audio"]).stat().st_ino for e in first["items"] if e["state"] == "done"}
    assert len(kept) >= 2
    seeds_drawn = first["seeds"]

    again = subprocess.run([sys.executable, "-m", "ui.cli.main", "batch", str(presets), "--out", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{6 - len(kept)} rendered, {len(kept)} already complete" in again.stdout
    summary = check_complete(out, 6)
    assert summary["seeds"] == seeds_drawn  # count = 2 drew its seeds once
    for audio, inode in kept.items():
        assert (out / audio).stat().st_ino == inode  # complete results were kept, not redone
    names = [e["audio"] for e in summary["items"]]
    assert "funk-bass/funky-slap-bass_200bpm_2beats_seed1.wav" in names
    assert any(n.startswith("con-/con-_180bpm") for n in names)
    # A third run has nothing to do.
    assert main(["batch", str(presets), "--out", str(out)]) == 0
    assert result_files(out) == sorted(out / n for n in names for n in (n, str(Path(n).with_suffix(".json"))))


@pytest.mark.slow
def test_ctrl_c_stops_after_the_current_item(tmp_path, fp32_bundle):
    presets = six_items(tmp_path, fp32_bundle)
    out = tmp_path / "pack"
    process = _batch_process(presets, out)
    deadline = time.monotonic() + 120
    while not (out / SUMMARY).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # inside the first item
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "stopping after the current item" in stderr
    summary = json.loads((out / SUMMARY).read_text())
    done = [e for e in summary["items"] if e["state"] == "done"]
    assert 1 <= len(done) <= 2 and summary["counts"]["pending"] == 6 - len(done)
    for entry in done:
        assert is_complete(out / entry["audio"], entry["key"])
    assert len(result_files(out)) == 2 * len(done)


def test_changed_presets_render_only_what_changed(tmp_path, fp32_bundle):
    presets = tmp_path / "two.toml"
    text = f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "kick"\nseeds = [1]\n\n' \
           '[[preset]]\nprompt = "snare"\nseeds = [1]\n'
    presets.write_text(text)
    out = tmp_path / "out"
    renderer = InProcessRenderer()
    first = run_batch(presets, out, renderer, say=lambda _: None)
    assert (first.done, first.skipped) == (2, 0)
    kick = out / "kick" / "kick_200bpm_2beats_seed1.wav"
    kick_hash = file_sha256(kick)
    presets.write_text(text.replace('"snare"', '"clap"'))
    second = run_batch(presets, out, renderer, say=lambda _: None)
    assert (second.done, second.skipped, second.failed) == (1, 1, 0)
    assert file_sha256(kick) == kick_hash
    assert (out / "clap" / "clap_200bpm_2beats_seed1.wav").is_file()
    assert [e["label"] for e in json.loads((out / SUMMARY).read_text())["items"]] == ["kick (seed 1)", "clap (seed 1)"]
    # A damaged result is not taken as done: checked, not assumed.
    data = bytearray(kick.read_bytes())
    data[-10] ^= 0xFF
    kick.write_bytes(bytes(data))
    third = run_batch(presets, out, renderer, say=lambda _: None)
    assert (third.done, third.skipped) == (1, 1)
    assert file_sha256(kick) == kick_hash  # rendered again, the same loop


def test_a_lost_or_damaged_summary_renders_nothing_twice_and_draws_no_new_seeds(tmp_path, fp32_bundle):
    """The results' sidecars are the record: without summary.json (deleted, or damaged) a rerun keeps every
    result, renders no `-2` copies, and a `count = N` preset keeps the seeds it drew."""
    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "kick"\ncount = 2\n\n'
                       '[[preset]]\nprompt = "snare"\nseeds = [4]\n')
    out = tmp_path / "out"
    renderer = InProcessRenderer()
    first = run_batch(presets, out, renderer, say=lambda _: None)
    assert first.done == 3
    files = {p: file_sha256(p) for p in result_files(out)}
    seeds = json.loads((out / SUMMARY).read_text())["seeds"]
    for damage in ("deleted", "damaged"):
        if damage == "deleted":
            (out / SUMMARY).unlink()
        else:
            (out / SUMMARY).write_bytes(b"\x00{not json")
        again = run_batch(presets, out, renderer, say=lambda _: None)
        assert (again.done, again.skipped) == (0, 3), damage
        assert {p: file_sha256(p) for p in result_files(out)} == files
        assert json.loads((out / SUMMARY).read_text())["seeds"] == seeds


def test_batch_removes_only_its_own_leftovers(tmp_path, fp32_bundle):
    """A producer's files in the output folder stay, whatever their names; what a killed writer of ours left
    (our marker, beside a name we planned) goes."""
    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "kick"\nseeds = [1]\n')
    out = tmp_path / "out"
    mine = [out / ".notes.partial.txt", out / "kick" / ".draft.partial", out / "kick" / ".x.wav.abcdefgh.partial.wav",
            out / "kick" / ".other.wav.abcdefgh.riffstudio-partial.wav", out / "deep" / ".a.partial"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the producer's")
    ours = [out / "kick" / ".kick_200bpm_2beats_seed1.wav.k1l2m3n4.riffstudio-partial.wav",
            out / "kick" / ".kick_200bpm_2beats_seed1.json.k1l2m3n4.riffstudio-partial.json",
            out / ".summary.json.a_b_c_d_.riffstudio-partial.json"]
    messages: list[str] = []
    run_batch(presets, out, InProcessRenderer(), say=messages.append)  # plans the names
    for path in ours:
        path.write_text("half")
    result = run_batch(presets, out, InProcessRenderer(), say=messages.append)
    assert result.skipped == 1
    assert "removed 3 unfinished temporary file(s) from an interrupted run" in messages
    assert all(path.read_text() == "the producer's" for path in mine)
    assert not any(path.exists() for path in ours)


def test_a_missing_init_audio_is_refused_before_anything_renders(tmp_path, capsys, fp32_bundle):
    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "kick"\nseeds = [1]\n\n'
                       '[[preset]]\nprompt = "riff"\nseeds = [1]\ninit_audio = "gone.wav"\n')
    out = tmp_path / "out"
    line = presets.read_text().splitlines().index('init_audio = "gone.wav"') + 1
    assert main(["batch", str(presets), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"riffstudio: pack.toml:{line}: init_audio: ") and "gone.wav is not a file" in err, err
    assert err.count("\n") == 1
    assert not out.exists()


MALFORMED = {
    "bad TOML": ('[[preset]]\nprompt = "kick"\nbpm = \n', 3, "not valid TOML"),
    "unknown key": ('[[preset]]\nprompt = "kick"\n\ntempo = 100\n', 4, "tempo: unknown key"),
    "bpm as words": ('[defaults]\nsteps = 2\n[[preset]]\nprompt = "kick"\nbpm = "fast"\n', 5, "bpm: must be a number"),
    "seeds and count": ('[[preset]]\nprompt = "kick"\nseeds = [1, 2]\ncount = 3\n', 4,
                        "count: give either seeds or count"),
    "out of range": ('[[preset]]\nprompt = "kick"\nbpm = 100\n\nsteps = 0\n', 5, "steps: steps must be"),
    "bad meter in defaults": ('[defaults]\nmeter = "4"\n[[preset]]\nprompt = "kick"\nbpm = 100\n', 2, "meter:"),
    "no prompt": ('[[preset]]\nname = "x"\nseeds = [1]\n', 1, "prompt: missing"),
    "unknown speed": ('[[preset]]\nprompt = "kick"\n\nspeed = "turbo"\n', 4, "speed: unknown speed 'turbo'"),
    "seconds beside bpm": ('[defaults]\nbpm = 100\nbars = 2\n[[preset]]\nprompt = "kick"\nseconds = 7.5\n', 6,
                           "seconds: not with bpm"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_preset_files_name_file_line_and_key_and_write_nothing(tmp_path, capsys, fp32_bundle, case):
    text, line, words = MALFORMED[case]
    presets = tmp_path / "bad.toml"
    presets.write_text(text)
    out = tmp_path / "out"
    assert main(["batch", str(presets), "--model", str(fp32_bundle), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"riffstudio: bad.toml:{line}: ") and words in err, err
    assert err.count("\n") == 1
    assert not out.exists()
    with pytest.raises(PresetFileError):
        read_presets(presets)


def test_a_speed_preset_in_a_preset_file_sets_the_solve_and_keys_beside_it_win(tmp_path):
    from engine.speeds import SPEED_PRESETS

    presets = tmp_path / "pack.toml"
    presets.write_text('[defaults]\nspeed = "draft"\n[[preset]]\nprompt = "kick"\nseeds = [1]\n'
                       '[[preset]]\nprompt = "snare"\nseeds = [1]\nsteps = 2\n[[preset]]\nprompt = "hat"\n'
                       'seeds = [1]\nspeed = "full"\n')
    kick, snare, hat = (item.settings for item in expand(
        presets, read_presets(presets, default_bundle=str(tmp_path)), {}))
    assert {key: getattr(kick, key) for key in SPEED_PRESETS["draft"]} == SPEED_PRESETS["draft"]
    assert (snare.steps, snare.quality) == (2, "draft")
    assert {key: getattr(hat, key) for key in SPEED_PRESETS["full"]} == SPEED_PRESETS["full"]


def test_the_example_preset_file_is_valid():
    presets = read_presets(REPO / "docs" / "batch-presets.example.toml")
    assert [p.values.get("name") for p in presets] == ["funk bass", "lofi keys", "riff on my loop"]
    assert presets[1].values["bpm"] == 85 and presets[0].values["bpm"] == 100


def test_the_readme_batch_command_plans_with_the_model_given(tmp_path, fp32_bundle):
    """`riffstudio batch docs/batch-presets.example.toml --model B`: --model wins over the file's [defaults]
    model, and every file the example names exists (its audio-to-audio loop ships beside it)."""
    from plugin.batch import plan

    items, _ = plan(REPO / "docs" / "batch-presets.example.toml", tmp_path / "out",
                          default_bundle=str(fp32_bundle))
    assert len(items) == 6 and {item.bundle for item in items} == {str(fp32_bundle)}
    assert Path(items[-1].settings.init_audio).is_file()
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_batch_through_the_engine_gives_the_same_results(tmp_path, fp32_bundle, monkeypatch):
    from engine_fixtures import engine_home

    presets = tmp_path / "one.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "funky slap bass"\n'
                       'seeds = [1, 2]\n')
    local = run_batch(presets, tmp_path / "local", InProcessRenderer(), say=lambda _: None)
    assert local.done == 2
    with engine_home(monkeypatch):
        renderer = EngineRenderer()
        try:
            remote = run_batch(presets, tmp_path / "engine", renderer, say=lambda _: None)
            again = run_batch(presets, tmp_path / "engine", renderer, say=lambda _: None)
        finally:
            renderer.close()
    assert (remote.done, again.skipped, again.done) == (2, 2, 0)
    check_complete(tmp_path / "engine", 2)
    for name in ("funky-slap-bass_200bpm_2beats_seed1.wav", "funky-slap-bass_200bpm_2beats_seed2.wav"):
        engine_file = tmp_path / "engine" / "funky-slap-bass" / name
        sidecar = json.loads(engine_file.with_suffix(".json").read_text())
        assert sidecar["engine_job"]
        local_audio, _ = soundfile.read(tmp_path / "local" / "funky-slap-bass" / name, dtype="int32")
        engine_audio, _ = soundfile.read(engine_file, dtype="int32")
        assert (local_audio == engine_audio).all()  # one interface, the same loop either way
