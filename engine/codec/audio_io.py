"""Audio files in and out (soundfile / libsndfile: WAV, FLAC, OGG, MP3, AIFF...), float32.

Arrays are (num_samples, channels), soundfile's layout. Any sample rate and channel count comes in;
`load_for_encoding` resamples to the spectrogram's rate. Writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from engine.atomic import atomic_path
from engine.codec.params import DEFAULT_PARAMS, SpectrogramParams
from engine.codec.resample import resample
from engine.errors import AudioFileError, InvalidInputError, reason

_WRITE_SUBTYPES = {"WAV": "PCM_24", "FLAC": "PCM_24", "AIFF": "PCM_24", "OGG": "VORBIS"}


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """(samples (num_samples, channels) float32 full scale +-1, sample rate); AudioFileError if unusable."""
    path = Path(path)
    if path.is_dir():
        raise AudioFileError(f"{path} is a folder; give the path of an audio file (.wav, .flac, ...) in it")
    if not path.is_file():
        raise AudioFileError(f"{path} does not exist; give the path of an audio file (.wav, .flac, ...)")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path} is empty (0 bytes); give an audio file (.wav, .flac, ...)")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioFileError(f"cannot read {path.name} as audio ({reason(error)}); use WAV, FLAC, OGG or "
                             "MP3") from None
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise AudioFileError(f"{path.name} holds no audio (0 samples); give a clip of at least 10 ms")
    if not np.isfinite(samples).all():
        raise AudioFileError(f"{path.name} contains NaN or infinite samples; re-export it from your "
                             "audio editor")
    return samples, int(rate)


def load_for_encoding(path: str | os.PathLike[str],
                      params: SpectrogramParams = DEFAULT_PARAMS) -> np.ndarray:
    """An audio file's samples (num_samples, channels) float32 at params.sample_rate."""
    samples, rate = read_audio(path)
    if rate != params.sample_rate:
        samples = resample(samples, rate, params.sample_rate)
    return samples


def audio_format(path: str | os.PathLike[str]) -> str:
    """The soundfile format a file name asks for; an InvalidInputError before any work if we cannot write it."""
    if not str(path).strip():
        raise InvalidInputError("no output file name was given: give one such as loop.wav")
    path = Path(path)
    file_format = path.suffix.lstrip(".").upper()
    if file_format == "AIF":
        file_format = "AIFF"
    if file_format not in _WRITE_SUBTYPES:
        raise InvalidInputError(f"cannot write audio to {path.name or path}: use a .wav, .flac, .aiff or .ogg "
                                "file name")
    return file_format


def write_audio(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int) -> Path:
    """Write (num_samples,) or (num_samples, channels) float audio; format from the suffix (24-bit WAV).

    Atomic: on any failure no file (and no partial file) is left at `path`.
    """
    path = Path(path)
    file_format = audio_format(path)
    samples = np.asarray(samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise InvalidInputError("refusing to write audio with NaN or infinite samples")
    with atomic_path(path) as temporary:
        soundfile.write(temporary, np.clip(samples, -1.0, 1.0), sample_rate, format=file_format,
                        subtype=_WRITE_SUBTYPES[file_format])
    return path
