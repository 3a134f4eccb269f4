"""The spectrogram format: one frozen dataclass holding riffusion-model-v1's image parameters.

The defaults are riffusion 0.0.5's, which the model was trained on; a wrong value here makes every
generated loop sound wrong. The same numbers travel inside images as EXIF tags 11000..11080, so an
image written by riffusion (or by us) can be decoded with the parameters it was made with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidInputError
from engine.serialise import from_dict

# riffusion's custom EXIF tags (SpectrogramParams.ExifTags in riffusion 0.0.5).
EXIF_SAMPLE_RATE = 11000
EXIF_STEREO = 11005
EXIF_STEP_MS = 11010
EXIF_WINDOW_MS = 11020
EXIF_PADDED_MS = 11030
EXIF_NUM_BINS = 11040
EXIF_MIN_HZ = 11050
EXIF_MAX_HZ = 11060
EXIF_POWER = 11070
EXIF_MAX_VALUE = 11080

# The scale a decoder assumes when an image carries no maximum (model output): riffusion's 30e6.
DEFAULT_MAX_VALUE = 30e6


@dataclass(frozen=True)
class SpectrogramParams:
    """How audio becomes a spectrogram image and back.

    Times are whole milliseconds and frequencies whole hertz, as riffusion stores them; the sample
    counts derived from them (`n_fft`, `win_length`, `hop_length`) use riffusion's own arithmetic,
    `int(ms / 1000.0 * sample_rate)`, so the two agree to the sample.
    """

    sample_rate: int = 44100
    step_ms: int = 10  # hop between columns
    window_ms: int = 100  # periodic Hann window, centred in the FFT frame
    padded_ms: int = 400  # FFT size (the window zero-padded to this length)
    num_bins: int = 512  # mel bins = image height
    min_hz: int = 0
    max_hz: int = 10000
    power: float = 0.25  # pixel = 255 - 255 * (mel / max) ** power

    def __post_init__(self) -> None:
        for name in ("sample_rate", "step_ms", "window_ms", "padded_ms", "num_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidInputError(f"spectrogram parameter {name}={value!r} must be a positive integer")
        for name in ("min_hz", "max_hz"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(
                    f"spectrogram parameter {name}={value!r} must be a whole number of Hz")
        if not self.min_hz < self.max_hz <= self.sample_rate / 2:
            raise InvalidInputError(
                f"spectrogram frequency range {self.min_hz}..{self.max_hz} Hz must be increasing and end "
                f"at or below half the sample rate ({self.sample_rate / 2:g} Hz)")
        if not (isinstance(self.power, int | float) and math.isfinite(self.power) and self.power > 0):
            raise InvalidInputError(f"spectrogram parameter power={self.power!r} must be a positive number")
        if self.hop_length < 1 or self.win_length < 2 or self.win_length > self.n_fft:
            raise InvalidInputError(
                f"spectrogram window {self.window_ms} ms must fit in the padded frame {self.padded_ms} ms "
                f"and the step {self.step_ms} ms must be at least one sample")

    @property
    def n_fft(self) -> int:
        """FFT size in samples (17640 by default)."""
        return int(self.padded_ms / 1000.0 * self.sample_rate)

    @property
    def win_length(self) -> int:
        """Window length in samples (4410 by default)."""
        return int(self.window_ms / 1000.0 * self.sample_rate)

    @property
    def hop_length(self) -> int:
        """Samples between image columns (441 by default)."""
        return int(self.step_ms / 1000.0 * self.sample_rate)

    def num_frames(self, num_samples: int) -> int:
        """Image width for a clip of `num_samples` (centred frames): 225792 samples -> 513 columns."""
        return num_samples // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpectrogramParams:
        """Inverse of `to_dict`; missing keys take the defaults, unknown keys are an error."""
        return from_dict(cls, data, "spectrogram parameter")

    def to_exif(self) -> dict[int, int | float]:
        """The EXIF tags riffusion writes (without stereo and max value, which belong to one image)."""
        return {
            EXIF_SAMPLE_RATE: self.sample_rate,
            EXIF_STEP_MS: self.step_ms,
            EXIF_WINDOW_MS: self.window_ms,
            EXIF_PADDED_MS: self.padded_ms,
            EXIF_NUM_BINS: self.num_bins,
            EXIF_MIN_HZ: self.min_hz,
            EXIF_MAX_HZ: self.max_hz,
            EXIF_POWER: float(self.power),
        }

    @classmethod
    def from_exif(cls, exif: Mapping[int, Any]) -> SpectrogramParams:
        """Parameters from an image's EXIF tags; each absent tag takes the default."""
        default = cls()

        def whole(tag: int, fallback: int) -> int:
            value = exif.get(tag, fallback)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InvalidInputError(f"image EXIF tag {tag} is {value!r}, not a number; "
                                        "re-encode the image or strip its EXIF") from None
            if not number.is_integer():
                raise InvalidInputError(f"image EXIF tag {tag} is {value!r}, not a whole number; "
                                        "re-encode the image or strip its EXIF")
            return int(number)

        power = exif.get(EXIF_POWER, default.power)
        try:
            power = float(power)
        except (TypeError, ValueError):
            raise InvalidInputError(f"image EXIF tag {EXIF_POWER} is {power!r}, not a number; "
                                    "re-encode the image or strip its EXIF") from None
        return cls(
            sample_rate=whole(EXIF_SAMPLE_RATE, default.sample_rate),
            step_ms=whole(EXIF_STEP_MS, default.step_ms),
            window_ms=whole(EXIF_WINDOW_MS, default.window_ms),
            padded_ms=whole(EXIF_PADDED_MS, default.padded_ms),
            num_bins=whole(EXIF_NUM_BINS, default.num_bins),
            min_hz=whole(EXIF_MIN_HZ, default.min_hz),
            max_hz=whole(EXIF_MAX_HZ, default.max_hz),
            power=power,
        )


DEFAULT_PARAMS = SpectrogramParams()
