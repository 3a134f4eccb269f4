"""Spectrogram image files: pixels plus riffusion's EXIF tags (11000..11080), read and written.

Written like riffusion's `audio_to_image` (PIL, RGB, the tags in the file's EXIF), atomically. Read
back with the parameters from EXIF where present and the defaults where not: model output carries
no EXIF at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.atomic import atomic_path
from engine.codec.encode import EncodedImage
from engine.codec.params import EXIF_MAX_VALUE, EXIF_STEREO, SpectrogramParams
from engine.errors import ImageFileError, InvalidInputError, reason

# Pillow modes we can take as 8-bit pixels as they are, or after converting to RGB.
_DIRECT_MODES = {"L", "RGB"}
_CONVERTIBLE_MODES = {"RGBA", "LA", "P", "PA", "1", "CMYK", "YCbCr", "RGBX", "La"}


@dataclass(frozen=True)
class SpectrogramImage:
    """A spectrogram image as read from a file.

    pixels: (height, width) or (height, width, 3) uint8, row 0 = highest frequency.
    params: from EXIF, defaults for absent tags. stereo: EXIF 11005, or None when absent (the
    decoder then looks at the pixels). max_value: EXIF 11080, or None when absent.
    """

    pixels: np.ndarray
    params: SpectrogramParams
    stereo: bool | None
    max_value: float | None
    has_exif: bool


def exif_tags(encoded: EncodedImage) -> dict[int, int | float]:
    """The EXIF tags riffusion writes for an image: its parameters, stereo flag and maximum."""
    return {**encoded.params.to_exif(), EXIF_STEREO: int(encoded.stereo),
            EXIF_MAX_VALUE: float(encoded.max_value)}


def write_spectrogram_image(path: str | os.PathLike[str], encoded: EncodedImage) -> Path:
    """Save `encoded` as an RGB image with riffusion's EXIF tags; the format follows the suffix (.png).

    Atomic: on any failure no file (and no partial file) is left at `path`.
    """
    path = Path(path)
    file_format = Image.registered_extensions().get(path.suffix.lower())
    if file_format is None or file_format not in {"PNG", "JPEG", "WEBP", "TIFF", "BMP"}:
        raise InvalidInputError(f"cannot write a spectrogram image to {path.name}: use a .png file name")
    image = Image.fromarray(np.ascontiguousarray(encoded.pixels), mode="RGB")
    exif = image.getexif()
    exif.update(exif_tags(encoded).items())
    with atomic_path(path) as temporary:
        image.save(temporary, format=file_format, exif=exif)
    return path


def read_spectrogram_image(path: str | os.PathLike[str]) -> SpectrogramImage:
    """Pixels and EXIF parameters of a spectrogram image file; ImageFileError if it is not one."""
    path = Path(path)
    if path.is_dir():
        raise ImageFileError(f"{path} is a folder; give the path of a spectrogram image (.png) in it")
    if not path.is_file():
        raise ImageFileError(f"{path} does not exist; give the path of a spectrogram image (.png)")
    if path.stat().st_size == 0:
        raise ImageFileError(f"{path} is empty (0 bytes); give a spectrogram image (.png)")
    try:
        with Image.open(path) as image:
            image.load()
            exif = dict(image.getexif())
            pixels = _pixels(image, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageFileError(f"cannot read {path.name} as an image ({reason(error)}); give a spectrogram "
                             "image (.png)") from None
    try:
        params = SpectrogramParams.from_exif(exif)
    except InvalidInputError as error:
        raise ImageFileError(f"{path.name}: {error}") from None
    height = pixels.shape[0]
    if height != params.num_bins:
        raise ImageFileError(f"{path.name} is {height} pixels high; a spectrogram image must be "
                             f"{params.num_bins} high (riffusion's format)")
    if pixels.shape[1] < 2:
        raise ImageFileError(f"{path.name} is {pixels.shape[1]} pixel wide; a spectrogram image needs at "
                             "least 2 columns")
    stereo = bool(exif[EXIF_STEREO]) if EXIF_STEREO in exif else None
    max_value = _number(exif.get(EXIF_MAX_VALUE))
    has_exif = any(tag in exif for tag in (*params.to_exif(), EXIF_STEREO, EXIF_MAX_VALUE))
    return SpectrogramImage(pixels=pixels, params=params, stereo=stereo, max_value=max_value,
                            has_exif=has_exif)


def _pixels(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode in _CONVERTIBLE_MODES:
        image = image.convert("RGB")
    elif image.mode not in _DIRECT_MODES:
        raise ImageFileError(f"{path.name} has {image.mode} pixels; a spectrogram image is 8-bit grey or "
                             "RGB (re-save it as an 8-bit PNG)")
    return np.asarray(image, dtype=np.uint8)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None
