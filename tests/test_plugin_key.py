"""Key detection: synthetic chords and scales in known keys, no key for drums and noise, and the key
recorded where a grid loop is written (the sidecar's fit record and the WAV's acid root note)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from plugin_audio import RATE, drum_loop, libsndfile_loop_info

from engine.codec import encode_audio
from engine.loop_files import sidecar_path
from plugin.fit import Grid, fit_to_grid
from plugin.grid_loop import GridOptions, write_grid_loop
from plugin.key import NAMES, estimate_key

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def _tone(midi: float, seconds: float, rate: int = RATE) -> np.ndarray:
    """A note with a few decaying harmonics (a plucked/organ-like timbre), not a bare sine."""
    t = np.arange(int(seconds * rate)) / rate
    f = 440.0 * 2 ** ((midi - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 6) if f * h < rate / 2)
    return wave * np.exp(-t * 1.5) * np.minimum(1.0, t / 0.01)


def cadence(tonic: int, minor: bool, *, chord_s: float = 1.2, detune: float = 0.0) -> np.ndarray:
    """i-iv-V-i (minor, with harmonic minor's major V) or I-IV-V-I: triads over their root in the bass."""
    scale = MINOR if minor else MAJOR
    out = []
    for degree in (0, 3, 4, 0):
        root = 48 + tonic + scale[degree]
        third = scale[(degree + 2) % 7] + (12 if degree + 2 >= 7 else 0) - scale[degree]
        if minor and degree == 4:
            third = 4
        fifth = scale[(degree + 4) % 7] + (12 if degree + 4 >= 7 else 0) - scale[degree]
        chord = sum(_tone(root + 12 + step + detune, chord_s) for step in (0, third, fifth))
        out.append(chord + _tone(root - 12 + detune, chord_s))
    audio = np.concatenate(out)
    return (0.3 * audio / np.abs(audio).max()).astype(np.float32)


def scale_run(tonic: int, minor: bool, note_s: float = 0.3) -> np.ndarray:
    """The scale up an octave and back down to the tonic, over the tonic held in the bass."""
    scale = MINOR if minor else MAJOR
    steps = [*scale, 12, *reversed(scale)]
    melody = np.concatenate([_tone(60 + tonic + step, note_s) for step in steps])
    t = np.arange(melody.size) / RATE
    bass = np.sin(2 * np.pi * 440.0 * 2 ** ((36 + tonic - 69) / 12) * t) * 0.5
    audio = melody + bass
    return (0.3 * audio / np.abs(audio).max()).astype(np.float32)


@pytest.mark.parametrize(("tonic", "minor"), [(0, False), (0, True), (7, False), (9, True), (2, False),
                                              (6, True), (10, False), (4, True)])
def test_a_cadence_is_found_in_its_key(tonic, minor):
    found = estimate_key(cadence(tonic, minor), RATE)
    assert (found.tonic, found.mode) == (tonic, "minor" if minor else "major")
    assert found.name == NAMES[tonic] + ("min" if minor else "maj")
    assert found.has_key and found.confidence >= 0.5


@pytest.mark.parametrize(("tonic", "minor"), [(0, False), (5, True), (11, False), (3, True)])
def test_a_scale_over_its_tonic_is_found_in_its_key(tonic, minor):
    found = estimate_key(scale_run(tonic, minor), RATE)
    assert (found.tonic, found.mode) == (tonic, "minor" if minor else "major")


def test_a_detuned_stereo_clip_at_48k_is_still_in_key():
    audio = cadence(3, True, detune=0.4)  # 40 cents sharp: nearer E than D# for a detector without tuning
    at_48k = np.interp(np.arange(int(audio.size * 48000 / RATE)) * RATE / 48000, np.arange(audio.size), audio)
    found = estimate_key(np.stack([at_48k, at_48k * 0.5], axis=1), 48000)
    assert found.name == "D#min"


def test_drums_and_noise_have_no_key():
    drums, _ = drum_loop(120, seconds=5.1)
    rng = np.random.default_rng(1)
    for audio in (drums, (rng.standard_normal(int(5.1 * RATE)) * 0.1).astype(np.float32)):
        found = estimate_key(audio, RATE)
        assert not found.has_key and found.tonic is None and found.mode is None
        assert found.name == "no key" and found.to_dict() is None and found.confidence < 0.4


def test_a_long_recording_is_read_in_its_middle():
    silence = np.zeros(20 * RATE, np.float32)
    audio = np.concatenate([silence, np.tile(cadence(5, False), 7), silence])
    assert audio.size > 60 * RATE
    assert estimate_key(audio, RATE).name == "Fmaj"


def test_silence_and_a_short_clip_have_no_key():
    assert not estimate_key(np.zeros(RATE, np.float32), RATE).has_key
    assert not estimate_key(np.zeros(100, np.float32), RATE).has_key


def _acid_root(path) -> tuple[int, int]:
    """(flags, root note) of the WAV's acid chunk, read from the bytes."""
    data = path.read_bytes()
    position = 12
    while position + 8 <= len(data):
        tag, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        if tag == b"acid":
            flags, root = struct.unpack("<IH", data[position + 8 : position + 14])
            return flags, root
        position += 8 + size + (size & 1)
    raise AssertionError("no acid chunk")


def _write(tmp_path, audio):
    image = encode_audio(audio[:, None], RATE).pixels
    fitted = fit_to_grid(image, Grid.parse(bpm=100, bars=1), analysis_audio=audio, analysis_rate=RATE,
                         quality="draft", mode="length")
    out = tmp_path / "loop.wav"
    sidecar = write_grid_loop(out, fitted, GridOptions(bpm=100, bars=1, fit="length"), {})
    return out, sidecar


def test_a_written_loop_records_its_key_in_the_sidecar_and_the_acid_root_note(tmp_path):
    out, sidecar = _write(tmp_path, cadence(9, True))  # A minor
    key = sidecar["fit"]["key"]
    assert {k: key[k] for k in ("name", "tonic", "mode")} == {"name": "Amin", "tonic": 9, "mode": "minor"}
    assert 0.4 <= key["confidence"] <= 1.0
    on_disk = json.loads(sidecar_path(out).read_text())
    assert on_disk["fit"]["key"]["name"] == "Amin"
    flags, root = _acid_root(out)
    assert flags & 0x02 and root == 0x30 + 9  # 'root note set', A3 in ACID's numbering (0x30 = C3)
    assert libsndfile_loop_info(out)["root_key"] == 0x30 + 9


def test_a_drum_loop_has_no_key_and_no_root_note(tmp_path):
    drums, _ = drum_loop(120, seconds=5.1)
    out, sidecar = _write(tmp_path, drums)
    assert sidecar["fit"]["key"] is None
    flags, _ = _acid_root(out)
    assert not flags & 0x02
    assert libsndfile_loop_info(out)["root_key"] == -1
