"""Real-instrument music of known tempo and key, written as MIDI and rendered by fluidsynth (General MIDI).

No music can be downloaded here, and random weights make no music, so this is where real spectrograms
come from: seeded pieces (a drum groove, a bass line, chords and a melody in one key, on instruments drawn
from the General MIDI set) rendered with FluidR3_GM and encoded by our codec into riffusion's 512 x 512
images (5.12 s). `model get` ships a few as its calibration images (engine/model_get/calibration/, made
by `python tests/music_corpus.py --calibration`); benchmarks draw held-out pieces from other seeds.

    python tests/music_corpus.py OUT_DIR --seeds 100-111      # PNGs (and WAVs with --wav)

Needs `fluidsynth` and `fluid-soundfont-gm` (Debian).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
CALIBRATION_FOLDER = REPO / "engine" / "model_get" / "calibration"
# The shipped calibration images' seeds; benchmarks hold out seeds from HELD_OUT_FROM on.
CALIBRATION_SEEDS = tuple(range(1, 9))
HELD_OUT_FROM = 1000
TICKS = 480  # per quarter note
SECONDS = 5.12  # one 512-column image at riffusion's 10 ms hop

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# General MIDI programs by role (0-based): a wide spread of timbres.
BASS = (32, 33, 34, 35, 36, 37, 38, 39)
CHORDS = (0, 4, 5, 16, 19, 24, 25, 48, 49, 50, 61, 88, 89, 90)
LEAD = (0, 11, 13, 22, 26, 29, 40, 56, 60, 65, 66, 71, 73, 80, 81, 104)
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CLAP, RIDE = 36, 38, 42, 46, 39, 51


@dataclass(frozen=True)
class Piece:
    seed: int
    bpm: float
    tonic: int  # MIDI note of the key's tonic in octave 3
    minor: bool
    programs: tuple[int, int, int]  # bass, chords, lead
    drums: bool

    @property
    def key(self) -> str:
        names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
        return f"{names[self.tonic % 12]} {'minor' if self.minor else 'major'}"


def piece(seed: int) -> Piece:
    rng = np.random.default_rng(seed)
    return Piece(seed=seed, bpm=float(rng.integers(70, 161)), tonic=48 + int(rng.integers(0, 12)),
                 minor=bool(rng.integers(0, 2)),
                 programs=(int(rng.choice(BASS)), int(rng.choice(CHORDS)), int(rng.choice(LEAD))),
                 drums=bool(rng.random() < 0.8))


def midi_bytes(spec: Piece) -> bytes:
    """A one-track (format 0) standard MIDI file of `spec`, long enough for SECONDS plus a tail."""
    rng = np.random.default_rng(spec.seed + 7)
    scale = MINOR if spec.minor else MAJOR
    beats = int(np.ceil(SECONDS * spec.bpm / 60)) + 4
    events: list[tuple[int, bytes]] = [(0, b"\xff\x51\x03" + int(60e6 / spec.bpm).to_bytes(3, "big"))]
    for channel, program in enumerate(spec.programs):
        events.append((0, bytes([0xC0 | channel, program])))

    def note(channel: int, pitch: int, start: float, length: float, velocity: int) -> None:
        on, off = int(start * TICKS), int((start + length) * TICKS)
        events.append((on, bytes([0x90 | channel, pitch, velocity])))
        events.append((off, bytes([0x80 | channel, pitch, 0])))

    degrees = (0, 5, 3, 4) if not spec.minor else (0, 5, 3, 6)  # I-vi-IV-V / i-VI-iv-VII
    for bar in range(beats // 4 + 1):
        degree = degrees[bar % 4]
        root = spec.tonic + scale[degree % 7]
        chord = [root + 12 + (scale[(degree + k) % 7] - scale[degree % 7]) % 12 for k in (0, 2, 4)]
        for pitch in chord:
            note(1, pitch, bar * 4, 3.9, 60)
        for beat in range(4):
            note(0, root - 12 + (7 if beat == 2 else 0), bar * 4 + beat, 0.9, 90)
        for eighth in range(8):
            if rng.random() < 0.6:
                pitch = spec.tonic + 24 + scale[int(rng.integers(0, 7))]
                note(2, pitch, bar * 4 + eighth / 2, 0.45, int(rng.integers(70, 110)))
        if spec.drums:
            for eighth in range(8):
                t = bar * 4 + eighth / 2
                note(9, CLOSED_HAT if eighth % 4 != 3 else OPEN_HAT, t, 0.25, 70)
                if eighth in (0, 5):
                    note(9, KICK, t, 0.25, 110)
                if eighth in (2, 6):
                    note(9, SNARE if bar % 2 else CLAP, t, 0.25, 100)
    return _smf(events)


def _smf(events: list[tuple[int, bytes]]) -> bytes:
    """A one-track (format 0) standard MIDI file of (tick, message) events."""
    events = sorted(events, key=lambda e: e[0])
    track = bytearray()
    last = 0
    for tick, data in events:
        track += _varlen(tick - last) + data
        last = tick
    track += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS) + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def render(spec: Piece, wav: Path) -> None:
    """`spec` as a 44.1 kHz WAV through fluidsynth."""
    render_midi(midi_bytes(spec), wav)


def render_midi(data: bytes, wav: Path) -> None:
    """A standard MIDI file's bytes as a 44.1 kHz stereo WAV through fluidsynth (FluidR3_GM)."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        raise RuntimeError("needs fluidsynth and fluid-soundfont-gm: apt-get install fluidsynth fluid-soundfont-gm")
    with tempfile.TemporaryDirectory() as work:
        midi = Path(work) / "piece.mid"
        midi.write_bytes(data)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "44100", "-F", str(wav), str(SOUNDFONT),
                        str(midi)], check=True, capture_output=True, timeout=120)


def spectrogram(spec: Piece, png: Path, wav: Path | None = None) -> None:
    """`spec` rendered, its first SECONDS encoded as riffusion's image at `png` (mono, as riffusion's)."""
    sys.path.insert(0, str(REPO))
    from engine.codec import DEFAULT_PARAMS, encode_audio
    from engine.codec.audio_io import load_for_encoding
    from engine.codec.image_file import write_spectrogram_image

    with tempfile.TemporaryDirectory() as work:
        rendered = Path(work) / "piece.wav"
        render(spec, rendered)
        samples = load_for_encoding(str(rendered), DEFAULT_PARAMS)
        if wav is not None:
            shutil.copyfile(rendered, wav)
    samples = samples[: int(SECONDS * DEFAULT_PARAMS.sample_rate)]
    if samples.ndim == 2 and samples.shape[1] > 1:
        samples = samples.mean(axis=1, keepdims=True)
    write_spectrogram_image(png, encode_audio(samples, DEFAULT_PARAMS.sample_rate, DEFAULT_PARAMS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--seeds", default="1000-1011", help="FIRST-LAST or a comma list")
    parser.add_argument("--calibration", action="store_true", help=f"write the shipped images to {CALIBRATION_FOLDER}")
    parser.add_argument("--wav", action="store_true")
    args = parser.parse_args()
    if args.calibration:
        out, seeds = CALIBRATION_FOLDER, CALIBRATION_SEEDS
    else:
        out = args.out
        first, _, last = args.seeds.partition("-")
        seeds = range(int(first), int(last) + 1) if last else tuple(int(s) for s in args.seeds.split(","))
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        spec = piece(seed)
        name = f"piece-{seed:04d}"
        spectrogram(spec, out / f"{name}.png", out / f"{name}.wav" if args.wav else None)
        print(f"{name}: {spec.bpm:g} bpm, {spec.key}, programs {spec.programs}, drums {spec.drums}")


if __name__ == "__main__":
    main()
