"""Key names as producers write them, and which keys fit together (plugin.musical_key)."""

from __future__ import annotations

import pytest

from plugin.key import KeyEstimate
from plugin.musical_key import ALL_KEYS, MusicalKey, NotAKey

A_MINOR = MusicalKey(9, True)
C_MAJOR = MusicalKey(0, False)


@pytest.mark.parametrize("text", ["Am", "A minor", "Amin", "a-", "A MINOR", " am "])
def test_spellings_of_a_minor(text: str) -> None:
    assert MusicalKey.parse(text) == A_MINOR


@pytest.mark.parametrize(("text", "name"), [
    ("C", "Cmaj"), ("F#maj", "F#maj"), ("Gb", "F#maj"), ("Bbm", "A#min"), ("Ebm", "D#min"),
    ("E flat major", "D#maj"), ("CM", "Cmaj"), ("Cb", "Bmaj"), ("B#", "Cmaj"), ("C♯ minor", "C#min"),
])
def test_names_round_trip_in_sharps(text: str, name: str) -> None:
    key = MusicalKey.parse(text)
    assert key.name == name
    assert MusicalKey.parse(key.name) == key


@pytest.mark.parametrize("text", ["", "H", "A dorian", "Am7", "120"])
def test_not_a_key_says_how_to_write_one(text: str) -> None:
    with pytest.raises(NotAKey, match="write it like Am"):
        MusicalKey.parse(text)


def test_names_agree_with_the_detector() -> None:
    """A key the detector writes into a sidecar reads back as the same key."""
    for key in ALL_KEYS:
        estimate = KeyEstimate(key.tonic, "minor" if key.minor else "major", 0.9, 0.9, 0.5, None)
        assert MusicalKey.parse(estimate.name) == key
        assert MusicalKey.from_record(estimate.to_dict()) == key
    assert MusicalKey.from_record(None) is None


def test_what_fits_a_minor() -> None:
    fitting = {key.name for key in A_MINOR.fitting()}
    assert fitting == {"Amin", "Cmaj", "Emin", "Gmaj", "Dmin", "Fmaj"}
    assert not A_MINOR.fits(MusicalKey.parse("A major"))  # parallel: three notes differ
    assert not A_MINOR.fits(MusicalKey.parse("Bb"))


def test_fits_is_symmetric_and_six_wide() -> None:
    for key in ALL_KEYS:
        assert len(key.fitting()) == 6
        for other in ALL_KEYS:
            assert key.fits(other) == other.fits(key)


def test_transposition_keeps_the_mode_and_the_nearer_octave() -> None:
    assert A_MINOR.semitones_from(MusicalKey.parse("Bm")) == -2
    assert A_MINOR.semitones_from(C_MAJOR) == 0  # the relative: already the same notes
    assert A_MINOR.semitones_from(MusicalKey.parse("D")) == -2  # D major -> C major, A minor's relative
    assert A_MINOR.semitones_from(MusicalKey.parse("D#m")) == 6
    assert A_MINOR.semitones_from(MusicalKey.parse("Em")) == 5
    for key in ALL_KEYS:
        for other in ALL_KEYS:
            shift = key.semitones_from(other)
            assert -5 <= shift <= 6
            moved = MusicalKey((other.tonic + shift) % 12, other.minor)
            assert moved in (key, key.relative)
