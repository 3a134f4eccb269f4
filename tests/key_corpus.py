"""Clips of known key (and tempo) for the key detector: General MIDI material through `music_corpus`.

Each clip is 5.1 s, like a generated loop: one instrument group (piano, pad, pluck, bass, strings,
guitar, organ, lead) playing one style (chords, arpeggio, bassline, melody, a beatless pad, a drone,
or a band with drums), in one of the 24 keys, at 60-180 bpm; and unpitched material (a General MIDI
drum kit, coloured noise) whose key is "none". Every clip is also kept as the codec's round trip
(`engine.codec.encode_audio` -> `decode_image`), which is what the engine's images sound like.

The music is written to leave its key unambiguous to a listener: each progression starts on the
tonic chord and returns to it (minor ones mostly through a major V, as harmonic minor does), basslines
walk the progression's roots, melodies start and end on the tonic with chord tones on the beats.

Seeds below HELD_OUT_FROM are for tuning; seeds from HELD_OUT_FROM on are held out of every choice
made in `plugin/key.py` and reported apart by `tests/benchmarks/bench_key.py`.

    taskset -c 1 .venv/bin/python tests/key_corpus.py            # builds .cache/key-corpus (~5 min)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from music_corpus import MAJOR, MINOR, REPO, TICKS, _smf, render_midi

CORPUS = REPO / ".cache" / "key-corpus"
SECONDS = 5.1
RATE = 44100
TUNING_SEEDS = range(100, 280)  # 180 clips
HELD_OUT_FROM = 5000
HELD_OUT_SEEDS = range(HELD_OUT_FROM, HELD_OUT_FROM + 120)  # 120 clips
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# General MIDI programs (0-based) by instrument group.
GROUPS: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 2, 4, 5, 7),
    "pad": (88, 89, 90, 91, 94, 95),
    "pluck": (45, 46, 105, 108, 11, 12),
    "bass": (32, 33, 34, 35, 36, 38, 39),
    "strings": (48, 49, 50, 40, 42),
    "guitar": (24, 25, 26, 27, 29),
    "organ": (16, 17, 18, 19),
    "lead": (80, 81, 56, 65, 73),
}
# Styles each group plays; "band" adds bass, a lead and drums to the group's chords.
STYLES: dict[str, tuple[str, ...]] = {
    "piano": ("chords", "arpeggio", "melody", "band", "pad"),
    "pad": ("pad", "drone", "chords"),
    "pluck": ("arpeggio", "melody", "chords"),
    "bass": ("bassline",),
    "strings": ("pad", "chords", "melody", "drone"),
    "guitar": ("chords", "arpeggio", "band"),
    "organ": ("chords", "drone", "band"),
    "lead": ("melody",),
}
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # GM2/GS kits on channel 10: standard, room, power, electronic, 808, jazz, brush
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CLAP, RIDE, CRASH = 36, 38, 42, 46, 39, 51, 49
LOW_TOM, MID_TOM, HIGH_TOM = 45, 47, 50
# Scale degrees (0-based) of each progression's chord roots; minor ones mostly reach i through a major V.
MAJOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 0, 4))
MINOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 2, 4), (0, 6, 5, 4), (0, 3, 6, 0))


@dataclass(frozen=True)
class KeyClip:
    """One clip: `tonic` 0-11 (C=0) and `mode` ("major"/"minor"), or tonic None for unpitched material."""

    seed: int
    group: str  # instrument group, or "drums" / "noise"
    style: str
    tonic: int | None
    mode: str | None
    bpm: float | None  # None for beatless clips
    program: int | None

    @property
    def held_out(self) -> bool:
        return self.seed >= HELD_OUT_FROM

    @property
    def key(self) -> str:
        if self.tonic is None:
            return "none"
        return f"{NAMES[self.tonic]}{'min' if self.mode == 'minor' else 'maj'}"

    @property
    def name(self) -> str:
        return f"clip-{self.seed:04d}"


def key_clip(seed: int) -> KeyClip:
    """The clip of `seed`: about one in six is unpitched (drums or noise), the rest in a random key."""
    rng = np.random.default_rng([seed, 27])
    if seed % 6 == 5:
        kind = "drums" if seed % 12 == 5 else "noise"
        bpm = float(rng.integers(60, 181)) if kind == "drums" else None
        program = int(rng.choice(DRUM_KITS)) if kind == "drums" else None
        style = str(rng.choice(("groove", "toms", "sparse"))) if kind == "drums" else \
            str(rng.choice(("white", "pink", "brown", "bursts")))
        return KeyClip(seed, kind, style, None, None, bpm, program)
    group = str(rng.choice(sorted(GROUPS)))
    style = str(rng.choice(STYLES[group]))
    tonic = int(rng.integers(0, 12))
    mode = "minor" if rng.integers(0, 2) else "major"
    bpm = None if style in ("pad", "drone") else float(rng.integers(60, 181))
    return KeyClip(seed, group, style, tonic, mode, bpm, int(rng.choice(GROUPS[group])))


def clip_midi(clip: KeyClip) -> bytes:
    """The clip as a standard MIDI file (tonal or drums; noise has none)."""
    rng = np.random.default_rng([clip.seed, 28])
    bpm = clip.bpm or 60.0
    events: list[tuple[int, bytes]] = [(0, b"\xff\x51\x03" + int(60e6 / bpm).to_bytes(3, "big"))]
    beats = SECONDS * bpm / 60  # beats in the clip

    def note(channel: int, pitch: int, start: float, length: float, velocity: int) -> None:
        events.append((int(start * TICKS), bytes([0x90 | channel, pitch, velocity])))
        events.append((int((start + length) * TICKS), bytes([0x80 | channel, pitch, 0])))

    if clip.group == "drums":
        events.append((0, bytes([0xC9, clip.program or 0])))
        for sixteenth in range(int(beats * 4) + 1):
            t, position = sixteenth / 4, sixteenth % 16
            if clip.style == "toms":
                note(9, (HIGH_TOM, MID_TOM, LOW_TOM, KICK)[position % 4], t, 0.2, 100)
            elif clip.style == "sparse" and position in (0, 10):
                note(9, KICK, t, 0.2, 110)
            elif clip.style == "groove":
                if position % 2 == 0:
                    note(9, CLOSED_HAT if position != 14 else OPEN_HAT, t, 0.2, 70)
                if position in (0, 6, 8):
                    note(9, KICK, t, 0.2, 110)
                if position in (4, 12):
                    note(9, SNARE if sixteenth % 32 < 16 else CLAP, t, 0.2, 100)
            if clip.style != "groove" and position == 0 and sixteenth % 32 == 0:
                note(9, CRASH if clip.style == "toms" else RIDE, t, 0.5, 80)
        return _smf(events)

    assert clip.tonic is not None
    minor = clip.mode == "minor"
    scale = MINOR if minor else MAJOR
    progression = (MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS)[int(rng.integers(0, 4))]
    base = 48 + clip.tonic  # tonic in octave 3
    chord_beats = SECONDS / 4 * bpm / 60 if clip.bpm is None else max(1, round(beats / 4))

    def triad(degree: int) -> list[int]:
        root = scale[degree]
        tones = [root, scale[(degree + 2) % 7] + (12 if degree + 2 >= 7 else 0),
                 scale[(degree + 4) % 7] + (12 if degree + 4 >= 7 else 0)]
        if minor and degree == 4:  # harmonic minor's major V (the raised 7th as its third)
            tones[1] = 11
        return tones

    events.append((0, bytes([0xC0, clip.program or 0])))
    if clip.style == "band":
        events += [(0, bytes([0xC1, int(rng.choice(GROUPS["bass"]))])),
                   (0, bytes([0xC2, int(rng.choice(GROUPS["lead"]))])),
                   (0, bytes([0xC9, int(rng.choice(DRUM_KITS))]))]
    count = int(np.ceil(beats / chord_beats)) + 1
    for index in range(count):
        degree = progression[index % 4]
        start = index * chord_beats
        chord = [base + 12 + t for t in triad(degree)]
        if clip.style in ("chords", "band"):
            for hit in range(max(1, int(chord_beats))):
                for pitch in chord:
                    note(0, pitch, start + hit, 0.95, int(rng.integers(60, 90)))
        elif clip.style == "pad":
            for pitch in [chord[0] - 12, *chord]:
                note(0, pitch, start, chord_beats + 0.1, 70)
        elif clip.style == "arpeggio":
            pattern = [*chord, chord[0] + 12, chord[2], chord[1]]
            for step in range(int(chord_beats * 4)):
                note(0, pattern[step % len(pattern)], start + step / 4, 0.3, int(rng.integers(65, 100)))
        elif clip.style == "bassline":
            root = base - 12 + scale[degree]
            for eighth in range(int(chord_beats * 2)):
                pitch = root + (12 if eighth % 4 == 3 else 7 if eighth % 4 == 2 and rng.random() < 0.5 else 0)
                note(0, pitch, start + eighth / 2, 0.45, int(rng.integers(80, 110)))
        elif clip.style == "melody":
            tones = [base + 24 + t for t in triad(degree)]
            steps = int(chord_beats * 2)
            for eighth in range(steps):
                if index == 0 and eighth == 0:
                    pitch = base + 24
                elif eighth % 2 == 0:
                    pitch = int(rng.choice(tones))
                else:
                    pitch = base + 24 + scale[int(rng.integers(0, 7))]
                if rng.random() < 0.85:
                    note(0, pitch, start + eighth / 2, 0.48, int(rng.integers(70, 105)))
        if clip.style == "band":
            for beat in range(max(1, int(chord_beats))):
                note(1, base - 12 + scale[degree], start + beat, 0.9, 95)
            for eighth in range(int(chord_beats * 2)):
                if rng.random() < 0.5:
                    note(2, base + 24 + scale[int(rng.integers(0, 7))], start + eighth / 2, 0.45, 85)
            for eighth in range(int(chord_beats * 2)):
                t = start + eighth / 2
                note(9, CLOSED_HAT, t, 0.2, 65)
                if eighth % 4 == 0:
                    note(9, KICK, t, 0.2, 110)
                if eighth % 4 == 2:
                    note(9, SNARE, t, 0.2, 95)
    if clip.style == "drone":  # the tonic and fifth held under a slowly moving triad
        note(0, base - 12, 0, 30, 80)
        note(0, base - 5, 0, 30, 70)
        for index, degree in enumerate((0, 0, 3 if rng.random() < 0.5 else 4, 0)):
            for pitch in triad(degree):
                note(0, base + 12 + pitch, index * chord_beats, chord_beats + 0.1, 55)
    return _smf(events)


def noise(clip: KeyClip) -> np.ndarray:
    """Coloured noise (mono float32, SECONDS long): white, pink (1/f), brown (1/f^2) or gated bursts."""
    rng = np.random.default_rng([clip.seed, 29])
    count = int(SECONDS * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(count))
    freqs = np.maximum(np.fft.rfftfreq(count, 1 / RATE), 20.0)
    if clip.style == "pink":
        spectrum /= np.sqrt(freqs)
    elif clip.style == "brown":
        spectrum /= freqs
    out = np.fft.irfft(spectrum, count)
    if clip.style == "bursts":
        gate = (rng.random(int(SECONDS * 8) + 1) < 0.5).repeat(RATE // 8 + 1)[:count]
        out *= gate * np.exp(-np.arange(count) % (RATE // 8) / (0.03 * RATE))
    return (0.3 * out / max(np.abs(out).max(), 1e-9)).astype(np.float32)


def render_clip(clip: KeyClip) -> np.ndarray:
    """The clip's clean audio: (SECONDS * RATE,) float32 mono."""
    if clip.group == "noise":
        return noise(clip)
    with tempfile.TemporaryDirectory() as work:
        wav = Path(work) / "clip.wav"
        render_midi(clip_midi(clip), wav)
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    assert rate == RATE
    audio = audio.mean(axis=1)[: int(SECONDS * RATE)]
    return np.pad(audio, (0, int(SECONDS * RATE) - audio.size))


def codec_round_trip(audio: np.ndarray) -> np.ndarray:
    """What the engine's image of this audio sounds like: riffusion's spectrogram and our decode (standard)."""
    sys.path.insert(0, str(REPO))
    from engine.codec import DEFAULT_PARAMS, decode_image, encode_audio

    image = encode_audio(audio[:, None], RATE, DEFAULT_PARAMS).pixels
    return decode_image(image, DEFAULT_PARAMS, quality="standard", stereo=False)[:, 0].astype(np.float32)


def build(out: Path = CORPUS, seeds: list[int] | None = None) -> list[KeyClip]:
    """Render (what is missing of) the corpus into `out`: NAME.wav, NAME.codec.wav, manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    clips = [key_clip(seed) for seed in (seeds or [*TUNING_SEEDS, *HELD_OUT_SEEDS])]
    for clip in clips:
        clean, decoded = out / f"{clip.name}.wav", out / f"{clip.name}.codec.wav"
        if not clean.is_file():
            soundfile.write(clean, render_clip(clip), RATE, subtype="FLOAT")
        if not decoded.is_file():
            audio, _ = soundfile.read(clean, dtype="float32")
            soundfile.write(decoded, codec_round_trip(audio), RATE, subtype="FLOAT")
    (out / "manifest.json").write_text(json.dumps([asdict(clip) for clip in clips], indent=1))
    return clips


def load(out: Path = CORPUS) -> list[KeyClip]:
    return [KeyClip(**entry) for entry in json.loads((out / "manifest.json").read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=CORPUS)
    args = parser.parse_args()
    clips = build(args.out)
    tonal = [clip for clip in clips if clip.tonic is not None]
    print(f"{len(clips)} clips in {args.out}: {len(tonal)} tonal in {len({c.key for c in tonal})} keys, "
          f"{len(clips) - len(tonal)} unpitched; {sum(c.held_out for c in clips)} held out")


if __name__ == "__main__":
    main()
