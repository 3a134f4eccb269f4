"""A finished result as the file a DAW gets: a closed WAV in the permanent export folder, DAW-named.

Why a permanent folder and never a temp file: Ableton (and others) reference a dropped sample where it
lies; a temp file vanishes and the set shows it missing next week. Why export when the job finishes and
not when the drag starts: a drag must start at once, with a file that is already whole.

On the grid (BPM + bars) the loop goes through plugin/'s fitting (`fit_image` + `write_grid_loop`: exact
length, acid/smpl/cue/INFO chunks); in seconds mode the engine's audio is written
under the DAW name in the export's format and bit depth. Either way through the one loop writer
(engine/loop_files.py): the file with its sidecar beside it.
This runs on a worker thread (fitting is DSP): never call it from the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path


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


def export_stem(prompt: str, *, bpm: float | None, bars: float | None, seed: int | None) -> str:
    """The DAW name's stem (plugin/names.loop_name) with one tempo: on the grid the name states the rendered
    BPM, so a tempo written in the prompt ("funky slap bass, 100 bpm") is left out of the prompt part (a loop
    rendered at 120 was named `funky-slap-bass-100-bpm_120bpm_...`, and a DAW reading tempo from names could
    take either). Without a grid the prompt's tempo is the only one and stays."""
    from plugin.names import loop_name
    from ui.app.prompt_tempo import without_tempo

    named = without_tempo(prompt) if bpm else prompt
    return loop_name(named, bpm=bpm, bars=bars if bpm else None, seed=seed)


def export_loop(request: ExportRequest) -> Path:
    """Write the DAW file for one result; returns its path (complete and closed when this returns)."""
    from plugin.names import reserved_path

    settings = request.sidecar.get("settings", {})
    prompt = str(settings.get("prompt", "loop"))
    seed = settings.get("seed")
    stem = export_stem(prompt, bpm=request.bpm, bars=request.bars, seed=seed)
    with reserved_path(request.folder, stem, f".{request.audio_format}") as out:
        _write_export(request, out, prompt, seed)
    return out


def _write_export(request: ExportRequest, out: Path, prompt: str, seed: int | None) -> None:
    if request.bpm and request.bars:
        _export_on_grid(request, out, prompt, seed)
        return
    from engine.atomic import write_errors
    from engine.loop_files import write_loop

    record = {key: value for key, value in request.sidecar.items() if key in ("settings", "bundle", "provider")}
    with write_errors(out):
        write_loop(out, _converted(request), {**record, "source": {"audio": request.audio}})


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


def _export_on_grid(request: ExportRequest, out: Path, prompt: str, seed: int | None) -> None:
    from engine.codec.audio_io import read_audio
    from engine.codec.image_file import read_spectrogram_image
    from plugin.grid_loop import GridOptions, fit_image, write_grid_loop

    options = GridOptions(bpm=float(request.bpm), bars=float(request.bars), bit_depth=request.bit_depth,
                          sample_rate=request.sample_rate, normalize_lufs=request.normalize_lufs).validate(out)
    image = read_spectrogram_image(request.image)
    audio, rate = read_audio(request.audio)
    quality = str(request.sidecar.get("settings", {}).get("quality", "standard"))
    fitted = fit_image(image.pixels, options, analysis_audio=audio, analysis_rate=rate, quality=quality)
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
