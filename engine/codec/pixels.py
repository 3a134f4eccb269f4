"""Mel amplitudes <-> 8-bit image pixels, exactly as riffusion 0.0.5 does it (image_util.py).

Encoding: divide by the maximum, raise to `power` (0.25), times 255, invert (255 - v), truncate to
uint8, all in float32; low frequencies on the bottom row. Mono images are RGB with three equal
channels; stereo images are R = 0, G = left, B = right, normalised by one shared maximum.
Decoding inverts the curve: mel = ((255 - px) / 255) ** (1 / power) * max_value.
"""

from __future__ import annotations

import numpy as np

from engine.errors import InvalidInputError


def pixels_from_mel(mel: np.ndarray, power: float, max_value: float | None = None) -> np.ndarray:
    """Image pixels for mel amplitudes.

    mel: (channels, num_bins, columns) float32, channels 1 (mono) or 2 (stereo), row 0 = lowest bin.
    max_value: the normalising maximum; default the largest amplitude (riffusion's choice).
    Returns (num_bins, columns, 3) uint8 with row 0 = highest bin. A silent clip (maximum 0) is white.
    """
    if mel.ndim != 3 or mel.shape[0] not in (1, 2):
        raise InvalidInputError(
            f"mel amplitudes of shape {mel.shape} must be (1 or 2 channels, bins, columns)")
    peak = np.float32(np.max(mel) if max_value is None else max_value)
    if peak > 0:
        levels = np.power(mel.astype(np.float32, copy=False) / peak, np.float32(power)) * np.float32(255)
        levels = (np.float32(255) - levels).astype(np.uint8)
    else:
        levels = np.full(mel.shape, 255, dtype=np.uint8)
    levels = levels[:, ::-1, :]
    if levels.shape[0] == 1:
        return np.repeat(levels[0][:, :, None], 3, axis=2)
    return np.stack([np.zeros_like(levels[0]), levels[0], levels[1]], axis=2)


def channel_levels(image: np.ndarray, stereo: bool) -> np.ndarray:
    """The spectrogram channel(s) of an image as uint8 (channels, num_bins, columns), row 0 = lowest bin.

    image: (num_bins, columns) grey, or (num_bins, columns, 1 | 3 | 4) uint8 (alpha is ignored).
    Stereo images give (G, B); mono images give the mean of their colour channels, which is riffusion's
    R channel for the equal-channel images encoders write and a less noisy estimate for model output.
    """
    if image.dtype != np.uint8:
        raise InvalidInputError(f"spectrogram image pixels are {image.dtype}; expected 8-bit (uint8)")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InvalidInputError(f"spectrogram image of shape {image.shape} must be (height, width) "
                                "or (height, width, 1, 3 or 4 channels)")
    image = image[::-1, :, :3]
    if stereo:
        if image.shape[2] != 3:
            raise InvalidInputError("a stereo spectrogram image needs colour channels (G = left, B = right)")
        return np.ascontiguousarray(image[:, :, 1:3].transpose(2, 0, 1))
    if image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0][None])
    first = image[:, :, 0]
    if np.array_equal(first, image[:, :, 1]) and np.array_equal(first, image[:, :, 2]):
        return np.ascontiguousarray(first[None])
    mean = (image.sum(axis=2, dtype=np.uint16) + 1) // 3  # rounded mean of the three channels
    return mean.astype(np.uint8)[None]


def looks_stereo(image: np.ndarray) -> bool:
    """Whether an image without EXIF is riffusion's stereo layout: red all zero, green or blue not.

    (A mono spectrogram with an all-zero red channel would be full scale everywhere: never real.)
    """
    if image.ndim != 3 or image.shape[2] < 3:
        return False
    return not image[:, :, 0].any() and bool(image[:, :, 1:3].any())


def mel_from_levels(levels: np.ndarray, power: float, max_value: float = 1.0) -> np.ndarray:
    """Mel amplitudes from pixel levels: ((255 - px) / 255) ** (1 / power) * max_value, float32 same shape."""
    table = (((255.0 - np.arange(256.0)) / 255.0) ** (1.0 / power) * max_value).astype(np.float32)
    return table[levels]
