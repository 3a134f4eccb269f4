"""A loop on the grid moved into the session's key (`--key Am`, a preset's `key = "Am"`): pure, arrays in.

    moved = to_key(fitted, MusicalKey.parse("Am"))   # FittedLoop: audio shifted, report.key the loop's new key

The shift is the one `MusicalKey.semitones_from` gives (-5..+6: the nearer way round, and a loop in the
other mode goes to the relative key, so a C major loop asked for A minor is left alone: the same notes),
done by the codec's pitch shift (`engine.codec.pitch_shift`), which keeps the tempo. A loop in which the
detector found no key (drums, noise) is left as it is, and says so. The report's `transposed` record says
what was done (the key found, the key asked for, the semitones), and its `key` becomes the loop's key
after the shift, so the sidecar, the acid chunk's root note and a file name agree with what is heard.

Why after the grid fit and not before: the fit finds the beat in the source, cuts a span starting on a
hit and decodes exactly that span to the grid's length; the pitch shift keeps every frame where it was
(the same hop, the same length), so shifting the finished loop moves no onset off the grid (by under 2 ms
on plucks and hats: tests/test_codec_pitch_shift.py, tests/benchmarks/results/pitch-shift.md), and shifting
it as a loop (its end read before its start) keeps the seam the fit made (it clicks no more than before).
Before the fit, the image (which the fit decodes
itself) and the audio it analyses would both have to be shifted: two shifts of which only one is heard,
and the beat found on shifted audio.
"""

from __future__ import annotations

from dataclasses import replace

from engine.codec.pitch_shift import shift_pitch
from plugin.fit import FittedLoop
from plugin.musical_key import MusicalKey

NOT_TRANSPOSED = "no key found: not transposed"


def to_key(fitted: FittedLoop, target: MusicalKey) -> FittedLoop:
    """`fitted` in `target` (or its relative, in the loop's mode); with no key found, as it was (see the module)."""
    found = MusicalKey.from_record(fitted.report.key)
    record: dict = {"detected": found.name if found else None, "target": target.name}
    if found is None:
        record.update(semitones=0, note=NOT_TRANSPOSED)
        return replace(fitted, report=replace(fitted.report, transposed=record))
    semitones = target.semitones_from(found)
    record["semitones"] = semitones
    if semitones == 0:
        return replace(fitted, report=replace(fitted.report, transposed=record))
    audio = shift_pitch(fitted.audio, fitted.sample_rate, semitones, looped=True)
    moved = MusicalKey((found.tonic + semitones) % 12, found.minor)
    key = {**fitted.report.key, "name": moved.name, "tonic": moved.tonic}
    return replace(fitted, audio=audio, report=replace(fitted.report, key=key, transposed=record))


def summary(transposed: dict | None) -> str:
    """The `wrote` line's words for what was done: "transposed -3 semitones from Cmin", "no key found: ..."."""
    if not transposed:
        return ""
    detected, target = transposed.get("detected"), transposed["target"]
    if detected is None:
        return NOT_TRANSPOSED
    if not transposed["semitones"]:
        return f"already in {target}: not transposed" if detected == target else \
            f"{detected} has the notes of {target}: not transposed"
    return f"transposed {transposed['semitones']:+d} semitones from {detected}"
