"""The key in a batch loop's file name ("..._2bars_Amin_seed7.wav"), only when the detector found one, agreeing
with the acid root note (libsndfile), the smpl unity note and INFO name (wavinfo) and the sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from plugin_audio import drum_loop, libsndfile_loop_info
from test_plugin_key import cadence

from engine.codec import encode_audio
from plugin.batch import Rendered, found_on_disk, is_complete, write_item
from plugin.presets import expand, read_presets

RATE = 44100


def _item(tmp_path: Path, extra: str = ""):
    path = tmp_path / "pack.toml"
    path.write_text(f'[[preset]]\nmodel = "m"\nprompt = "dusty keys"\nseeds = [7]\nbpm = 100\nbars = 1\n'
                    f'fit = "length"\nquality = "draft"\n{extra}', encoding="utf-8")
    (item,) = expand(path, read_presets(path), {})
    return item, path


def _rendered(audio: np.ndarray) -> Rendered:
    return Rendered(image=encode_audio(audio[:, None], RATE).pixels, audio=audio[:, None], sample_rate=RATE,
                    record={"settings": {"seed": 7, "prompt": "dusty keys"}})


def test_a_loop_in_a_key_is_named_with_it_and_every_reader_agrees(tmp_path):
    from wavinfo import WavInfoReader

    item, presets = _item(tmp_path)
    planned = tmp_path / "out" / "dusty-keys" / "dusty-keys_100bpm_1bar_seed7.wav"
    written = write_item(item, planned, _rendered(cadence(9, True)), presets)  # A minor
    assert written.name == "dusty-keys_100bpm_1bar_Amin_seed7.wav"
    assert not planned.exists() and written.is_file()
    sidecar = json.loads(written.with_suffix(".json").read_text())
    assert sidecar["fit"]["key"]["name"] == "Amin" and sidecar["audio"]["file"] == written.name
    assert libsndfile_loop_info(written)["root_key"] == 48 + 9
    reader = WavInfoReader(str(written))
    assert reader.info.to_dict()["title"] == written.stem  # INAM
    assert reader.smpl.midi_note == 48 + 9
    assert is_complete(written, item.key)
    assert found_on_disk(tmp_path / "out")[0] == {item.key: "dusty-keys/" + written.name}  # a rerun finds it


def test_a_transposed_loop_is_named_with_the_key_it_ends_in(tmp_path):
    item, presets = _item(tmp_path, 'key = "Dm"\n')
    planned = tmp_path / "out" / "dusty-keys" / "dusty-keys_100bpm_1bar_seed7.wav"
    written = write_item(item, planned, _rendered(cadence(9, True)), presets)  # A minor -> D minor
    assert written.name == "dusty-keys_100bpm_1bar_Dmin_seed7.wav"
    sidecar = json.loads(written.with_suffix(".json").read_text())
    assert sidecar["fit"]["transposed"] == {"detected": "Amin", "target": "Dmin", "semitones": 5}
    assert libsndfile_loop_info(written)["root_key"] == 48 + 2


def test_no_key_no_key_in_the_name_and_a_taken_name_is_not_overwritten(tmp_path):
    item, presets = _item(tmp_path)
    planned = tmp_path / "out" / "dusty-keys" / "dusty-keys_100bpm_1bar_seed7.wav"
    drums, _ = drum_loop(100, seconds=5.1)
    assert write_item(item, planned, _rendered(drums), presets) == planned  # no key: the planned name
    assert json.loads(planned.with_suffix(".json").read_text())["fit"]["key"] is None
    other = tmp_path / "other" / "dusty-keys" / "dusty-keys_100bpm_1bar_seed7.wav"
    other.parent.mkdir(parents=True)
    (other.parent / "dusty-keys_100bpm_1bar_Amin_seed7.wav").write_bytes(b"a producer's own file")
    written = write_item(item, other, _rendered(cadence(9, True)), presets)
    assert written.name == "dusty-keys_100bpm_1bar_Amin_seed7-2.wav"
    assert (other.parent / "dusty-keys_100bpm_1bar_Amin_seed7.wav").read_bytes() == b"a producer's own file"
