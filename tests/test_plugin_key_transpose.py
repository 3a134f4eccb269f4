"""`--key Am` (and a preset's `key = "Am"`): a loop transposed into the session key, measured by the key
detector on the written file; a loop with no key left alone and saying so; a bad key refused before any
work; the key the file ends in is the one its acid chunk, smpl chunk, INFO keywords and sidecar carry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import DATA
from plugin_audio import libsndfile_instrument, libsndfile_loop_info

from engine.codec import encode_audio
from engine.errors import InvalidInputError
from plugin.fit import Grid, fit_to_grid
from plugin.grid_loop import GridOptions, fit_image
from plugin.key import estimate_key
from plugin.presets import PresetFileError, expand, read_presets
from plugin.transpose import NOT_TRANSPOSED
from ui.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from key_corpus import key_clip, render_clip  # General MIDI clips through fluidsynth

RATE = 44100


def _clip_file(tmp_path: Path, seed: int) -> Path:
    path = tmp_path / f"clip-{seed}.wav"
    soundfile.write(path, render_clip(key_clip(seed)), RATE)
    return path


# (corpus seed, its key, the session key asked for, the key the loop must end in, semitones)
CASES = [
    (100, "C#maj", "Ab", "G#maj", -5),  # organ chords
    (108, "G#min", "E minor", "Emin", -4),  # guitar arpeggio
    (121, "Dmin", "G", "Emin", 2),  # pluck arpeggio, a minor loop asked for G major: to its relative, E minor
]


@pytest.mark.parametrize(("seed", "key", "session", "expected", "semitones"), CASES)
def test_loop_key_transposes_a_rendered_clip_into_the_session_key(tmp_path, capsys, seed, key, session, expected,
                                                                  semitones):
    assert key_clip(seed).key == key
    out = tmp_path / "loop.wav"
    assert main(["loop", str(_clip_file(tmp_path, seed)), "--bpm", "120", "--bars", "2", "--key", session,
                 "--out", str(out)]) == 0
    audio, rate = soundfile.read(out, dtype="float32")
    assert audio.shape[0] == Grid.parse(bpm=120, bars=2).num_samples(RATE)
    assert estimate_key(audio, rate).name == expected  # the detector, on the file a DAW gets
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["fit"]["transposed"] == {"detected": key, "target": session_name(session), "semitones": semitones}
    assert sidecar["fit"]["key"]["name"] == expected
    assert f"key {expected} (transposed {semitones:+d} semitones from {key})" in capsys.readouterr().out


def test_the_transposed_file_reads_as_the_plain_one_moved(tmp_path):
    """The key is found on the whole source; the 2 bars cut from it may read otherwise (this piano clip in F# minor
    cuts to bars the detector calls B minor). The shift itself is exact: the transposed file reads as the plain
    file moved by the semitones reported."""
    clip = _clip_file(tmp_path, 127)
    plain, moved = tmp_path / "plain.wav", tmp_path / "moved.wav"
    base = ["loop", str(clip), "--bpm", "120", "--bars", "2"]
    assert main([*base, "--out", str(plain)]) == 0
    assert main([*base, "--key", "C", "--out", str(moved)]) == 0
    shift = json.loads(moved.with_suffix(".json").read_text())["fit"]["transposed"]["semitones"]
    before, after = (estimate_key(*soundfile.read(path, dtype="float32")) for path in (plain, moved))
    assert shift == 3 and before.has_key and after.mode == before.mode
    assert after.tonic == (before.tonic + shift) % 12


def session_name(text: str) -> str:
    from plugin.musical_key import MusicalKey

    return MusicalKey.parse(text).name


def test_acid_smpl_info_and_sidecar_agree_on_the_transposed_key(tmp_path):
    """Read back by libsndfile (acid root note, smpl base note) and by wavinfo (smpl, INFO keywords)."""
    from wavinfo import WavInfoReader

    out = tmp_path / "loop.wav"
    assert main(["loop", str(_clip_file(tmp_path, 108)), "--bpm", "120", "--bars", "2", "--key", "Em",
                 "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    tonic = sidecar["fit"]["key"]["tonic"]
    assert sidecar["fit"]["key"]["name"] == "Emin" and tonic == 4
    assert libsndfile_loop_info(out)["root_key"] == 48 + tonic
    assert libsndfile_instrument(out)["basenote"] == 48 + tonic
    reader = WavInfoReader(str(out))
    assert reader.smpl.midi_note == 48 + tonic
    assert "key Emin" in reader.info.to_dict()["keywords"]


def test_a_drum_loop_is_left_alone_and_says_so(tmp_path, capsys):
    out = tmp_path / "loop.wav"
    assert main(["loop", str(DATA / "audio" / "drums.wav"), "--bpm", "120", "--bars", "1", "--key", "Am",
                 "--out", str(out)]) == 0
    plain = tmp_path / "plain.wav"
    assert main(["loop", str(DATA / "audio" / "drums.wav"), "--bpm", "120", "--bars", "1", "--out", str(plain)]) == 0
    assert np.array_equal(soundfile.read(out)[0], soundfile.read(plain)[0])  # untouched
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["fit"]["key"] is None
    assert sidecar["fit"]["transposed"] == {"detected": None, "target": "Amin", "semitones": 0, "note": NOT_TRANSPOSED}
    assert NOT_TRANSPOSED in capsys.readouterr().out
    assert libsndfile_loop_info(out)["root_key"] == -1


def test_a_loop_already_in_the_session_key_or_its_relative_is_not_shifted():
    from test_plugin_key import cadence

    audio = cadence(0, False)  # C major
    image = encode_audio(audio[:, None], RATE).pixels
    options = GridOptions(bpm=100, bars=1, fit="length", key="Am")
    fitted = fit_image(image, options, analysis_audio=audio, analysis_rate=RATE, quality="draft")
    plain = fit_to_grid(image, options.grid(), analysis_audio=audio, analysis_rate=RATE, quality="draft",
                        mode="length")
    assert fitted.report.transposed == {"detected": "Cmaj", "target": "Amin", "semitones": 0}
    assert np.array_equal(fitted.audio, plain.audio)


@pytest.mark.parametrize("key", ["Dm", "Ebm", "Gb"])
def test_a_transposed_loop_wraps_as_the_fit_made_it(key):
    """The shift treats the fitted loop as a circle: its seam clicks no more than the untransposed loop's."""
    from test_codec_pitch_shift import seam_click
    from test_plugin_key import cadence

    audio = cadence(0, False)
    image = encode_audio(audio[:, None], RATE).pixels
    loops = [fit_image(image, GridOptions(bpm=100, bars=1, fit="length", key=session), analysis_audio=audio,
                       analysis_rate=RATE, quality="draft") for session in (None, key)]
    assert loops[1].report.transposed["semitones"] in (5, 6)
    assert seam_click(loops[1].audio[:, 0]) <= seam_click(loops[0].audio[:, 0]) + 1.0


@pytest.mark.parametrize("args", [["--key", "H"], ["--key", "Am7"], ["--key", ""]])
def test_a_bad_key_is_one_line_before_any_work(tmp_path, capsys, args):
    out = tmp_path / "loop.wav"
    code = main(["loop", str(DATA / "audio" / "drums.wav"), "--bpm", "120", *args, "--out", str(out)])
    assert code == InvalidInputError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.startswith("riffstudio: not a key") and "\n" not in err and "Am" in err
    assert list(tmp_path.iterdir()) == []


def test_generate_key_needs_a_tempo_and_a_readable_key(tmp_path, capsys):
    out = tmp_path / "loop.wav"
    missing = str(tmp_path / "no-model")  # refused before the model is even looked for
    assert main(["generate", "funk", "--key", "Am", "--model", missing, "--out", str(out)]) == 2
    assert "--key needs --bpm" in capsys.readouterr().err
    assert main(["generate", "funk", "--bpm", "120", "--key", "X#", "--model", missing, "--out", str(out)]) == 2
    assert "not a key: 'X#'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _presets(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pack.toml"
    path.write_text('[defaults]\nmodel = "m"\nbpm = 120\n\n[[preset]]\nprompt = "funk"\n' + body, encoding="utf-8")
    return path


def test_a_preset_key_reaches_the_grid_options_and_a_bad_one_names_its_line(tmp_path):
    path = _presets(tmp_path, 'key = "F# minor"\n')
    (item,) = expand(path, read_presets(path), {})
    assert item.options.key == "F# minor" and item.options.session_key().name == "F#min"
    bad = _presets(tmp_path, 'bars = 2\nkey = "Q"\n')
    with pytest.raises(PresetFileError, match=r"^pack\.toml:8: key: not a key: 'Q'"):
        read_presets(bad)
    number = _presets(tmp_path, "key = 9\n")
    with pytest.raises(PresetFileError, match=r"^pack\.toml:7: key: must be a string"):
        read_presets(number)
    (tmp_path / "tempo-less.toml").write_text('[[preset]]\nmodel = "m"\nprompt = "x"\nkey = "Am"\n')
    with pytest.raises(PresetFileError, match=r"tempo-less\.toml:4: key: needs bpm"):
        read_presets(tmp_path / "tempo-less.toml")


def test_a_preset_without_a_key_keeps_its_identity():
    """Items are known across runs by their settings: adding keys to the schema must not re-render old loops."""
    assert "key" not in GridOptions(bpm=120, bars=2).to_dict()
    assert GridOptions(bpm=120, bars=2, key="Am").to_dict()["key"] == "Am"
    with pytest.raises(InvalidInputError, match="not a key"):
        GridOptions(bpm=120, bars=2, key="Hm").validate()



@pytest.mark.slow
@pytest.mark.parametrize("engine", [[], ["--engine"]], ids=["in process", "through the engine"])
def test_generate_key_runs_where_the_grid_fit_runs(home, run_cli, fp32_bundle, tmp_path, engine):
    """`generate --bpm --key`, in this process and with the engine's audio: the key step follows the fit either way
    (the tiny random model paints noise: no key found, so the loop is left as it is and says so)."""
    out = tmp_path / "loop.wav"
    result = run_cli("generate", "bass", "--model", fp32_bundle, "--steps", "2", "--width", "64", "--seed", "5",
                     "--quality", "draft", "--provider", "cpu", "--bpm", "150", "--bars", "1", "--key", "F# minor",
                     *engine, "--out", out)
    assert result.returncode == 0, result.stderr
    fit = json.loads(out.with_suffix(".json").read_text())["fit"]
    assert fit["key"] is None
    assert fit["transposed"] == {"detected": None, "target": "F#min", "semitones": 0, "note": NOT_TRANSPOSED}
    assert "no key found: not transposed" in result.stdout
