"""One loop on the grid, end to end: the options a producer gives (bpm, bars, meter, fit, file format),
how wide an image to paint for them, and the audio file + JSON sidecar written for the result.

`riffstudio generate --bpm`, `riffstudio loop` and batch presets all go through `GridOptions` and
`write_grid_loop`, so they refuse the same bad input with the same message and write the same files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import atomic_path, check_writable, write_errors
from engine.codec import DEFAULT_PARAMS, SpectrogramParams
from engine.errors import InvalidInputError
from engine.version import __version__
from plugin.fit import FIT_MODES, FittedLoop, Grid, fit_to_grid, image_seconds_for
from plugin.loop_file import LoopFileSettings, loop_file_format, write_loop_file

SIDECAR_SCHEMA = 1


@dataclass(frozen=True)
class GridOptions:
    """bars or beats (one of them), bpm, meter ("4/4"), fit ("auto", "beat", "length") and the file's form."""

    bpm: float
    bars: float | None = None
    beats: float | None = None
    meter: str = "4/4"
    fit: str = "auto"
    bit_depth: str = "24"
    sample_rate: int = 44100
    normalize_lufs: float | None = None

    def grid(self) -> Grid:
        if self.fit not in FIT_MODES:
            raise InvalidInputError(f"fit must be one of {', '.join(FIT_MODES)}, not {self.fit!r}")
        bars = self.bars
        if bars is None and self.beats is None:
            bars = 1
        return Grid.parse(bpm=self.bpm, bars=bars, beats=self.beats, meter=self.meter)

    def file_settings(self) -> LoopFileSettings:
        return LoopFileSettings(bit_depth=str(self.bit_depth), sample_rate=self.sample_rate,
                                normalize_lufs=self.normalize_lufs)

    def validate(self, out: str | os.PathLike[str] | None = None) -> GridOptions:
        self.grid()
        self.file_settings().validate(out)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paint_width(grid: Grid, width: int, *, min_width: int = 64, max_width: int = 2048, width_step: int = 8,
                params: SpectrogramParams = DEFAULT_PARAMS) -> int:
    """The image width to paint for `grid`: at least `width`, wide enough for the span at any tempo the
    stretch can reach (see `image_seconds_for`), at most the bundle's widest (longer loops repeat bars)."""
    columns = math.ceil(image_seconds_for(grid, params) * params.sample_rate / params.hop_length) + 1
    columns = -(-columns // width_step) * width_step
    return int(min(max(width, columns, min_width), max_width))


def check_grid_outputs(out: Path, options: GridOptions, inputs: Iterable[Path | None] = ()) -> None:
    """Refuse before any work an output that could not be written, or that is one of `inputs`."""
    options.validate(out)
    loop_file_format(out)
    if out.is_dir():
        raise InvalidInputError(f"{out} is a folder: give a file name such as {out / 'loop.wav'}")
    for path in (out, out.with_suffix(".json")):
        check_writable(path, inputs=inputs)


def fit_image(image: np.ndarray, options: GridOptions, *, analysis_audio: np.ndarray | None = None,
              analysis_rate: int | None = None, quality: str = "standard", stereo: bool | None = False,
              params: SpectrogramParams = DEFAULT_PARAMS) -> FittedLoop:
    return fit_to_grid(image, options.grid(), params=params, analysis_audio=analysis_audio,
                       analysis_rate=analysis_rate, quality=quality, mode=options.fit, stereo=stereo)


def write_grid_loop(out: Path, fitted: FittedLoop, options: GridOptions, record: dict[str, Any], *,
                    prompt: str = "", seed: int | None = None, extra_files: dict[str, bytes] | None = None,
                    ) -> dict[str, Any]:
    """The audio, then its sidecar (OUT with .json) naming the audio's SHA-256: each written atomically,
    the sidecar last, so a sidecar that reads back with a matching audio file means both are whole.

    record: what made the loop (settings, bundle, source file...); the grid, the fit report and the
    audio record are added. extra_files: {path: bytes} written (atomically) before the sidecar.
    """
    sidecar_path = out.with_suffix(".json")
    with write_errors(out):
        audio = write_loop_file(out, fitted, options.file_settings(), prompt=prompt, seed=seed)
        for path, data in (extra_files or {}).items():
            with atomic_path(path) as temporary:
                temporary.write_bytes(data)
        audio["sha256"] = file_sha256(out)
        sidecar = {"schema": SIDECAR_SCHEMA, "riffstudio_version": __version__, **record,
                   "grid": fitted.grid.to_dict(), "fit": fitted.report.to_dict(), "audio": audio}
        with atomic_path(sidecar_path) as temporary:
            temporary.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False), encoding="utf-8")
    return sidecar


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_complete(out: Path, key: str | None = None) -> bool:
    """A result whose sidecar reads back, names this audio, (has `key` if given) and whose audio file has
    the recorded hash: checked, not assumed."""
    try:
        sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        audio = sidecar["audio"]
        if audio.get("file") != out.name or (key is not None and sidecar.get("batch", {}).get("key") != key):
            return False
        return out.is_file() and file_sha256(out) == audio["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
