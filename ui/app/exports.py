"""A finished result as the file a DAW gets: a closed WAV in the permanent export folder, DAW-named.

Why a permanent folder and never a temp file: Ableton (and others) reference a dropped sample where it
lies; a temp file vanishes and the set shows it missing next week. Why export when the job finishes and
not when the drag starts: a drag must start at once, with a file that is already whole.

On the grid (BPM + bars) the loop goes through plugin/'s fitting (`fit_image` + `write_grid_loop`: exact
length, acid/smpl/cue/INFO chunks); in seconds mode the engine's audio is written
under the DAW name in the export's format and bit depth. A loop the CLI or a batch fitted already (`fitted`,
its sidecar holding its grid and fit) is not fitted again: its audio is the loop, written on its own grid by
`write_grid_loop` in the export's form (rate, bit depth, loudness), named with its BPM, bars and key, its grid
and fit record carried over. Every way through the one loop writer (engine/loop_files.py): the file with its
sidecar beside it.
This runs on a worker thread (fitting is DSP): never call it from the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path
from ui.app.library_drafts import is_draft


@dataclass(frozen=True)
class ExportRequest:
    audio: str  # the engine's loop.wav
    image: str  # the engine's loop.png
    sidecar: dict[str, Any]
    folder: Path
    bpm: float | None = None
    bars: float | None = None
    bit_depth: str = "24"
    sample_rate: int = 44100
    audio_format: str = "wav"  # wav (what drags hand out), flac or aiff (Export...)
    normalize_lufs: float | None = None  # a loudness target (Export...); None: peak at -1 dBFS on the grid
    key: str | None = None  # on the grid: transposed into this key (plugin/transpose.py, as `--key`); None: as made
    fitted: bool = False  # `audio` is a loop on its grid already (a CLI or batch loop): converted, not fitted again


def export_stem(prompt: str, *, bpm: float | None, bars: float | None, seed: int | None,
                key: str | None = None, beats: float | None = None, draft: bool = False) -> str:
    """The DAW name's stem (plugin/names.loop_name) with one tempo: on the grid the name states the rendered
    BPM, so a tempo written in the prompt ("funky slap bass, 100 bpm") is left out of the prompt part (a loop
    rendered at 120 was named `funky-slap-bass-100-bpm_120bpm_...`, and a DAW reading tempo from names could
    take either). Without a grid the prompt's tempo is the only one and stays. key: the fitted loop's key
    ("Amin") when the detector found one, as sample packs name it; None leaves it out. beats: the length in
    beats instead of bars (a batch loop made by beats is named so). draft: a draft's name says so
    ("…_seed7_draft"): its refinement has the same prompt, grid and seed, and would otherwise take the plain name
    and leave the draft a meaningless "-2"."""
    from plugin.names import loop_name
    from ui.app.prompt_tempo import without_tempo

    named = without_tempo(prompt) if bpm else prompt
    stem = loop_name(named, bpm=bpm, bars=bars if bpm else None, beats=beats if bpm else None, seed=seed, key=key)
    return stem + "_draft" if draft else stem


def key_words(export: str | Path) -> str:
    """What the session key did to an exported loop, from its sidecar, in the CLI's words ("transposed -2
    semitones from Bmin", "no key found: not transposed"), with the key asked; "" when no key was asked."""
    import json

    from plugin.transpose import summary

    try:
        transposed = json.loads(Path(export).with_suffix(".json").read_text(encoding="utf-8"))["fit"]["transposed"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f"{summary(transposed)} ({transposed['target']} asked)" if transposed else ""


def export_loop(request: ExportRequest) -> Path:
    """Write the DAW file for one result; returns its path (complete and closed when this returns)."""
    from plugin.names import reserved_path

    settings = request.sidecar.get("settings", {})
    prompt = str(settings.get("prompt", "loop"))
    seed = settings.get("seed")
    draft = is_draft(settings)
    suffix = f".{request.audio_format}"
    if request.fitted:  # on its grid already, or never on one: never fitted again
        fitted = _as_fitted(request)
        if fitted is not None:
            return _export_fitted(request, fitted, prompt, seed, suffix)
        request = replace(request, bpm=None, bars=None)
    if request.bpm and request.bars:  # fitted first: the key it finds goes into the name
        options, fitted = _fitted(request, Path(request.folder) / f"loop{suffix}")
        key = (fitted.report.key or {}).get("name")
        stem = export_stem(prompt, bpm=request.bpm, bars=request.bars, seed=seed, key=key, draft=draft)
        with reserved_path(request.folder, stem, suffix) as out:
            _write_on_grid(request, out, options, fitted, prompt, seed)
        return out
    stem = export_stem(prompt, bpm=request.bpm, bars=request.bars, seed=seed, draft=draft)
    with reserved_path(request.folder, stem, suffix) as out:
        _write_in_seconds(request, out)
    return out


def _export_fitted(request: ExportRequest, fitted, prompt: str, seed: int | None, suffix: str) -> Path:
    """A loop on its grid already (`fitted`), in the export's form and named for its grid and key; its path."""
    from plugin.grid_loop import write_grid_loop
    from plugin.names import reserved_path

    grid = fitted.grid
    options = _grid_options(request, grid).validate(Path(request.folder) / f"loop{suffix}")
    whole_bars = float(grid.bars).is_integer()  # a batch loop of 2 beats is named "2beats", not "0.5bars"
    stem = export_stem(prompt, bpm=grid.bpm, bars=float(grid.bars) if whole_bars else None,
                       beats=None if whole_bars else float(grid.beats), seed=seed,
                       key=(fitted.report.key or {}).get("name"))
    with reserved_path(request.folder, stem, suffix) as out:
        write_grid_loop(out, fitted, options, _converted_record(request), prompt=prompt, seed=seed)
    return out


def _converted_record(request: ExportRequest) -> dict[str, Any]:
    """The sidecar record of a loop exported without a new fit: what made it (settings, bundle, provider, as its
    own sidecar has them) and the audio it was converted from."""
    kept = {key: value for key, value in request.sidecar.items() if key in ("settings", "bundle", "provider")}
    return {**kept, "source": {"audio": request.audio}}


def _as_fitted(request: ExportRequest):
    """The fitted loop a CLI or batch file is: its audio, the grid its sidecar states and the fit it records (a fit
    record that does not read back: a plain one, the length alone); None when the sidecar states no grid (a loop
    generated in seconds: exported in seconds)."""
    import soundfile

    from plugin.fit import FitReport, FittedLoop, Grid

    record = request.sidecar.get("grid")
    try:
        grid = Grid.parse(bpm=float(record["bpm"]), beats=float(record["beats"]) if record.get("beats") else None,
                          bars=None if record.get("beats") else float(record["bars"]),
                          meter=str(record.get("meter", "4/4")))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    audio, rate = soundfile.read(request.audio, dtype="float32", always_2d=True)
    try:
        report = FitReport(**request.sidecar["fit"])
    except (KeyError, TypeError):
        report = FitReport(mode="length", reason="exported from a loop on its grid", tempo_found=None,
                           tempo_confidence=0.0, tempo_octave=None, source_beats=None, repeats=1, stretch=1.0,
                           start_s=0.0, crossfade_s=0.0, samples=int(audio.shape[0]), sample_rate=int(rate))
    return FittedLoop(audio=audio, sample_rate=int(rate), grid=grid, report=report)


def _grid_options(request: ExportRequest, grid):
    """The export's form on `grid`, as plugin/'s grid options."""
    from plugin.grid_loop import GridOptions

    return GridOptions(bpm=grid.bpm, beats=float(grid.beats), meter=str(grid.meter), bit_depth=request.bit_depth,
                       sample_rate=request.sample_rate, normalize_lufs=request.normalize_lufs)


def _write_in_seconds(request: ExportRequest, out: Path) -> None:
    from engine.atomic import write_errors
    from engine.loop_files import write_loop

    with write_errors(out):
        write_loop(out, _converted(request), _converted_record(request))


def _converted(request: ExportRequest):
    """A writer of the engine's audio in the export's format, bit depth, sample rate and loudness (a loop's
    audio record back): what `riffstudio loop` offers, for a loop in seconds too. Without a loudness target
    the level is the engine's, untouched."""

    def write(path: Path) -> dict[str, Any]:
        import soundfile

        from plugin.loop_file import SUBTYPES

        audio, rate = soundfile.read(request.audio, dtype="float32", always_2d=True)
        levels: dict[str, Any] = {}
        if request.sample_rate and request.sample_rate != rate:
            from fractions import Fraction

            from plugin.loop_file import resample_by

            ratio = Fraction(request.sample_rate, rate)
            audio, rate = resample_by(audio, ratio.numerator, ratio.denominator), request.sample_rate
        if request.normalize_lufs is not None:
            import numpy as np

            from plugin.loop_file import LoopFileSettings, level

            audio, levels = level(audio, rate, LoopFileSettings(sample_rate=rate,
                                                                normalize_lufs=request.normalize_lufs).validate())
            audio = np.clip(audio, -1.0, 1.0)
        bit_depth = "24" if request.audio_format == "flac" and request.bit_depth == "32f" else request.bit_depth
        subtype = SUBTYPES[bit_depth]  # FLAC holds integers only
        with atomic_path(path) as temporary:
            soundfile.write(temporary, audio, rate, format=request.audio_format.upper(), subtype=subtype)
        return {"format": request.audio_format, "bit_depth": bit_depth, "sample_rate": rate,
                "samples": int(audio.shape[0]), "channels": int(audio.shape[1]),
                "seconds": round(audio.shape[0] / rate, 6), **levels}

    return write


def _fitted(request: ExportRequest, named_like: Path):
    """The grid options (checked against a file of the export's format) and the loop fitted from the engine's
    image and audio (plugin/grid_loop.fit_image: the grid fit, then the key found)."""
    from engine.codec.audio_io import read_audio
    from engine.codec.image_file import read_spectrogram_image
    from plugin.grid_loop import GridOptions, fit_image

    options = GridOptions(bpm=float(request.bpm), bars=float(request.bars), bit_depth=request.bit_depth,
                          sample_rate=request.sample_rate, normalize_lufs=request.normalize_lufs,
                          key=request.key).validate(named_like)
    image = read_spectrogram_image(request.image)
    audio, rate = read_audio(request.audio)
    quality = str(request.sidecar.get("settings", {}).get("quality", "standard"))
    return options, fit_image(image.pixels, options, analysis_audio=audio, analysis_rate=rate, quality=quality)


def _write_on_grid(request: ExportRequest, out: Path, options, fitted, prompt: str, seed: int | None) -> None:
    from plugin.grid_loop import write_grid_loop

    record = {"settings": request.sidecar.get("settings", {}), "bundle": request.sidecar.get("bundle", {}),
              "source": {"audio": request.audio}}
    write_grid_loop(out, fitted, options, record, prompt=prompt, seed=seed)


def paint_width_for(bpm: float, bars: float, minimum: int = 64) -> int:
    """The image width to ask the engine for a loop of `bars` at `bpm` (plugin/'s rule, pure arithmetic)."""
    from plugin.fit import Grid
    from plugin.grid_loop import paint_width

    return paint_width(Grid.parse(bpm=bpm, bars=bars), minimum)


def width_for_seconds(seconds: float) -> int:
    """Image columns for `seconds` of audio: 100 columns a second (10 ms hop), a multiple of 8."""
    columns = round(seconds * 100) + 1
    return int(min(max(-(-columns // 8) * 8, 64), 2048))
