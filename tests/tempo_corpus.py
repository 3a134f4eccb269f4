"""Clips of known tempo, meter and key for the beat tracker: General MIDI loops through `music_corpus`.

Each clip is 5.1 s, like a generated loop, in one style: drums (GM kits: rock, house, hip-hop, breaks,
waltz), 16th-note arpeggios (synths, piano, plucks), plucked patterns with rests, strummed guitar, basslines,
chord stabs, melodies, or a band (chords, bass and drums); at 60-180 bpm, in 4/4 or 3/4, a quarter of them
swung. The beatless ones are pads and drones (chords changing off any grid), coloured noise and, when
`espeak-ng` is installed, spoken word. Every clip is also kept as the codec's round trip
(`engine.codec.encode_audio` -> `decode_image`), which is what the engine's images sound like.

The manifest keeps, for each beat clip, the times of its notes that sit on the straight 16th grid (swung
off-beats left out): the ground truth for how far a fitted loop's notes land from the session's grid.

Seeds below HELD_OUT_FROM are for tuning; seeds from HELD_OUT_FROM on are held out of every choice
made in `plugin/tempo.py` and reported apart by `tests/benchmarks/bench_tempo.py`.

    taskset -c 1 .venv/bin/python tests/tempo_corpus.py          # builds .cache/tempo-corpus (~6 min)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from key_corpus import (
    CLAP,
    CLOSED_HAT,
    CRASH,
    DRUM_KITS,
    KICK,
    OPEN_HAT,
    RATE,
    RIDE,
    SECONDS,
    SNARE,
    KeyClip,
    codec_round_trip,
    noise,
)
from music_corpus import MAJOR, MINOR, REPO, TICKS, _smf, render_midi

CORPUS = REPO / ".cache" / "tempo-corpus"
TUNING_SEEDS = range(100, 280)  # 180 clips
HELD_OUT_FROM = 5000
HELD_OUT_SEEDS = range(HELD_OUT_FROM, HELD_OUT_FROM + 100)  # 100 clips
BEAT_STYLES = ("drums", "arp16", "pluck", "strum", "bassline", "chords", "melody", "band")
BEATLESS_STYLES = ("pad", "drone", "noise", "speech")
# General MIDI programs (0-based) per style.
PROGRAMS: dict[str, tuple[int, ...]] = {
    "arp16": (80, 81, 84, 87, 38, 39, 0, 4, 46, 11),  # square, saw, charang, bass+lead, synth basses, pianos, harp
    "pluck": (45, 46, 105, 108, 11, 12, 13, 24, 107),  # pizzicato, harp, banjo, kalimba, mallets, koto
    "strum": (24, 25, 26, 27, 29),
    "bassline": (32, 33, 34, 35, 36, 37, 38, 39),
    "chords": (0, 4, 5, 16, 17, 61, 62, 48, 19),  # pianos, organs, brass, strings
    "melody": (56, 65, 73, 80, 81, 71, 40, 22),
    "band": (0, 4, 24, 25, 16, 61),
    "pad": (88, 89, 90, 91, 94, 95, 48, 49, 52),
    "drone": (16, 19, 48, 89, 91, 95, 42, 109),
}
SPEECH = ("The quick brown fox jumps over the lazy dog while the band is setting up on the stage tonight.",
          "Welcome back to the show, today we are talking about sampling, loops and the history of the drum machine.",
          "Please remember to save your project before closing the application, otherwise your changes may be lost.",
          "In the beginning there was only silence, and then somebody decided to hit a drum.")


@dataclass(frozen=True)
class TempoClip:
    """One clip: `bpm` (quarter notes per minute) and `meter`, or bpm None for beatless material."""

    seed: int
    style: str
    program: int | None
    bpm: float | None
    meter: str  # "4/4" or "3/4"
    swing: float  # how late the off-beat 16ths are, as a share of a 16th (0 = straight)
    tonic: int | None
    mode: str | None
    onsets_s: tuple[float, ...] = field(default=())  # notes on the straight 16th grid (seconds)

    @property
    def held_out(self) -> bool:
        return self.seed >= HELD_OUT_FROM

    @property
    def has_beat(self) -> bool:
        return self.bpm is not None

    @property
    def name(self) -> str:
        return f"clip-{self.seed:04d}"


def tempo_clip(seed: int) -> TempoClip:
    """The clip of `seed`: about one in four beatless (pads, drones, noise, speech), the rest in a beat style."""
    rng = np.random.default_rng([seed, 31])
    if seed % 4 == 3:
        style = BEATLESS_STYLES[(seed // 4) % len(BEATLESS_STYLES)]
        program = int(rng.choice(PROGRAMS[style])) if style in PROGRAMS else None
        tonal = style in ("pad", "drone")
        return TempoClip(seed, style, program, None, "4/4", 0.0, int(rng.integers(0, 12)) if tonal else None,
                         str(rng.choice(("major", "minor"))) if tonal else None)
    style = BEAT_STYLES[seed % len(BEAT_STYLES)] if seed % 3 else str(rng.choice(BEAT_STYLES))
    program = int(rng.choice(DRUM_KITS)) if style == "drums" else int(rng.choice(PROGRAMS[style]))
    bpm = float(rng.integers(60, 181))
    meter = "3/4" if rng.random() < 0.25 else "4/4"
    swing = float(rng.uniform(0.15, 0.35)) if style in ("drums", "pluck", "bassline", "melody", "band") \
        and rng.random() < 0.3 else 0.0
    return TempoClip(seed, style, program, bpm, meter, swing, int(rng.integers(0, 12)),
                     str(rng.choice(("major", "minor"))))


def clip_midi(clip: TempoClip) -> tuple[bytes, tuple[float, ...]]:
    """The clip as a standard MIDI file, and the times (s) of its notes on the straight 16th grid."""
    rng = np.random.default_rng([clip.seed, 32])
    bpm = clip.bpm or 60.0
    beat_s = 60.0 / bpm
    events: list[tuple[int, bytes]] = [(0, b"\xff\x51\x03" + int(60e6 / bpm).to_bytes(3, "big"))]
    on_grid: set[float] = set()
    per_bar = 3 if clip.meter == "3/4" else 4
    sixteenths = int(SECONDS / beat_s * 4) + 2
    offset = float(rng.uniform(0.0, 0.5)) if clip.bpm else 0.0  # the clip need not start on a beat

    def note(channel: int, pitch: int, sixteenth: float, length: float, velocity: int, *, late: float = 0.0) -> None:
        """A note at a 16th-note position (beats = sixteenth / 4), swung when on an off-beat 16th."""
        swung = clip.swing if int(sixteenth) % 2 == 1 and sixteenth == int(sixteenth) else 0.0
        beat = sixteenth / 4 + swung / 4 + late - offset
        if beat < 0:
            return
        events.append((round(beat * TICKS), bytes([0x90 | channel, pitch, velocity])))
        events.append((round((beat + length) * TICKS), bytes([0x80 | channel, pitch, 0])))
        if swung == 0.0 and late == 0.0 and beat * beat_s < SECONDS:
            on_grid.add(round(beat * beat_s, 6))

    tonic = clip.tonic if clip.tonic is not None else 0
    minor = clip.mode == "minor"
    scale = MINOR if minor else MAJOR
    base = 48 + tonic
    progression = ((0, 5, 3, 4), (0, 3, 4, 0), (0, 4, 5, 3))[int(rng.integers(0, 3))]

    def triad(degree: int) -> list[int]:
        return [base + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]

    if clip.style in ("pad", "drone"):
        events.append((0, bytes([0xC0, clip.program or 0])))
        if clip.style == "drone":
            for pitch in (base - 12, base - 5, base):
                note(0, pitch, 0, 40, 75)
            changes = np.cumsum(rng.uniform(1.3, 2.9, 4))  # a slow line over it, off any grid
            for start in changes:
                note(0, base + 12 + scale[int(rng.integers(0, 7))], 4 * float(start), 2.5, 50)
        else:
            start = 0.0
            for degree in progression:
                length = float(rng.uniform(1.0, 2.2))  # seconds at "60 bpm": chord changes at no steady rate
                for pitch in [triad(degree)[0] - 12, *triad(degree)]:
                    note(0, pitch, 4 * start, length + 0.3, int(rng.integers(55, 80)))
                start += length
        return _smf(events), ()

    bars = sixteenths // (4 * per_bar) + 2
    bar16 = 4 * per_bar
    if clip.style in ("drums", "band"):
        events.append((0, bytes([0xC9, int(rng.choice(DRUM_KITS)) if clip.style == "band" else clip.program or 0])))
        groove = str(rng.choice(("rock", "house", "hiphop", "breaks"))) if per_bar == 4 else "waltz"
        kick_at = {"rock": (0, 8, 10), "house": (0, 4, 8, 12), "hiphop": (0, 7, 10), "breaks": (0, 10),
                   "waltz": (0,)}[groove]
        snare_at = {"rock": (4, 12), "house": (4, 12), "hiphop": (4, 12), "breaks": (4, 12), "waltz": (4, 8)}[groove]
        hat_step = 1 if groove in ("breaks", "hiphop") and rng.random() < 0.5 else 2
        for bar in range(bars):
            for step in range(bar16):
                s = bar * bar16 + step
                if step % hat_step == 0:
                    hat = OPEN_HAT if groove == "house" and step % 4 == 2 else CLOSED_HAT
                    note(9, hat, s, 0.1, int(rng.integers(50, 80)))
                if step in kick_at:
                    note(9, KICK, s, 0.2, 110)
                if step in snare_at:
                    note(9, CLAP if groove == "house" else SNARE, s, 0.2, 100)
                if groove == "breaks" and step == 14 and rng.random() < 0.5:
                    note(9, SNARE, s, 0.2, 70)
            if bar % 4 == 0 and rng.random() < 0.3:
                note(9, CRASH if rng.random() < 0.5 else RIDE, bar * bar16, 0.5, 80)
    if clip.style == "drums":
        return _smf(events), tuple(sorted(on_grid))

    events.append((0, bytes([0xC0, clip.program or 0])))
    if clip.style == "band":
        events.append((0, bytes([0xC1, int(rng.choice(PROGRAMS["bassline"]))])))
    for bar in range(bars):
        degree = progression[bar % 4]
        chord = [p + 12 for p in triad(degree)]
        first = bar * bar16
        if clip.style == "arp16":
            pattern = [chord[0], chord[1], chord[2], chord[0] + 12, chord[2], chord[1]]
            up_down = int(rng.integers(0, 2))
            for step in range(bar16):
                pitch = pattern[step % 6] if up_down else [*chord, chord[0] + 12][step % 4]
                note(0, pitch, first + step, 0.22, int(rng.integers(70, 105)) + (15 if step % 4 == 0 else 0))
        elif clip.style == "pluck":
            hits = [step for step in range(bar16) if step % 4 == 0 or rng.random() < 0.45]
            for step in hits:
                note(0, int(rng.choice([*chord, chord[0] + 12])), first + step, 0.4, int(rng.integers(70, 110)))
        elif clip.style == "strum":
            for step in range(0, bar16, 2):
                if step % 4 == 0 or rng.random() < 0.7:
                    down = step % 4 == 0
                    strings = [chord[0] - 12, chord[0] - 5, *chord] if down else chord[::-1]
                    for k, pitch in enumerate(strings):  # a strum: 12 ms between strings, the first on the grid
                        note(0, pitch, first + step, 0.45, 90 if down else 70, late=k * 0.012 / beat_s)
        elif clip.style == "bassline":
            root = base - 12 + scale[degree]
            for step in range(0, bar16, 2 if rng.random() < 0.6 else 1):
                if step % 4 == 0 or rng.random() < 0.65:
                    pitch = root + int(rng.choice((0, 0, 12, 7)))
                    note(0, pitch, first + step, 0.4, int(rng.integers(85, 115)))
        elif clip.style in ("chords", "band"):
            stabs = str(rng.choice(("beats", "offbeats", "charleston"))) if clip.style == "chords" else "beats"
            steps = {"beats": range(0, bar16, 4), "offbeats": range(2, bar16, 4),
                     "charleston": (0, 6, 8, 14) if per_bar == 4 else (0, 6)}[stabs]
            for step in steps:
                for pitch in chord:
                    note(0, pitch, first + step, 0.8 if stabs == "beats" else 0.4, int(rng.integers(65, 95)))
            if clip.style == "band":
                for step in range(0, bar16, 4):
                    note(1, base - 12 + scale[degree], first + step, 0.9, 95)
        elif clip.style == "melody":
            for step in range(0, bar16, 2):
                if step % 4 == 0 or rng.random() < 0.6:
                    pitch = int(rng.choice(chord)) + 12 if step % 4 == 0 else base + 24 + scale[int(rng.integers(0, 7))]
                    note(0, pitch, first + step, 0.45, int(rng.integers(70, 105)))
    if clip.style == "band":
        events.append((0, bytes([0xC1, int(rng.choice(PROGRAMS["bassline"]))])))
    return _smf(events), tuple(sorted(on_grid))


def speech(clip: TempoClip) -> np.ndarray:
    """Spoken word by espeak-ng (mono float32, SECONDS long at RATE)."""
    rng = np.random.default_rng([clip.seed, 33])
    text = SPEECH[int(rng.integers(0, len(SPEECH)))]
    voice = str(rng.choice(("en", "en-us", "en+f3", "en+m3", "de", "fr")))
    with tempfile.TemporaryDirectory() as work:
        wav = Path(work) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.integers(140, 190))), "-w", str(wav), text],
                       check=True, capture_output=True, timeout=60)
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    count = round(audio.size * RATE / rate)
    audio = np.interp(np.arange(count) * rate / RATE, np.arange(audio.size), audio).astype(np.float32)
    return audio


def render_clip(clip: TempoClip) -> tuple[np.ndarray, tuple[float, ...]]:
    """The clip's clean audio ((SECONDS * RATE,) float32 mono) and its notes on the 16th grid."""
    count = int(SECONDS * RATE)
    onsets: tuple[float, ...] = ()
    if clip.style == "noise":
        styles = ("white", "pink", "brown")
        audio = noise(KeyClip(clip.seed, "noise", styles[clip.seed % 3], None, None, None, None))
        t = np.arange(count) / RATE
        audio = audio * (0.7 + 0.3 * np.sin(2 * np.pi * 0.23 * t + clip.seed)).astype(np.float32)  # wind, slowly
    elif clip.style == "speech":
        audio = speech(clip)
    else:
        data, onsets = clip_midi(clip)
        with tempfile.TemporaryDirectory() as work:
            wav = Path(work) / "clip.wav"
            render_midi(data, wav)
            audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
        assert rate == RATE
        audio = audio.mean(axis=1)
    audio = audio[:count]
    return np.pad(audio, (0, count - audio.size)).astype(np.float32), onsets


def speech_available() -> bool:
    return shutil.which("espeak-ng") is not None


def clip_list(seeds: list[int] | None = None) -> list[TempoClip]:
    clips = [tempo_clip(seed) for seed in (seeds or [*TUNING_SEEDS, *HELD_OUT_SEEDS])]
    return [clip for clip in clips if clip.style != "speech" or speech_available()]


def build(out: Path = CORPUS, seeds: list[int] | None = None) -> list[TempoClip]:
    """Render (what is missing of) the corpus into `out`: NAME.wav, NAME.codec.wav, manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    done = {clip.seed: clip for clip in load(out)} if (out / "manifest.json").is_file() else {}
    clips = []
    for clip in clip_list(seeds):
        clean, decoded = out / f"{clip.name}.wav", out / f"{clip.name}.codec.wav"
        if clean.is_file() and clip.seed in done:
            clip = done[clip.seed]
        else:
            audio, onsets = render_clip(clip)
            clip = TempoClip(**{**asdict(clip), "onsets_s": onsets})
            soundfile.write(clean, audio, RATE, subtype="FLOAT")
        if not decoded.is_file():
            audio, _ = soundfile.read(clean, dtype="float32")
            soundfile.write(decoded, codec_round_trip(audio), RATE, subtype="FLOAT")
        clips.append(clip)
        (out / "manifest.json").write_text(json.dumps([asdict(c) for c in clips], indent=1))
    return clips


def note_delay(program: int, *, drums: bool = False) -> float:
    """How long (s) after its note-on a lone note of `program` (a kick and a snare of kit `program` for
    drums) is heard: where its level (1 ms frames) first comes within 20 dB of its loudest in the first
    300 ms. The soundfont's samples start late or swell (a church organ 14 ms, a flute 16 ms, a picked
    bass 19 ms, a drum kit 1 ms), so a note's MIDI time is not when it is heard."""
    channel = 9 if drums else 0
    pitches = (KICK, SNARE) if drums else (36 if program in PROGRAMS["bassline"] else 60,)
    delays = []
    for pitch in pitches:
        events = [(0, b"\xff\x51\x03" + (1_000_000).to_bytes(3, "big")), (0, bytes([0xC0 | channel, program])),
                  (TICKS // 2, bytes([0x90 | channel, pitch, 90])), (TICKS, bytes([0x80 | channel, pitch, 0]))]
        with tempfile.TemporaryDirectory() as work:
            wav = Path(work) / "note.wav"
            render_midi(_smf(events), wav)
            audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
        start = rate // 2  # the note-on, half a beat at 60 bpm
        frame = rate // 1000
        note = audio.mean(axis=1)[start : start + 300 * frame]
        level = 20 * np.log10(np.sqrt(np.mean(note[: note.size // frame * frame].reshape(-1, frame) ** 2, axis=1))
                              + 1e-9)
        delays.append(float(np.argmax(level > level.max() - 20.0)) / 1000)
    return min(delays)


def note_delays(clips: list[TempoClip], out: Path = CORPUS) -> dict[str, float]:
    """note_delay of each program (key "kit N" for drum kits) the clips play, cached in out/note-delays.json.
    A band clip is heard by its kit."""
    path = out / "note-delays.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    for clip in clips:
        key = delay_key(clip)
        if key is not None and key not in cache:
            cache[key] = note_delay(clip.program if clip.style != "band" else 0, drums=clip.style in ("drums", "band"))
    path.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return cache


def delay_key(clip: TempoClip) -> str | None:
    if clip.bpm is None:
        return None
    if clip.style == "drums":
        return f"kit {clip.program}"
    return "kit 0" if clip.style == "band" else str(clip.program)


def load(out: Path = CORPUS) -> list[TempoClip]:
    return [TempoClip(**{**entry, "onsets_s": tuple(entry["onsets_s"])})
            for entry in json.loads((out / "manifest.json").read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=CORPUS)
    args = parser.parse_args()
    clips = build(args.out)
    beat = [clip for clip in clips if clip.has_beat]
    print(f"{len(clips)} clips in {args.out}: {len(beat)} with a beat "
          f"({sum(c.meter == '3/4' for c in beat)} in 3/4, {sum(c.swing > 0 for c in beat)} swung), "
          f"{len(clips) - len(beat)} beatless; {sum(c.held_out for c in clips)} held out"
          + ("" if speech_available() else "; no spoken word (espeak-ng is not installed)"))


if __name__ == "__main__":
    main()
