"""Musical keys as a producer writes them, and which keys sit together: pure, no audio.

    MusicalKey.parse("Am") == MusicalKey.parse("A minor") == MusicalKey(9, True)
    MusicalKey(9, True).name                    # "Amin", the sample-pack spelling (as plugin.key writes it)
    MusicalKey.parse("Am").fits(MusicalKey.parse("Cmaj"))     # True: the relative key
    MusicalKey.parse("Am").semitones_from(MusicalKey.parse("Bmin"))   # -2: shift a B minor loop down a tone

Why one module: the CLI's and presets' `--key`, the library's key filter and "fits A minor", and the
transposition all read and compare keys; one parser and one notion of "fits" keep them agreeing.
"Fits" is what a producer layering loops means: the same key, its relative (the same notes), and the
neighbours a fifth up and down on the circle of fifths in either mode (one note apart). Parallel keys
(C major / C minor) share a tonic but three notes differ, so they do not fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_KEY = re.compile(
    r"^\s*([a-g])\s*(#|♯|b|♭|sharp|flat)?\s*"
    r"(m|min|minor|-|maj|major|M|)?\s*$",
    re.IGNORECASE,
)
MAX_SHIFT = 6  # a transposition never goes further than a tritone either way: the nearer octave


class NotAKey(ValueError):
    """Not a key this module can read; the message says what it accepts."""


@dataclass(frozen=True)
class MusicalKey:
    """tonic: pitch class 0-11 (C = 0); minor: the mode."""

    tonic: int
    minor: bool

    def __post_init__(self) -> None:
        if not 0 <= self.tonic < 12:
            raise ValueError(f"tonic must be 0-11, not {self.tonic}")

    @classmethod
    def parse(cls, text: str) -> MusicalKey:
        """'Am', 'A minor', 'Amin', 'a-', 'F#maj', 'Gb', 'Bbm', 'C' (major when no mode is given)."""
        match = _KEY.match(text)
        if match is None:
            raise NotAKey(f"not a key: {text!r} (write it like Am, A minor, F#maj, Bb or Ebm)")
        letter, accidental, mode = match.groups()
        tonic = _LETTERS[letter.lower()]
        if accidental:
            tonic += 1 if accidental.lower() in ("#", "♯", "sharp") else -1
        # 'M' alone is major in chord-symbol spelling; every other mode word is case-insensitive.
        minor = bool(mode) and mode != "M" and mode.lower() in ("m", "min", "minor", "-")
        return cls(tonic % 12, minor)

    @classmethod
    def from_record(cls, record: dict | None) -> MusicalKey | None:
        """The key of a sidecar's or fit record's {"tonic", "mode", ...} (plugin.key's to_dict), or None."""
        if not record or record.get("tonic") is None:
            return None
        return cls(int(record["tonic"]) % 12, record.get("mode") == "minor")

    @property
    def name(self) -> str:
        """'Amin', 'F#maj': how sample packs write a key in a file name (sharps)."""
        return SHARP_NAMES[self.tonic] + ("min" if self.minor else "maj")

    @property
    def words(self) -> str:
        """'A minor', 'F# major': how the app says it."""
        return SHARP_NAMES[self.tonic] + (" minor" if self.minor else " major")

    @property
    def relative(self) -> MusicalKey:
        """The key with the same notes in the other mode (A minor <-> C major)."""
        return MusicalKey((self.tonic + 3) % 12, False) if self.minor else MusicalKey((self.tonic - 3) % 12, True)

    @property
    def fifths(self) -> int:
        """Position on the circle of fifths of the major key with these notes (C = 0, G = 1, F = 11)."""
        major_tonic = self.relative.tonic if self.minor else self.tonic
        return (major_tonic * 7) % 12

    def fits(self, other: MusicalKey) -> bool:
        """Whether loops in these keys layer: the same notes, or one fifth apart on the circle (either mode)."""
        step = (self.fifths - other.fifths) % 12
        return step in (0, 1, 11)

    def semitones_from(self, other: MusicalKey) -> int:
        """The shift in semitones (-5..+6: never more than MAX_SHIFT) that moves a loop in `other` into this key.

        A loop in the other mode goes to this key's relative (a C major loop asked for A minor needs no
        shift: the same notes), so a transposition never changes the mode of what was played."""
        target = self if self.minor == other.minor else self.relative
        shift = (target.tonic - other.tonic) % 12
        return shift - 12 if shift > MAX_SHIFT else shift

    def fitting(self) -> tuple[MusicalKey, ...]:
        """Every key that fits this one (six: three places on the circle, two modes each)."""
        return tuple(key for key in ALL_KEYS if self.fits(key))


ALL_KEYS: tuple[MusicalKey, ...] = tuple(MusicalKey(tonic, minor) for minor in (False, True) for tonic in range(12))
