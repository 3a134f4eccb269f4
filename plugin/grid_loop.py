"""One loop on the grid, end to end: the options a producer gives (bpm, bars, meter, fit, file format),
how wide an image to paint for them, and the audio file + JSON sidecar written for the result.

`riffstudio generate --bpm`, `riffstudio loop` and batch presets all go through `GridOptions` and
`write_grid_loop`, so they refuse the same bad input with the same message and write the same files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import check_writable, write_errors
from engine.codec.params import DEFAULT_PARAMS, SpectrogramParams
from engine.errors import InvalidInputError
from engine.loop_files import read_loop, sidecar_path, spectrogram_image, write_loop
from plugin.fit import FIT_MODES, FittedLoop, Grid, fit_to_grid, image_seconds_for
from plugin.loop_file import LoopFileSettings, loop_file_format, write_loop_file
from plugin.musical_key import MusicalKey, NotAKey
from plugin.transpose import to_key


@dataclass(frozen=True)
class GridOptions:
    """bars or beats (one of them), bpm, meter ("4/4"), fit ("auto", "beat", "length"), the session's key
    ("Am", or None: the loop's own) and the file's form."""

    bpm: float
    bars: float | None = None
    beats: float | None = None
    meter: str = "4/4"
    fit: str = "auto"
    bit_depth: str = "24"
    sample_rate: int = 44100
    normalize_lufs: float | None = None
    key: str | None = None

    def grid(self) -> Grid:
        if self.fit not in FIT_MODES:
            raise InvalidInputError(f"fit must be one of {', '.join(FIT_MODES)}, not {self.fit!r}")
        bars = self.bars
        if bars is None and self.beats is None:
            bars = 1
        return Grid.parse(bpm=self.bpm, bars=bars, beats=self.beats, meter=self.meter)

    def session_key(self) -> MusicalKey | None:
        """The key to transpose to, or None; a key that cannot be read is the producer's one-line error."""
        if self.key is None:
            return None
        try:
            return MusicalKey.parse(self.key)
        except NotAKey as error:
            raise InvalidInputError(str(error)) from None

    def file_settings(self) -> LoopFileSettings:
        return LoopFileSettings(bit_depth=str(self.bit_depth), sample_rate=self.sample_rate,
                                normalize_lufs=self.normalize_lufs)

    def validate(self, out: str | os.PathLike[str] | None = None) -> GridOptions:
        self.grid()
        self.session_key()
        self.file_settings().validate(out)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The options as data (a batch item's identity: without a key, as before keys existed, so the
        loops of an existing preset file keep their identities)."""
        data = asdict(self)
        if data["key"] is None:
            del data["key"]
        return data


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
    for path in (out, sidecar_path(out)):
        check_writable(path, inputs=inputs)


def fit_image(image: np.ndarray, options: GridOptions, *, analysis_audio: np.ndarray | None = None,
              analysis_rate: int | None = None, quality: str = "standard", stereo: bool | None = False,
              params: SpectrogramParams = DEFAULT_PARAMS) -> FittedLoop:
    """The image on the grid (plugin/fit.py), then in the session's key when one is given (plugin/transpose.py:
    why after the fit)."""
    fitted = fit_to_grid(image, options.grid(), params=params, analysis_audio=analysis_audio,
                         analysis_rate=analysis_rate, quality=quality, mode=options.fit, stereo=stereo)
    key = options.session_key()
    return fitted if key is None else to_key(fitted, key)


def write_grid_loop(out: Path, fitted: FittedLoop, options: GridOptions, record: dict[str, Any], *,
                    prompt: str = "", seed: int | None = None, image: Path | None = None,
                    pixels: np.ndarray | None = None) -> dict[str, Any]:
    """The loop file at `out` with its sidecar (and the painted `pixels` at `image`, if given), through the one
    loop writer (engine/loop_files.py); returns the sidecar.

    record: what made the loop (settings, bundle, source file...); the grid and the fit report are added.
    """
    body = {**record, "grid": fitted.grid.to_dict(), "fit": fitted.report.to_dict()}

    def write_audio(path: Path) -> dict[str, Any]:
        return write_loop_file(path, fitted, options.file_settings(), prompt=prompt, seed=seed)

    with write_errors(out):
        return write_loop(out, write_audio, body, image=image,
                          write_image=spectrogram_image(pixels) if image is not None else None)


def is_complete(out: Path, key: str | None = None) -> bool:
    """A finished loop at `out` (with `key`, if given): its sidecar reads back and its audio has the recorded hash."""
    return read_loop(out, key=key) is not None
