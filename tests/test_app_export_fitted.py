"""Export… of a loop the CLI or a batch wrote keeps its grid (#26: it was converted as a clip in seconds, so the new
file's name had no BPM and its sidecar no grid): the real window exports it through its controller, in the form
chosen in the dialog, named with its BPM, length and key, exactly its bars long at the new rate, not fitted
again (its audio is the loop), with the source's grid and fit record in the new sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile
from app_window import plain_window
from conftest import DATA
from PySide6.QtCore import Qt


def fitted_loop(out: Path, sound: str, *, bars: float | None, beats: float | None, batch: bool) -> dict:
    """A loop on the grid as `riffstudio loop`/`generate --bpm`/batch write it (fitted from a golden painting of
    `sound`); its sidecar."""
    from engine.codec.audio_io import read_audio
    from engine.codec.image_file import read_spectrogram_image
    from plugin.grid_loop import GridOptions, fit_image, write_grid_loop

    options = GridOptions(bpm=120.0, bars=bars, beats=beats).validate(out)
    audio, rate = read_audio(DATA / "audio" / f"{sound}.wav")
    fitted = fit_image(read_spectrogram_image(DATA / "golden" / f"{sound}.riffusion.png").pixels, options,
                       analysis_audio=audio, analysis_rate=rate)
    record = {"settings": {"prompt": "funky drums, 100 bpm", "seed": 7, "steps": 2},
              **({"batch": {"presets": "pack.toml", "key": "k1"}} if batch else {})}
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_grid_loop(out, fitted, options, record, prompt="funky drums", seed=7)


@pytest.mark.parametrize(("origin", "sound", "bars", "beats", "length"), [("cli", "piano", 2.0, None, "2bars"),
                                                                          ("batch", "drums", None, 2.0, "2beats")])
def test_exporting_a_cli_or_batch_loop_keeps_its_grid_in_the_form_chosen(qtbot, monkeypatch, tmp_path, origin, sound,
                                                                          bars, beats, length):
    from engine.loop_files import read_loop
    from ui.app.export_dialog import ExportDialog
    from ui.app.library_imports import import_loop_file

    source = tmp_path / "made" / "funky-drums_120bpm.wav"
    written = fitted_loop(source, sound, bars=bars, beats=beats, batch=origin == "batch")
    key = (written["fit"].get("key") or {}).get("name")
    assert bool(key) == (sound == "piano")  # the piano's key is found (and named), the drums have none
    with plain_window(qtbot, monkeypatch, export_dir=str(tmp_path / "exports")) as window:
        job = import_loop_file(window.library, source, origin=origin, collection="pack")
        window.refresh_library()
        window.library_pane.select(job)
        assert window.current.job == job and window.current.made_elsewhere
        exported: list[str] = []
        window.controller.exported.connect(lambda _job, path: exported.append(path))
        qtbot.mouseClick(window.result_pane.export_button, Qt.MouseButton.LeftButton)
        [dialog] = [d for d in window.findChildren(ExportDialog) if d.isVisible()]
        dialog.folder.setText(str(tmp_path / "out"))
        dialog.audio_format.setCurrentText("flac")
        dialog.sample_rate.setCurrentText("48 kHz")
        dialog.bit_depth.setCurrentText("16-bit")
        dialog.accept()
        qtbot.waitUntil(lambda: bool(exported), timeout=30_000)
    out = Path(exported[0])
    assert out.name == f"funky-drums_120bpm_{length}" + (f"_{key}" if key else "") + "_seed7.flac"
    info = soundfile.info(out)
    assert (info.format, info.samplerate, info.subtype) == ("FLAC", 48000, "PCM_16")
    grid = written["grid"]
    assert info.frames / info.samplerate == grid["bars"] * 4 * 60 / grid["bpm"] == (4.0 if bars else 1.0)  # exact
    found = read_loop(out)
    assert found is not None and found.sidecar["grid"] == written["grid"]
    assert found.sidecar["fit"] == written["fit"]  # not fitted again: its fit record is the source's
    assert found.sidecar["source"]["audio"] == str(source.resolve())
    assert json.loads(source.with_suffix(".json").read_text()) == written  # the source is left as it was


def test_a_cli_loop_made_in_seconds_is_exported_in_seconds(tmp_path):
    """`generate` without a tempo writes a loop with no grid: its export is converted as it is, named without one."""
    import numpy as np

    from engine.loop_files import plain_audio, read_loop, write_loop
    from ui.app.exports import ExportRequest, export_loop

    source = tmp_path / "made" / "pad.wav"
    source.parent.mkdir()
    sidecar = write_loop(source, plain_audio(np.full((22050, 2), 0.1, np.float32), 44100),
                         {"settings": {"prompt": "pad", "seed": 6}})
    out = export_loop(ExportRequest(audio=str(source), image="", sidecar=sidecar, folder=tmp_path / "out",
                                    bpm=120.0, bars=1.0, fitted=True, sample_rate=48000))
    assert out.name == "pad_seed6.wav" and soundfile.info(out).frames == 24000
    assert "grid" not in read_loop(out).sidecar
