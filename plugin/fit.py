"""A loop on the grid: a spectrogram image (and the audio it decodes to) -> exactly N bars at B bpm.

    grid = Grid.parse(bpm=100, bars=2, meter="4/4")
    fitted = fit_to_grid(image, grid, analysis_audio=audio)   # FittedLoop: audio + what was done

Length alone is not enough: a clip at its own tempo, squeezed to 2 bars, has the right length and its
beats off the grid. So: find the tempo and beat phase of what was painted (`plugin.tempo`), take a
span of whole beats starting on a strong onset (one bar repeated when the source is too short for
all of them), and decode exactly that span of the image to the exact sample count with the codec's
pitch-keeping duration control (0.5x..2x). With no beat (a pad, a drone), or `mode="length"`, the
image is fitted by length alone, and the report says so.

The end flows into the start: the samples just before the span (or, at the clip's start, just after
it) are crossfaded with equal power into the loop's tail (head), so that the last sample leads into
the first as in the source; the cut is nudged (up to 5 ms earlier, 1 ms later) to where that step
is smallest, what is left of it is ramped out over the last 2 ms, and the DC is removed. Pure:
arrays in, arrays out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from engine.choices import FIT_MODES
from engine.codec import DEFAULT_PARAMS, SpectrogramParams, decode_image
from engine.codec.decode import MAX_STRETCH, MIN_STRETCH, natural_length
from engine.errors import InvalidInputError
from plugin.key import estimate_key
from plugin.tempo import OnsetEnvelope, TempoEstimate, estimate_tempo, onset_envelope

MIN_BPM = 20.0
MAX_BPM = 400.0
MIN_CROSSFADE_S = 0.005
_SEAM_SEARCH_S = 0.005  # how far before the onset the cut may move to find the smallest step at the wrap
_SEAM_LATE_S = 0.001  # ... and how far after it
_DECODE_MARGIN_S = 0.06  # image decoded past each end of the span (the decoder's edges are its weakest)


@dataclass(frozen=True)
class Meter:
    """A time signature: `numerator` notes of 1/`denominator` per bar; the beat (bpm) is a quarter note."""

    numerator: int = 4
    denominator: int = 4

    @classmethod
    def parse(cls, text: str) -> Meter:
        parts = str(text).strip().split("/")
        try:
            numerator, denominator = (int(part) for part in parts)
        except ValueError:
            raise InvalidInputError(f"meter {text!r} must look like 4/4, 3/4 or 6/8") from None
        if not 1 <= numerator <= 32 or denominator not in (1, 2, 4, 8, 16, 32):
            raise InvalidInputError(f"meter {text!r}: use 1..32 notes of a whole, half, quarter, 8th, 16th or "
                                    "32nd per bar (e.g. 3/4)")
        return cls(numerator, denominator)

    @property
    def beats_per_bar(self) -> Fraction:
        """Quarter-note beats in a bar: 4 for 4/4, 3 for 3/4, 3 for 6/8, 7/2 for 7/8."""
        return Fraction(self.numerator * 4, self.denominator)

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


# Source beats per target beat a beat fit may take: 1, or 2 and 1/2 when the tempo found is an octave away.
SOURCE_BEATS_PER_BEAT = (Fraction(1), Fraction(2), Fraction(1, 2))
# The shortest loop: a 16th note (a quarter of a quarter-note beat). Shorter lengths are refused before any
# work rather than rendered into a loop too short to stretch, crossfade or mark.
MIN_BEATS = Fraction(1, 4)


@dataclass(frozen=True)
class Grid:
    """What the session asks for: `beats` quarter-note beats at `bpm`, in `meter`."""

    bpm: float
    beats: Fraction
    meter: Meter = field(default_factory=Meter)

    @classmethod
    def parse(cls, *, bpm: float, bars: float | None = None, beats: float | None = None,
              meter: str | Meter = "4/4") -> Grid:
        meter = meter if isinstance(meter, Meter) else Meter.parse(meter)
        if isinstance(bpm, bool) or not isinstance(bpm, int | float) or not math.isfinite(bpm) \
                or not MIN_BPM <= bpm <= MAX_BPM:
            raise InvalidInputError(f"bpm must be a number from {MIN_BPM:g} to {MAX_BPM:g}, not {bpm!r}")
        if (bars is None) == (beats is None):
            raise InvalidInputError("give the length either in bars or in beats (not both)")
        amount = bars if bars is not None else beats
        what = "bars" if bars is not None else "beats"
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount) \
                or amount <= 0 or amount > 256:
            raise InvalidInputError(f"{what} must be a number above 0 and up to 256, not {amount!r}")
        count = Fraction(amount).limit_denominator(64)
        total = count * meter.beats_per_bar if bars is not None else count
        if total < MIN_BEATS:
            raise InvalidInputError(f"{amount:g} {what} is shorter than a 16th note: a loop needs at least "
                                    f"{float(MIN_BEATS):g} beats ({float(MIN_BEATS / meter.beats_per_bar):.3g} bars "
                                    f"in {meter})")
        return cls(bpm=float(bpm), beats=total, meter=meter)

    @property
    def bars(self) -> Fraction:
        return self.beats / self.meter.beats_per_bar

    @property
    def seconds(self) -> float:
        return float(self.beats) * 60.0 / self.bpm

    def num_samples(self, sample_rate: int) -> int:
        """The exact length: round(beats x 60 / bpm x sample_rate)."""
        return round(float(self.beats) * 60.0 * sample_rate / self.bpm)

    def bar_starts(self, sample_rate: int) -> list[int]:
        """Sample index of each bar's first beat (the cue markers)."""
        bars = math.ceil(self.bars)
        per_bar = float(self.meter.beats_per_bar) * 60.0 * sample_rate / self.bpm
        return [round(bar * per_bar) for bar in range(bars)]

    def to_dict(self) -> dict[str, Any]:
        return {"bpm": self.bpm, "beats": float(self.beats), "bars": float(self.bars), "meter": str(self.meter)}


@dataclass(frozen=True)
class FitReport:
    """What fitting did, for the sidecar. Times in seconds of the source; stretch = output / source."""

    mode: str  # "beat" (on the grid) or "length" (length alone)
    reason: str
    tempo_found: float | None
    tempo_confidence: float
    tempo_octave: float | None  # tempo_found / the autocorrelation's own reading (0.5, 1, 2)
    source_beats: float | None  # beats of the source in one repeat
    repeats: int
    stretch: float
    start_s: float
    crossfade_s: float
    samples: int
    sample_rate: int
    key: dict[str, Any] | None = None  # KeyEstimate.to_dict() of the analysis audio: name, tonic, mode, confidence
    # (after a transposition, the loop's key: plugin/transpose.py)
    transposed: dict[str, Any] | None = None  # with a session key: {"detected", "target", "semitones"[, "note"]}

    def to_dict(self) -> dict[str, Any]:
        return {key: (round(value, 6) if isinstance(value, float) else value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class FittedLoop:
    audio: np.ndarray  # float32 (samples, channels)
    sample_rate: int
    grid: Grid
    report: FitReport


def image_seconds_for(grid: Grid, params: SpectrogramParams = DEFAULT_PARAMS) -> float:
    """How much image to paint for a grid: the span at any tempo the stretch can reach, with room
    for a strong first onset and the crossfade (generation paints this, rounded up to its width step)."""
    return grid.seconds * 1.3 + 0.6


def fit_to_grid(image: np.ndarray, grid: Grid, *, params: SpectrogramParams = DEFAULT_PARAMS,
                analysis_audio: np.ndarray | None = None, analysis_rate: int | None = None,
                quality: str = "standard", mode: str = "auto", stereo: bool | None = False) -> FittedLoop:
    """The image as exactly `grid.num_samples(params.sample_rate)` samples on the grid (see the module).

    image: uint8 (num_bins, columns[, channels]). analysis_audio: what the image decodes to (or the
    recording it was made from), for finding the beat; decoded here (draft) when not given.
    """
    if mode not in FIT_MODES:
        raise InvalidInputError(f"fit must be one of {', '.join(FIT_MODES)}, not {mode!r}")
    image = np.asarray(image)
    columns = image.shape[1]
    rate = params.sample_rate
    if columns < 8:
        raise InvalidInputError(f"the image is {columns} columns wide; fitting needs at least 8")
    if analysis_audio is None:
        analysis_audio = decode_image(image, params, quality="draft", stereo=stereo)
        analysis_rate = rate
    analysis_rate = analysis_rate or rate

    envelope = onset_envelope(analysis_audio, analysis_rate)
    estimate = estimate_tempo(envelope, target_bpm=grid.bpm)
    key = estimate_key(analysis_audio, analysis_rate).to_dict()
    source_s = natural_length(columns, params) / rate
    if mode != "length":
        plan = _plan_beats(estimate, grid, source_s, envelope)
        if plan is not None:
            return _render(image, grid, params, quality, stereo, estimate, *plan, mode="beat",
                           reason=f"beat found at {estimate.bpm:.2f} bpm", key=key)
        whole = any((grid.beats * per_beat).denominator == 1 for per_beat in SOURCE_BEATS_PER_BEAT)
        if mode == "beat" and not estimate.has_beat:
            raise InvalidInputError("no beat was found to fit on the grid (a pad or a drone?): use --fit length")
        if mode == "beat" and not whole:
            raise InvalidInputError(f"{float(grid.beats):g} beats is not a whole number of beats, which a beat fit "
                                    "cuts: use --fit length or whole beats")
        if mode == "beat":
            raise InvalidInputError(f"the beat found ({estimate.bpm:.1f} bpm) cannot be stretched to {grid.bpm:g} bpm "
                                    f"within {MIN_STRETCH:g}x..{MAX_STRETCH:g}x: use --fit length")
    if mode == "length":
        reason = "fitted by length alone (asked for)"
    elif not estimate.has_beat:
        reason = f"no beat found (confidence {estimate.confidence:.2f}): fitted by length alone"
    elif not whole:
        reason = f"{float(grid.beats):g} beats is not a whole number of beats: fitted by length alone"
    else:
        reason = (f"beat at {estimate.bpm:.1f} bpm cannot reach {grid.bpm:g} bpm within "
                  f"{MIN_STRETCH:g}x..{MAX_STRETCH:g}x: fitted by length alone")
    start, span_s, repeats = _plan_length(grid, source_s, rate)
    return _render(image, grid, params, quality, stereo, estimate, start, span_s, repeats, None,
                   mode="length", reason=reason, key=key)


def _plan_beats(estimate: TempoEstimate, grid: Grid, source_s: float, envelope: OnsetEnvelope):
    """(start_s, span_s, repeats, source_beats) for a beat fit, or None when the beat cannot be used.

    The span starts on the beat with the strongest hit among those that leave room for it (and, when
    one can, room before it for the crossfade)."""
    if not estimate.has_beat:
        return None
    period = estimate.period_s
    target_beats = grid.beats
    choices = []
    for per_beat in SOURCE_BEATS_PER_BEAT:
        stretch = grid.seconds / float(target_beats * per_beat) / period
        if MIN_STRETCH * 1.001 <= stretch <= MAX_STRETCH * 0.999 and (target_beats * per_beat).denominator == 1:
            penalty = 0.0 if per_beat == 1 and 0.7 <= stretch <= 1.45 else abs(math.log2(stretch)) + 0.3
            choices.append((penalty, per_beat, stretch))
    crossfade_room = 60.0 / grid.bpm / 4  # a 16th note
    envelope_times = estimate.beat_times(source_s)
    for _, per_beat, stretch in sorted(choices, key=lambda c: c[0]):
        beats_needed = int(target_beats * per_beat)
        # Whole bars (or halves of them) repeated when the source holds fewer beats than needed.
        repeats = 1
        while True:
            if beats_needed % repeats == 0:
                unit = beats_needed // repeats
                span = unit * period
                room_after = _DECODE_MARGIN_S
                starts = [t for t in envelope_times
                          if t + span + room_after <= source_s and t >= 0.0]
                if starts:
                    with_preroll = [t for t in starts if t >= crossfade_room / stretch + _DECODE_MARGIN_S]
                    hits = {t: _hit_strength(envelope, t) for t in starts}
                    strongest = max(hits.values())
                    # Room for the crossfade matters less than the hit: a clearly weaker beat is not taken for it.
                    good = [t for t in with_preroll if hits[t] >= 0.7 * strongest] or starts
                    start = max(good, key=lambda t: (hits[t], -t))
                    return start, span, repeats, float(unit)
            repeats += 1
            if repeats > beats_needed:
                break
    return None


def _hit_strength(envelope: OnsetEnvelope, time_s: float) -> float:
    """How strong (log flux) and loud (linear flux) the hit nearest a beat is, each scaled to its peak."""
    reach = 0.02
    _, strength = envelope.peak_near(time_s, reach)
    total = strength / max(float(envelope.hits.max()), 1e-12)
    if envelope.loud is not None:
        centre = round(time_s / envelope.hop_s)
        width = max(1, round(reach / envelope.hop_s))
        total += float(envelope.loud[max(0, centre - width) : centre + width + 1].max(initial=0.0))
    return total


def _plan_length(grid: Grid, source_s: float, rate: int) -> tuple[float, float, int]:
    """(start_s, span_s, repeats) for a fit by length alone: the source cut (never squeezed) when it is
    long enough, stretched up to 2x when not, repeated beyond that."""
    wanted = grid.seconds
    usable = source_s - 2 * _DECODE_MARGIN_S
    if wanted <= usable:
        return _DECODE_MARGIN_S, wanted, 1
    repeats = math.ceil(wanted / (usable * MAX_STRETCH * 0.999))
    span = min(usable, wanted / repeats)
    return _DECODE_MARGIN_S, span, repeats


def _render(image: np.ndarray, grid: Grid, params: SpectrogramParams, quality: str, stereo: bool | None,
            estimate: TempoEstimate, start_s: float, span_s: float, repeats: int, source_beats: float | None,
            *, mode: str, reason: str, key: dict[str, Any] | None = None) -> FittedLoop:
    rate = params.sample_rate
    hop_s = params.hop_length / rate
    target = grid.num_samples(rate)
    unit = -(-target // repeats)  # samples in one repeat (the last repeats may be one sample shorter)
    stretch = unit / (span_s * rate)
    columns = image.shape[1]
    sixteenth = round(60.0 / grid.bpm / 4 * rate)
    pre_s = min(start_s, sixteenth / rate / stretch + _DECODE_MARGIN_S)
    first = max(0, math.floor((start_s - pre_s) / hop_s))
    last = min(columns - 1, math.ceil((start_s + span_s + _DECODE_MARGIN_S) / hop_s))
    if last - first < 2:
        raise InvalidInputError("the image is too short to fit on the grid")
    crop = image[:, first : last + 1]
    natural = natural_length(crop.shape[1], params)
    decoded_len = round(natural * stretch)
    decoded_len = min(max(decoded_len, math.ceil(natural * MIN_STRETCH)), int(natural * MAX_STRETCH))
    audio = decode_image(crop, params, quality=quality, num_samples=decoded_len, stereo=stereo)
    scale = decoded_len / natural  # output samples per source sample
    offset = round((start_s - first * hop_s) * rate * scale)
    offset = min(max(offset, 0), max(0, audio.shape[0] - unit))
    if audio.shape[0] < unit:
        audio = np.pad(audio, ((0, unit - audio.shape[0]), (0, 0)))
    loop, crossfade = seamless_loop(audio, offset, unit, max_crossfade=sixteenth,
                                    sustained=(mode == "length"), rate=rate)
    out = _repeat(loop, repeats, target)
    out = out - out.mean(axis=0, keepdims=True)
    report = FitReport(mode=mode, reason=reason,
                       tempo_found=round(estimate.bpm, 3) if estimate.has_beat else None,
                       tempo_confidence=round(estimate.confidence, 3),
                       tempo_octave=estimate.octave if estimate.has_beat else None,
                       source_beats=source_beats, repeats=repeats, stretch=float(scale), start_s=float(start_s),
                       crossfade_s=float(crossfade) / rate, samples=int(out.shape[0]), sample_rate=rate, key=key)
    return FittedLoop(audio=out.astype(np.float32), sample_rate=rate, grid=grid, report=report)


def seamless_loop(audio: np.ndarray, offset: int, length: int, *, max_crossfade: int, rate: int,
                  sustained: bool = False) -> tuple[np.ndarray, int]:
    """audio[offset : offset + length] made to wrap: (loop (length, channels), crossfade samples).

    The samples just before `offset` fade in over the loop's tail with equal power (cos/sin), so the
    tail ends as the source did just before the loop's first sample; at the very start of the source
    the samples after the loop fade out over its head instead. The crossfade is a 16th note
    (`max_crossfade`) for sustained material, and shortened to end before any strong onset in the
    faded region (never below MIN_CROSSFADE_S) so that no hit is doubled. The cut moves by up to
    _SEAM_SEARCH_S earlier (_SEAM_LATE_S later) to where the wrap's step is smallest.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    minimum = max(2, round(MIN_CROSSFADE_S * rate))
    search = round(_SEAM_SEARCH_S * rate)
    late = round(_SEAM_LATE_S * rate)
    room_before = offset
    room_after = audio.shape[0] - (offset + length)
    use_preroll = room_before >= minimum + search
    room = room_before - search if use_preroll else room_after - search
    fade = min(max_crossfade, max(room, 0))
    if fade < minimum:
        return audio[offset : offset + length].copy() if room_after >= 0 else _padded(audio, offset, length), 0
    if not sustained:
        fade = _onset_free_fade(audio, offset, length, fade, minimum, rate, use_preroll)
    # Nudge the cut to where the wrap's step (last sample -> first sample) is smallest.
    low = max(-search, -(room_before - (fade if use_preroll else 0)))
    high = min(late, room_after - (0 if use_preroll else fade))
    candidates = np.arange(low, high + 1) + offset
    if use_preroll:
        steps = np.abs(audio[candidates] - audio[candidates - 1]).sum(axis=1)
    else:
        steps = np.abs(audio[candidates + length] - audio[candidates + length - 1]).sum(axis=1)
    start = int(candidates[int(np.argmin(steps))])
    loop = audio[start : start + length].copy()
    theta = (np.arange(fade, dtype=np.float64) + 1.0) / fade * (np.pi / 2)
    fade_in = np.sin(theta).astype(np.float32)[:, None]
    fade_out = np.cos(theta).astype(np.float32)[:, None]
    if use_preroll:
        pre = audio[start - fade : start]
        loop[length - fade :] = loop[length - fade :] * fade_out + pre * fade_in
    else:
        post = audio[start + length : start + length + fade]
        # Head: the samples after the loop (which follow its tail in the source) fade out into the head.
        ramp = _ramp(fade)
        loop[:fade] = loop[:fade] * np.sin(ramp).astype(np.float32)[:, None] + \
            post * np.cos(ramp).astype(np.float32)[:, None]
    _close_seam(loop, min(fade, max(2, round(0.002 * rate))))
    return loop, fade


def _close_seam(loop: np.ndarray, width: int) -> None:
    """Take out, over the last `width` samples (a raised-cosine ramp), what is left of the step from the
    last sample to the first (the crossfade makes it one of the source's own steps, which at a hit can
    still be a large one): in place."""
    residual = loop[0] - loop[-1]
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, width))).astype(np.float32)[:, None]
    loop[-width:] += ramp * residual[None, :]


def _ramp(fade: int) -> np.ndarray:
    """0 .. pi/2 over `fade` samples, starting at exactly 0 (the first sample is the source's own)."""
    return np.arange(fade, dtype=np.float64) / max(fade - 1, 1) * (np.pi / 2)


def _onset_free_fade(audio: np.ndarray, offset: int, length: int, fade: int, minimum: int, rate: int,
                     use_preroll: bool) -> int:
    """Shorten the crossfade so that it ends before the strongest recent onset in either faded part."""
    if use_preroll:
        parts = [audio[offset + length - fade : offset + length], audio[offset - fade : offset]]
    else:
        parts = [audio[offset : offset + fade], audio[offset + length : offset + length + fade]]
    hop = max(1, round(0.001 * rate))
    shortest = fade
    for part in parts:
        energy = np.square(part).sum(axis=1)
        frames = energy[: energy.size // hop * hop].reshape(-1, hop).mean(axis=1)
        if frames.size < 3:
            continue
        level = np.log10(frames + 1e-10)
        rise = np.diff(level)
        strong = np.nonzero(rise > 1.0)[0]  # a 10 dB jump within a millisecond: a hit
        if strong.size:
            if use_preroll:  # the fade runs up to the seam: keep it after the last hit
                hit = (strong[-1] + 1) * hop
                shortest = min(shortest, fade - hit)
            else:  # the fade starts at the seam: keep it before the first hit
                shortest = min(shortest, int(strong[0] * hop))
    return max(minimum, shortest)


def _padded(audio: np.ndarray, offset: int, length: int) -> np.ndarray:
    piece = audio[offset : offset + length]
    return np.pad(piece, ((0, length - piece.shape[0]), (0, 0)))


def _repeat(loop: np.ndarray, repeats: int, target: int) -> np.ndarray:
    """`repeats` copies making exactly `target` samples; copies one sample short (when target is not a
    multiple) come first, so the loop's own wrap is at the very end."""
    if repeats == 1:
        return loop[:target]
    bounds = [round(i * target / repeats) for i in range(repeats + 1)]
    lengths = sorted(bounds[i + 1] - bounds[i] for i in range(repeats))
    return np.concatenate([loop[:n] for n in lengths], axis=0)
