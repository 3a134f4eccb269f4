"""How close decoded audio comes to the image it was decoded from: sc_mel, in dB (lower is better).

    sc_mel = 20 * log10(||g * M' - M|| / ||M||)

M is the image's own mel amplitude ((255 - px) / 255) ** (1 / power); M' is the mel amplitude of the
decoded audio by our encoder's analysis (full-size FFT, before 8-bit quantisation), scaled to maximum
1; g is the least-squares gain, so loudness does not count, only shape. Used by the tests and the
benchmark.
"""

from __future__ import annotations

import math

import numpy as np

from engine.codec.encode import mel_amplitudes
from engine.codec.params import DEFAULT_PARAMS, SpectrogramParams
from engine.codec.pixels import channel_levels, looks_stereo, mel_from_levels
from engine.errors import InvalidInputError


def spectral_convergence_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """20 * log10(||g * estimate - reference|| / ||reference||) with the least-squares gain g.

    Both arrays of one shape; -inf for an exact match up to gain, 0 dB for an estimate that
    explains nothing (e.g. silence). NaN is impossible: a silent reference counts as 0 dB.
    """
    if reference.shape != estimate.shape:
        raise InvalidInputError(f"spectrogram shapes differ: {reference.shape} vs {estimate.shape}")
    reference = reference.astype(np.float64).ravel()
    estimate = estimate.astype(np.float64).ravel()
    reference_norm = float(np.linalg.norm(reference))
    energy = float(estimate @ estimate)
    if reference_norm == 0.0:
        return 0.0
    gain = float(estimate @ reference) / energy if energy > 0 else 0.0
    error = float(np.linalg.norm(gain * estimate - reference))
    return 20.0 * math.log10(error / reference_norm) if error > 0 else -math.inf


def sc_mel(image: np.ndarray, audio: np.ndarray, params: SpectrogramParams = DEFAULT_PARAMS,
           *, stereo: bool | None = None) -> float:
    """sc_mel of `audio` decoded from `image` (see the module docstring).

    image: uint8 pixels as `decode_image` takes them. audio: (num_samples,) or (num_samples, channels)
    float; num_samples // hop + 1 must equal the image width (true of an un-stretched decode).
    """
    stereo = looks_stereo(image) if stereo is None else stereo
    target = mel_from_levels(channel_levels(image, stereo), params.power)
    decoded = mel_amplitudes(np.asarray(audio, dtype=np.float32), params)
    if decoded.shape != target.shape:
        raise InvalidInputError(f"decoded audio gives a {decoded.shape} spectrogram but the image is "
                                f"{target.shape}; sc_mel needs an un-stretched decode")
    peak = float(decoded.max())
    return spectral_convergence_db(target, decoded / peak if peak > 0 else decoded)
