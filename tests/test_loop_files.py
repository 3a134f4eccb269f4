"""The one loop writer and reader (engine/loop_files.py): every loop file carries the same verified sidecar,
a half-written or tampered loop never counts as finished, and a writer removes only its own leftovers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.atomic import MARKER, leftover_temporaries
from engine.file_hash import file_sha256
from engine.loop_files import SIDECAR_SCHEMA, plain_audio, read_loop, sidecar_path, spectrogram_image, write_loop
from engine.version import __version__

RATE = 44100


def tone(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]


def pixels(width: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (512, width, 3), dtype=np.uint8)


def write(out: Path, *, image: Path | None = None, record: dict | None = None) -> dict:
    return write_loop(out, plain_audio(tone(), RATE), record or {"settings": {"seed": 3}}, image=image,
                      write_image=spectrogram_image(pixels()) if image is not None else None)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_a_written_loop_reads_back_with_its_schema_version_and_hashes(tmp_path, suffix):
    out = tmp_path / f"bass{suffix}"
    sidecar = write(out, image=tmp_path / "bass.png", record={"settings": {"seed": 3}, "audio": {"stale": 1}})
    assert sidecar["schema"] == SIDECAR_SCHEMA and sidecar["riffstudio_version"] == __version__
    assert sidecar["audio"]["file"] == out.name and sidecar["audio"]["sha256"] == file_sha256(out)
    assert "stale" not in sidecar["audio"] and sidecar["audio"]["samples"] == tone().shape[0]
    assert sidecar["image"] == {"file": "bass.png", "sha256": file_sha256(tmp_path / "bass.png")}
    found = read_loop(out)
    assert found is not None and found.sidecar == json.loads(sidecar_path(out).read_text())
    assert found.audio == out and found.image == tmp_path / "bass.png"
    assert read_loop(sidecar_path(out)) == found  # by its sidecar too (the engine's results folders)
    assert set(found.paths()) == {"audio", "image", "sidecar"}


def test_a_loop_that_does_not_verify_is_not_finished(tmp_path):
    out = tmp_path / "loop.wav"
    write(out, record={"settings": {}, "batch": {"key": "k1"}})
    assert read_loop(out, key="k1") is not None and read_loop(out, key="k2") is None
    data = bytearray(out.read_bytes())
    data[-1] ^= 0x01
    out.write_bytes(bytes(data))  # the audio changed after its sidecar was written
    assert read_loop(out) is None
    write(out)
    sidecar = json.loads(sidecar_path(out).read_text())
    for tamper in ({"file": "../loop.wav"}, {"file": "other.wav"}):  # the audio must be this sidecar's own
        (tmp_path / "other.wav").write_bytes(out.read_bytes())
        sidecar_path(out).write_text(json.dumps({**sidecar, "audio": {**sidecar["audio"], **tamper}}))
        assert read_loop(out) is None and read_loop(sidecar_path(out)) is None
    sidecar_path(out).write_text("{ half a sidecar")
    assert read_loop(out) is None
    sidecar_path(out).unlink()
    assert read_loop(out) is None
    write(out, image=tmp_path / "loop.png")
    (tmp_path / "loop.png").unlink()
    assert read_loop(out) is None


def test_a_write_removes_only_the_temporaries_of_its_own_names(tmp_path):
    out = tmp_path / "loop.wav"
    killed = [tmp_path / f".loop.wav.abcd1234{MARKER}.wav", tmp_path / f".loop.json.abcd1234{MARKER}.json"]
    mine = [tmp_path / f".other.wav.abcd1234{MARKER}.wav", tmp_path / ".loop.wav.partial", tmp_path / "loop.wav.bak"]
    for path in killed + mine:
        path.write_bytes(b"x")
    write(out)
    assert not any(path.exists() for path in killed)
    assert all(path.exists() for path in mine)  # another loop's temporary, the producer's own files
    assert leftover_temporaries([out, sidecar_path(out)]) == []


def test_an_image_path_without_a_writer_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError):
        write_loop(tmp_path / "x.wav", plain_audio(tone(), RATE), {}, image=tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("audio_format", "bit_depth", "written"), [("wav", "16", "16"), ("flac", "32f", "24")])
def test_an_app_export_in_seconds_mode_is_a_verified_loop_in_the_format_asked(tmp_path, audio_format, bit_depth,
                                                                              written):
    import soundfile

    from ui.app.exports import ExportRequest, export_loop

    engine_loop = tmp_path / "results" / "loop.wav"
    sidecar = write(engine_loop, image=tmp_path / "results" / "loop.png",
                    record={"settings": {"prompt": "warm pad", "seed": 7}, "provider": "cpu"})
    out = export_loop(ExportRequest(audio=str(engine_loop), image=str(tmp_path / "results" / "loop.png"),
                                    sidecar=sidecar, folder=tmp_path / "daw", bit_depth=bit_depth,
                                    audio_format=audio_format))
    assert out.parent == tmp_path / "daw" and out.suffix == f".{audio_format}" and "seed7" in out.name
    assert soundfile.info(out).subtype == f"PCM_{written}"  # FLAC holds integers only
    found = read_loop(out)
    assert found is not None and found.sidecar["settings"]["seed"] == 7
    assert found.sidecar["source"] == {"audio": str(engine_loop)} and found.sidecar["audio"]["bit_depth"] == written
