"""A job's results folder: the same three files `riffstudio generate` writes (audio, spectrogram image,
JSON sidecar), written through the same functions, and the folder appears complete or not at all.

A folder is never overwritten: if it exists, the job already finished (an engine that died after writing
it but before journaling `done`), and `read_results` adopts it instead of rendering again."""

from __future__ import annotations

import json
from pathlib import Path

from engine.atomic import atomic_path
from engine.errors import StorageError, reason

AUDIO_FORMATS = ("wav", "flac", "aiff", "ogg")
IMAGE_NAME = "loop.png"
SIDECAR_NAME = "loop.json"


def audio_name(audio_format: str) -> str:
    return f"loop.{audio_format}"


def write_results(folder: Path, loop, generator, audio_format: str) -> dict[str, str]:
    """Write `loop` into `folder` (which must not exist); returns the files' absolute paths."""
    import soundfile

    from engine.codec import DEFAULT_MAX_VALUE, DEFAULT_PARAMS, EncodedImage
    from engine.codec.audio_io import write_audio
    from engine.codec.image_file import write_spectrogram_image

    if folder.exists():
        raise FileExistsError(f"{folder} exists: results are never overwritten")
    sidecar = loop.sidecar(generator)
    sidecar["audio"]["file"] = audio_name(audio_format)
    sidecar["image"] = {"file": IMAGE_NAME}
    try:
        with atomic_path(folder, directory=True) as temp:
            encoded = EncodedImage(pixels=loop.image, max_value=DEFAULT_MAX_VALUE, stereo=False, params=DEFAULT_PARAMS)
            write_spectrogram_image(temp / IMAGE_NAME, encoded)
            (temp / SIDECAR_NAME).write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
            write_audio(temp / audio_name(audio_format), loop.audio, loop.sample_rate)
    except (OSError, soundfile.SoundFileError) as error:  # a full disk: the engine's storage, not a bug
        raise StorageError(f"the engine cannot write this job's results in {folder.parent} ({reason(error, 80)}): "
                           "free some disk space there and run the job again") from None
    return paths(folder, audio_format)


def paths(folder: Path, audio_format: str) -> dict[str, str]:
    folder = folder.resolve()
    return {"audio": str(folder / audio_name(audio_format)), "image": str(folder / IMAGE_NAME),
            "sidecar": str(folder / SIDECAR_NAME)}


def read_results(folder: Path, audio_format: str) -> tuple[dict[str, str], dict] | None:
    """(paths, sidecar) of a complete results folder, or None if there is none."""
    try:
        sidecar = json.loads((folder / SIDECAR_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return paths(folder, audio_format), sidecar
