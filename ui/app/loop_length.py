"""How long the loop you will drag is, and where it lies on the painted image. Pure (no Qt).

Why not the painted image's length: the engine paints more than the grid needs (room for the fit to find
the beat and close the seam), so its 5.8 s was shown over a file that is exactly 4.000 s. On the grid the
file is bars x beats-per-bar x 60/bpm exactly (plugin/fit.Grid.num_samples); off the grid the file is the
engine's audio, `duration_s`. The region comes from the export's sidecar, where the fit wrote which span of
the painted image it took (`fit.start_s`, its stretch and repeats)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ui.app.library import LibraryLoop

BEATS_PER_BAR = 4  # the app's grid is 4/4 (plugin/grid_loop.GridOptions' default meter)


@dataclass(frozen=True)
class LoopLength:
    seconds: float
    bpm: float | None = None
    bars: float | None = None

    @property
    def beats(self) -> float | None:
        return self.bars * BEATS_PER_BAR if self.bars else None

    def words(self) -> str:
        """"2 bars · 8 beats · 4.00 s · 120 bpm" on the grid; "5.10 s" off it."""
        if not (self.bpm and self.bars and self.beats):
            return f"{self.seconds:.2f} s"
        return (f"{_count(self.bars, 'bar')} · {_count(self.beats, 'beat')} · {self.seconds:.2f} s · "
                f"{self.bpm:g} bpm")


def loop_length(loop: LibraryLoop) -> LoopLength:
    """The length of `loop`'s DAW file: the grid's exact span, or the engine's audio in seconds."""
    if loop.bpm and loop.bars:
        return LoopLength(seconds=loop.bars * BEATS_PER_BAR * 60.0 / loop.bpm, bpm=loop.bpm, bars=loop.bars)
    return LoopLength(seconds=loop.duration_s)


def loop_region(loop: LibraryLoop) -> tuple[float, float] | None:
    """(start, end) in seconds of the painted image that the exported loop was cut from, or None (no grid, no
    export yet, or a sidecar without a fit record). A repeated span (a loop longer than the painting) is
    marked once."""
    if not (loop.bpm and loop.bars and loop.drag_file):
        return None
    try:
        fit = json.loads(Path(loop.drag_file).with_suffix(".json").read_text(encoding="utf-8"))["fit"]
        start, stretch = float(fit["start_s"]), float(fit["stretch"])
        unit = -(-int(fit["samples"]) // max(int(fit.get("repeats", 1)), 1))  # samples in one repeat
        return start, start + unit / (stretch * int(fit["sample_rate"]))
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return None


def _count(amount: float, unit: str) -> str:
    return f"{amount:g} {unit}" + ("" if amount == 1 else "s")
