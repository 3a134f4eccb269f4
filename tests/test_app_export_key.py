"""The app's DAW file of a loop in a key is named with it, as sample packs write it and as batch does
("..._2bars_Amin_seed7.wav"); a loop without a key is named without one. Through ui/app/exports.export_loop,
the one call the app's drags and Export… make, on a real engine-shaped result (audio + spectrogram image)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile
from test_plugin_key import cadence

from engine.codec import encode_audio
from engine.codec.image_file import write_spectrogram_image
from ui.app.exports import ExportRequest, export_loop

RATE = 44100


def engine_result(folder: Path, audio: np.ndarray) -> ExportRequest:
    """What the engine leaves for a job: loop.wav, loop.png and its settings; exported at 100 bpm, 1 bar."""
    folder.mkdir(parents=True)
    soundfile.write(folder / "loop.wav", audio[:, None], RATE)
    write_spectrogram_image(folder / "loop.png", encode_audio(audio[:, None], RATE))
    sidecar = {"settings": {"prompt": "dusty keys", "seed": 7, "quality": "draft"}}
    return ExportRequest(audio=str(folder / "loop.wav"), image=str(folder / "loop.png"), sidecar=sidecar,
                         folder=folder.parent / "exports", bpm=100, bars=1)


def test_an_app_export_of_a_loop_in_a_key_names_the_key(tmp_path):
    out = export_loop(engine_result(tmp_path / "job", cadence(9, True)))  # A minor
    assert out.name == "dusty-keys_100bpm_1bar_Amin_seed7.wav"
    sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["fit"]["key"]["name"] == "Amin" and sidecar["audio"]["file"] == out.name


def test_an_app_export_without_a_key_has_none_in_its_name(tmp_path):
    noise = np.random.default_rng(3).standard_normal(5 * RATE).astype(np.float32) * 0.1
    out = export_loop(engine_result(tmp_path / "job", noise))
    assert out.name == "dusty-keys_100bpm_1bar_seed7.wav"


def test_a_drafts_file_says_it_is_a_draft_beside_its_refinement(tmp_path):
    """A draft and its refinement share prompt, grid and seed: the draft's name says so, not a bare "-2"."""
    from dataclasses import replace

    from engine.speeds import SPEED_PRESETS

    request = engine_result(tmp_path / "job", cadence(9, True))
    refined = export_loop(request)
    draft_settings = {**request.sidecar["settings"], **SPEED_PRESETS["draft"]}
    draft = export_loop(replace(request, sidecar={"settings": draft_settings}))
    assert refined.name == "dusty-keys_100bpm_1bar_Amin_seed7.wav"
    assert draft.name == "dusty-keys_100bpm_1bar_Amin_seed7_draft.wav"
