"""Audio -> spectrogram image in riffusion-model-v1's training format (riffusion 0.0.5, bit for bit
up to float rounding).

Units: riffusion feeds 16-bit integer sample values to torchaudio, so its mel amplitudes (and the
maximum stored in EXIF tag 11080) are on that scale. We take float audio in [-1, 1] and scale by
32768 so our maxima match riffusion's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.codec import mel as mel_scale
from engine.codec import stft
from engine.codec.params import DEFAULT_PARAMS, SpectrogramParams
from engine.codec.pixels import pixels_from_mel
from engine.errors import InvalidInputError

INT16_SCALE = 32768.0  # float audio -> riffusion's integer sample scale


@dataclass(frozen=True)
class EncodedImage:
    """A spectrogram image and the numbers that belong in its EXIF.

    pixels: (num_bins, columns, 3) uint8, RGB as riffusion saves it (row 0 = highest frequency).
    max_value: the clip's largest mel amplitude before normalisation (EXIF 11080), 16-bit scale.
    """

    pixels: np.ndarray
    max_value: float
    stereo: bool
    params: SpectrogramParams


def mel_amplitudes(samples: np.ndarray, params: SpectrogramParams = DEFAULT_PARAMS) -> np.ndarray:
    """Mel amplitudes of each channel: riffusion's `mel_amplitudes_from_waveform`.

    samples: (num_samples,) or (num_samples, channels) float at params.sample_rate, in any unit
    (amplitudes scale linearly with it). Returns (channels, num_bins, columns) float32, row 0 = lowest
    bin, columns = num_samples // hop + 1.
    """
    samples = _as_frames_by_channels(samples)
    bank = mel_scale.analysis_filterbank(params)
    out = np.empty((samples.shape[1], params.num_bins, params.num_frames(samples.shape[0])), np.float32)
    for channel in range(samples.shape[1]):
        mono = np.ascontiguousarray(samples[:, channel], dtype=np.float32)
        spectrum = stft.magnitudes(mono, params, bank.shape[1])  # (columns, used bins)
        out[channel] = (bank @ spectrum.T).astype(np.float32, copy=False)
    return out


def encode_audio(samples: np.ndarray, sample_rate: int, params: SpectrogramParams = DEFAULT_PARAMS,
                 *, stereo: bool = False) -> EncodedImage:
    """Spectrogram image of a clip, as riffusion's `spectrogram_image_from_audio` makes it.

    samples: (num_samples,) or (num_samples, channels) float audio, full scale +-1, at `sample_rate`
    (which must be params.sample_rate: resample at the edges, see `audio_io.load_for_encoding`).
    Mono images use the first (left) channel, as riffusion's images of stereo files do; stereo images
    use the first two channels (a mono clip is duplicated). Image width = num_samples // hop + 1.
    """
    if sample_rate != params.sample_rate:
        raise InvalidInputError(f"audio at {sample_rate} Hz must be resampled to {params.sample_rate} Hz "
                                "before encoding")
    samples = _as_frames_by_channels(samples)
    chosen = samples[:, :1]
    if stereo:
        chosen = samples[:, :2] if samples.shape[1] >= 2 else np.repeat(chosen, 2, axis=1)
    scaled = chosen.astype(np.float32) * np.float32(INT16_SCALE)
    mel = mel_amplitudes(scaled, params)
    max_value = float(np.max(mel))
    return EncodedImage(pixels=pixels_from_mel(mel, params.power), max_value=max_value, stereo=stereo,
                        params=params)


def _as_frames_by_channels(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[1] < 1:
        raise InvalidInputError(f"audio of shape {samples.shape} must be (samples,) or (samples, channels)")
    if samples.shape[0] == 0:
        raise InvalidInputError("the audio is empty (0 samples); give at least one sample")
    if not np.issubdtype(samples.dtype, np.floating):
        raise InvalidInputError(f"audio samples are {samples.dtype}; convert to float in [-1, 1] first")
    if not np.isfinite(samples).all():
        raise InvalidInputError("the audio contains NaN or infinite samples; fix or re-export the file")
    return samples
