"""Sample-rate conversion by rational factors (scipy's polyphase `resample_poly`, float32).

Used at the edges (audio files at any rate in) and inside the decoder (phase reconstruction runs at a
lower rate than it outputs).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from engine.errors import InvalidInputError


def resample_by(samples: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample along axis 0 by up / down: (n, ...) -> (ceil(n * up / down), ...) float32.

    The anti-aliasing filter is scipy's default (Kaiser, beta 5, 10 zero crossings per side), flat
    to within 0.1 dB up to ~85% of the lower Nyquist frequency.
    """
    if up == down:
        return np.asarray(samples, dtype=np.float32)
    import scipy.signal  # ~0.5 s to import (it pulls in scipy.stats): only when first needed

    out = scipy.signal.resample_poly(np.asarray(samples, dtype=np.float32), up, down, axis=0)
    return out.astype(np.float32, copy=False)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample audio (num_samples,) or (num_samples, channels) from `from_rate` to `to_rate` Hz."""
    if from_rate <= 0 or to_rate <= 0:
        raise InvalidInputError(f"cannot resample from {from_rate} Hz to {to_rate} Hz; rates must be positive")
    ratio = Fraction(to_rate, from_rate)
    return resample_by(samples, ratio.numerator, ratio.denominator)
