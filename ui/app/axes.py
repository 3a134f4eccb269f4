"""Axis ticks for the spectrogram view: frequency on riffusion's mel scale (so ticks are not evenly
spaced), time in seconds or bars|beats. Pure arithmetic on the codec's parameters, no DSP."""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.codec.params import SpectrogramParams

HZ_TICKS = (100, 200, 500, 1000, 2000, 3000, 5000, 7000, 10000)
HZ_LABEL_ORDER = (1000, 100, 10000, 500, 5000, 200, 2000, 3000, 7000)  # which labels to keep first when crowded


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)  # HTK, as engine/codec/mel.py (riffusion's mel_scale="htk")


def frequency_ticks(params: SpectrogramParams) -> list[tuple[float, str]]:
    """(fraction of the height from the bottom, label) for each tick inside the image's range."""
    low, high = _mel(params.min_hz), _mel(params.max_hz)
    ticks = []
    for hz in HZ_TICKS:
        if params.min_hz < hz <= params.max_hz:
            label = f"{hz // 1000}k" if hz >= 1000 else str(hz)
            ticks.append(((_mel(hz) - low) / (high - low), label))
    return ticks


def unclashing(spans: Sequence[tuple[float, float]], order: Sequence[int], gap: float = 2.0) -> list[int]:
    """Which labels to draw so none overlaps another: going through `order` (indexes into `spans`, the most
    wanted first), each label whose span along the axis (low, high, in pixels) clears by `gap` every label kept.
    Why: in a strip beside the DAW the spectrogram is 140 px high and 100, 200 and 500 Hz were drawn over each
    other; a label left out keeps its grid line. Returns the kept indexes, sorted."""
    kept: list[int] = []
    for index in order:
        low, high = spans[index]
        if all(high + gap <= spans[other][0] or spans[other][1] + gap <= low for other in kept):
            kept.append(index)
    return sorted(kept)


def frequency_label_order(ticks: Sequence[tuple[float, str]]) -> list[int]:
    """The indexes of `frequency_ticks`' ticks, the rounder frequencies first (1k, 100, 10k, 500...)."""
    rank = {hz: place for place, hz in enumerate(HZ_LABEL_ORDER)}
    hz = [int(label[:-1]) * 1000 if label.endswith("k") else int(label) for _, label in ticks]
    return sorted(range(len(ticks)), key=lambda index: rank.get(hz[index], len(rank)))


def column_seconds(params: SpectrogramParams) -> float:
    return params.hop_length / params.sample_rate


def time_ticks(start_s: float, end_s: float, *, bpm: float | None = None, beats_per_bar: int = 4,
               target: int = 8) -> list[tuple[float, str, bool]]:
    """(seconds, label, major) between start and end: bars|beats when a BPM is known, else seconds."""
    span = max(end_s - start_s, 1e-6)
    if bpm:
        beat = 60.0 / bpm
        step_beats = 1
        while span / (beat * step_beats) > target * 2:
            step_beats *= 2
        ticks = []
        first = math.floor(start_s / beat)
        index = first
        while index * beat <= end_s:
            if index >= 0 and index % step_beats == 0:
                bar, in_bar = divmod(index, beats_per_bar)
                major = in_bar == 0
                ticks.append((index * beat, f"{bar + 1}" if major else f"{bar + 1}.{in_bar + 1}", major))
            index += 1
        return ticks
    steps = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
    step = next((s for s in steps if span / s <= target), 60)
    ticks = []
    value = math.ceil(start_s / step) * step
    while value <= end_s + 1e-9:
        ticks.append((value, f"{value:g}s", True))
        value += step
    return ticks
