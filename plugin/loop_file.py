"""A fitted loop as a file DAWs read: WAV (16/24-bit PCM, 32-bit float) with loop chunks, FLAC, AIFF;
44.1 or 48 kHz, exact in length at either; peak -1 dBFS, or loudness-normalised with a true-peak ceiling.

    audio_record = write_loop_file(path, fitted, LoopFileSettings(bit_depth="24", sample_rate=48000),
                                   prompt=..., seed=...)

Resampling is scipy's polyphase filter (`scipy.signal.resample_poly`, the well-kept library itself),
run on the loop wrapped around itself so the seam stays seamless, then cut to the exact length at the
new rate. Loudness is ITU-R BS.1770 integrated loudness (pyloudnorm); true peak is measured 4x
oversampled (BS.1770's method) and kept below the ceiling by lowering the gain, never by clipping.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from engine.atomic import atomic_path
from engine.choices import BIT_DEPTHS, SAMPLE_RATES
from engine.errors import InvalidInputError
from engine.version import __version__
from plugin.fit import FittedLoop
from plugin.wav_chunks import LoopInfo, add_loop_chunks

FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aiff": "AIFF", ".aif": "AIFF"}
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}  # soundfile's name of each of BIT_DEPTHS
PEAK_DBFS = -1.0
TRUE_PEAK_CEILING_DBTP = -1.0
MIN_LUFS, MAX_LUFS = -40.0, -5.0


@dataclass(frozen=True)
class LoopFileSettings:
    bit_depth: str = "24"  # "16", "24" or "32f"
    sample_rate: int = 44100
    normalize_lufs: float | None = None  # e.g. -14; None = peak at -1 dBFS

    def validate(self, path: str | os.PathLike[str] | None = None) -> LoopFileSettings:
        if self.bit_depth not in BIT_DEPTHS:
            raise InvalidInputError(f"bit depth must be 16, 24 or 32f, not {self.bit_depth!r}")
        if self.sample_rate not in SAMPLE_RATES:
            raise InvalidInputError(f"sample rate must be 44100 or 48000, not {self.sample_rate!r}")
        if self.normalize_lufs is not None and (
                isinstance(self.normalize_lufs, bool) or not isinstance(self.normalize_lufs, int | float)
                or not MIN_LUFS <= self.normalize_lufs <= MAX_LUFS):
            raise InvalidInputError(f"loudness target must be from {MIN_LUFS:g} to {MAX_LUFS:g} LUFS, "
                                    f"not {self.normalize_lufs!r} (-14 is the streaming norm)")
        if path is not None:
            file_format = loop_file_format(path)
            if file_format == "FLAC" and self.bit_depth == "32f":
                raise InvalidInputError("FLAC holds 16 or 24-bit audio: use --bit-depth 24, or a .wav for 32f")
        return self


def loop_file_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(f"cannot write a loop to {Path(path).name}: use a .wav, .flac or .aiff file name")
    return FORMATS[suffix]


def resample_loop(audio: np.ndarray, from_rate: int, to_rate: int, num_samples: int) -> np.ndarray:
    """A seamless loop at another rate, exactly `num_samples` long: resampled wrapped around itself."""
    if from_rate == to_rate:
        return audio[:num_samples]
    from fractions import Fraction

    ratio = Fraction(to_rate, from_rate)
    context = ratio.denominator * max(1, math.ceil(64 / ratio.denominator))  # input samples each side
    wrapped = np.concatenate([_tail(audio, context), audio, _head(audio, context)], axis=0)
    out = resample_by(wrapped, ratio.numerator, ratio.denominator)
    start = context * ratio.numerator // ratio.denominator
    out = out[start : start + num_samples]
    if out.shape[0] < num_samples:
        out = np.pad(out, ((0, num_samples - out.shape[0]), (0, 0)))
    return out


def resample_by(samples: np.ndarray, up: int, down: int) -> np.ndarray:
    """scipy's polyphase resampler (Kaiser, beta 5) along axis 0, float32: the files a producer keeps go
    through the well-kept library itself. (The codec's own copy of this filter, `engine.codec.resample`,
    only serves its internal decode rates, where importing scipy.signal would double a cold decode.)"""
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(samples, dtype=np.float32), up, down, axis=0).astype(np.float32)


def true_peak(audio: np.ndarray) -> float:
    """Largest absolute value of the loop 4x oversampled (wrapped, as it will play)."""
    context = 16
    wrapped = np.concatenate([_tail(audio, context), audio, _head(audio, context)], axis=0)
    return float(np.max(np.abs(resample_by(wrapped, 4, 1)))) if audio.size else 0.0


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (BS.1770 via pyloudnorm); short loops are measured looped to 3 s."""
    import pyloudnorm

    repeats = max(1, math.ceil(3.0 * sample_rate / max(audio.shape[0], 1)))
    measured = np.tile(audio, (repeats, 1)).astype(np.float64)
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(measured))


def level(audio: np.ndarray, sample_rate: int, settings: LoopFileSettings) -> tuple[np.ndarray, dict[str, Any]]:
    """The loop at its output level, and what was done (for the sidecar)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0:
        return audio, {"normalize": "silence"}
    if settings.normalize_lufs is None:
        gain = 10 ** (PEAK_DBFS / 20) / peak
        return audio * np.float32(gain), {"normalize": "peak", "peak_dbfs": PEAK_DBFS}
    before = loudness(audio, sample_rate)
    if not math.isfinite(before):
        gain = 10 ** (PEAK_DBFS / 20) / peak
        return audio * np.float32(gain), {"normalize": "peak", "peak_dbfs": PEAK_DBFS,
                                          "note": "too quiet to measure loudness"}
    gain = 10 ** ((settings.normalize_lufs - before) / 20)
    ceiling = 10 ** (TRUE_PEAK_CEILING_DBTP / 20) * 0.999
    peak_after = true_peak(audio) * gain
    record: dict[str, Any] = {"normalize": "loudness", "target_lufs": settings.normalize_lufs}
    if peak_after > ceiling:
        gain *= ceiling / peak_after
        record["note"] = (f"true peak would reach {20 * math.log10(peak_after):.1f} dBTP: gain lowered to keep it "
                          f"below {TRUE_PEAK_CEILING_DBTP:g} dBTP")
    out = (audio * np.float32(gain)).astype(np.float32)
    record["loudness_lufs"] = round(loudness(out, sample_rate), 2)
    record["true_peak_dbtp"] = round(20 * math.log10(max(true_peak(out), 1e-12)), 2)
    return out, record


def write_loop_file(path: str | os.PathLike[str], fitted: FittedLoop, settings: LoopFileSettings, *,
                    prompt: str = "", seed: int | None = None, name: str | None = None) -> dict[str, Any]:
    """Write the loop (atomically); returns the sidecar's "audio" record."""
    path = Path(path)
    settings.validate(path)
    file_format = loop_file_format(path)
    rate = settings.sample_rate
    grid = fitted.grid
    num_samples = grid.num_samples(rate)
    audio = resample_loop(fitted.audio, fitted.sample_rate, rate, num_samples)
    audio, levels = level(audio, rate, settings)
    audio = np.clip(audio, -1.0, 1.0)
    subtype = SUBTYPES[settings.bit_depth]
    with atomic_path(path) as temporary:
        if file_format == "WAV":
            buffer = io.BytesIO()
            soundfile.write(buffer, audio, rate, format="WAV", subtype=subtype)
            beats = float(grid.beats)
            bars = float(grid.bars)
            key = fitted.report.key
            info = LoopInfo(
                num_samples=num_samples, sample_rate=rate, bpm=grid.bpm, beats=round(beats),
                meter_numerator=grid.meter.numerator, meter_denominator=grid.meter.denominator,
                bar_starts=tuple(grid.bar_starts(rate)), name=name or path.stem, comment=prompt,
                software=f"riffstudio {__version__}",
                keywords="; ".join(part for part in (f"seed {seed}" if seed is not None else "", f"{grid.bpm:g} bpm",
                                                     f"{bars:g} bars", f"meter {grid.meter}",
                                                     f"key {key['name']}" if key else "") if part),
                created=time.strftime("%Y-%m-%d"),
                root_note=48 + int(key["tonic"]) if key else None)
            temporary.write_bytes(add_loop_chunks(buffer.getvalue(), info))
        else:
            soundfile.write(temporary, audio, rate, format=file_format, subtype=subtype)
    return {"file": path.name, "format": file_format.lower(), "bit_depth": settings.bit_depth,
            "sample_rate": rate, "samples": num_samples, "channels": int(audio.shape[1]),
            "seconds": round(num_samples / rate, 6), **levels}


def _tail(audio: np.ndarray, count: int) -> np.ndarray:
    reps = math.ceil(count / max(audio.shape[0], 1))
    return np.tile(audio, (reps, 1))[-count:] if reps > 1 else audio[-count:]


def _head(audio: np.ndarray, count: int) -> np.ndarray:
    reps = math.ceil(count / max(audio.shape[0], 1))
    return np.tile(audio, (reps, 1))[:count] if reps > 1 else audio[:count]
