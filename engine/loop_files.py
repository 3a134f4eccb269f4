"""A loop on disk: its audio file, its spectrogram image (optional) and the JSON sidecar beside the audio
(the audio's name with .json), written, read and verified here and nowhere else.

The engine's results folders, `riffstudio generate`, `generate --bpm`, `riffstudio loop`, batch presets and
the app's exports all write through `write_loop`, so every loop file carries the same sidecar (schema,
version, what made it, the audio's and image's SHA-256) and is written in the same safe order:

1. the temporaries a killed earlier write of these very names left are removed (by our marker alone,
   engine/atomic.py), never anything else;
2. the image, then the audio, each atomically (a hidden temporary renamed into place);
3. the sidecar, last and atomically, naming the hashes.

So a sidecar that reads back and whose audio has the recorded hash means the whole loop is there
(`read_loop`), and a kill at any moment leaves either that or a loop without a sidecar, which
`read_loop` does not count as finished. Pure file work: no model, no codec until a writer is called.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path, remove_leftovers
from engine.file_hash import file_sha256
from engine.version import __version__

SIDECAR_SCHEMA = 1

# Writes the audio at the path it is given (atomically) and returns the sidecar's "audio" record (format,
# rate, samples, channels, levels...); `write_loop` adds the file name and hash.
AudioWriter = Callable[[Path], dict[str, Any]]


@dataclass(frozen=True)
class LoopOnDisk:
    """A finished loop: where its files are and what its sidecar says (read back and verified)."""

    audio: Path
    image: Path | None
    sidecar: dict[str, Any]

    @property
    def sidecar_file(self) -> Path:
        return sidecar_path(self.audio)

    def paths(self) -> dict[str, str]:
        """The files as absolute path strings, as the engine's `done` event and the app's library carry them."""
        paths = {"audio": str(self.audio.resolve()), "sidecar": str(self.sidecar_file.resolve())}
        if self.image is not None:
            paths["image"] = str(self.image.resolve())
        return paths


def sidecar_path(audio: str | os.PathLike[str]) -> Path:
    """The JSON sidecar beside a loop's audio: its name with .json."""
    return Path(audio).with_suffix(".json")


def write_loop(audio: str | os.PathLike[str], write_audio: AudioWriter, record: Mapping[str, Any], *,
               image: str | os.PathLike[str] | None = None, write_image: Callable[[Path], object] | None = None,
               ) -> dict[str, Any]:
    """Write a loop: `write_image(image)` (if given), `write_audio(audio)`, then the sidecar; returns the sidecar.

    record: what made the loop (settings, bundle, provider, grid, fit, batch key...); its "audio" and
    "image" entries are written here. File errors propagate as OSError / soundfile errors: the caller
    says them in its own words (one CLI line, or the engine's storage error).
    """
    audio = Path(audio)
    image_path = Path(image) if image is not None else None
    finals = [audio, sidecar_path(audio), *([image_path] if image_path is not None else [])]
    remove_leftovers(finals)
    sidecar = {key: value for key, value in record.items() if key not in ("audio", "image", "schema",
                                                                          "riffstudio_version")}
    sidecar = {"schema": SIDECAR_SCHEMA, "riffstudio_version": __version__, **sidecar}
    if image_path is not None:
        if write_image is None:
            raise ValueError("an image path needs write_image")
        write_image(image_path)
        sidecar["image"] = {"file": image_path.name, "sha256": file_sha256(image_path)}
    audio_record = dict(write_audio(audio))
    sidecar["audio"] = {"file": audio.name, **audio_record, "sha256": file_sha256(audio)}
    with atomic_path(sidecar_path(audio)) as temporary:
        temporary.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False), encoding="utf-8")
    return sidecar


def read_loop(path: str | os.PathLike[str], *, key: str | None = None) -> LoopOnDisk | None:
    """The finished loop whose audio (or sidecar) is at `path`, or None if there is none: its sidecar reads
    back, names audio beside it whose hash matches (and an image, if any, that exists), and carries the
    batch `key` when one is asked for. Checked, not assumed: a half-written loop is None."""
    try:
        sidecar_file = sidecar_path(path)
        sidecar = json.loads(sidecar_file.read_text(encoding="utf-8"))
        audio_record = sidecar["audio"]
        audio = sidecar_file.with_name(audio_record["file"])
        if audio.name != Path(audio_record["file"]).name or sidecar_path(audio) != sidecar_file:
            return None
        if Path(path).suffix.lower() != ".json" and audio.name != Path(path).name:
            return None
        if key is not None and sidecar.get("batch", {}).get("key") != key:
            return None
        if not audio.is_file() or file_sha256(audio) != audio_record["sha256"]:
            return None
        image = None
        if "image" in sidecar:
            image = sidecar_file.with_name(Path(sidecar["image"]["file"]).name)
            if not image.is_file():
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return LoopOnDisk(audio=audio, image=image, sidecar=sidecar)


def plain_audio(samples, sample_rate: int) -> AudioWriter:
    """A writer of decoded audio as painted (24-bit WAV/FLAC/AIFF or OGG by the file's suffix)."""

    def write(path: Path) -> dict[str, Any]:
        from engine.codec.audio_io import audio_format, write_audio

        write_audio(path, samples, sample_rate)
        return {"format": audio_format(path).lower(), "sample_rate": int(sample_rate),
                "samples": int(samples.shape[0]), "channels": int(samples.shape[1]),
                "seconds": round(samples.shape[0] / sample_rate, 6)}

    return write


def spectrogram_image(pixels) -> Callable[[Path], object]:
    """A writer of a painted image (uint8 [512, width, 3]) as a PNG with riffusion's EXIF tags."""

    def write(path: Path) -> object:
        from engine.codec.encode import EncodedImage
        from engine.codec.image_file import write_spectrogram_image
        from engine.codec.params import DEFAULT_MAX_VALUE, DEFAULT_PARAMS

        return write_spectrogram_image(path, EncodedImage(pixels=pixels, max_value=DEFAULT_MAX_VALUE, stereo=False,
                                                          params=DEFAULT_PARAMS))

    return write


def copied_file(source: str | os.PathLike[str], audio_record: Mapping[str, Any] | None = None,
                ) -> Callable[[Path], dict[str, Any]]:
    """A writer that copies a finished file (the engine's results into the names a command was given);
    for audio, returns `audio_record` without its old name and hash."""

    def write(path: Path) -> dict[str, Any]:
        with atomic_path(path) as temporary:
            temporary.write_bytes(Path(source).read_bytes())
        return {k: v for k, v in (audio_record or {}).items() if k not in ("file", "sha256")}

    return write
