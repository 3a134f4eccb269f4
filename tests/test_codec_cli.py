"""`riffstudio codec encode|decode` on real files, and the one-line error contract for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import DATA
from PIL import Image

from ui.cli.main import main


def test_encode_writes_riffusions_image_with_exif(run_cli, tmp_path):
    result = run_cli("codec", "encode", DATA / "audio" / "speech.wav", tmp_path / "speech.png")
    assert result.returncode == 0, result.stderr
    ours = Image.open(tmp_path / "speech.png")
    golden = Image.open(DATA / "golden" / "speech.riffusion.png")
    assert ours.size == golden.size and ours.mode == "RGB"
    difference = np.abs(np.asarray(ours).astype(int) - np.asarray(golden).astype(int))
    assert np.mean(difference <= 1) >= 0.995
    assert ours.getexif()[11080] == pytest.approx(golden.getexif()[11080], rel=1e-4)


def test_encode_resamples_and_keeps_stereo_when_asked(run_cli, tmp_path):
    rate = 48000
    t = np.arange(rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 880 * t)], axis=1)
    soundfile.write(tmp_path / "in.flac", stereo.astype(np.float32), rate)
    result = run_cli("codec", "encode", tmp_path / "in.flac", tmp_path / "out.png", "--stereo")
    assert result.returncode == 0, result.stderr
    image = Image.open(tmp_path / "out.png")
    assert image.size == (44100 // 441 + 1, 512)
    assert image.getexif()[11005] == 1
    pixels = np.asarray(image)
    assert not pixels[:, :, 0].any() and pixels[:, :, 1:].min() == 0


def test_decode_writes_exactly_the_requested_length(run_cli, tmp_path):
    result = run_cli("codec", "decode", DATA / "golden" / "drums.riffusion.png", tmp_path / "drums.wav",
                     "--quality", "draft", "--seconds", "4")
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(tmp_path / "drums.wav", dtype="float32")
    assert rate == 44100 and audio.shape == (176400,)
    assert 0.85 < np.max(np.abs(audio)) < 0.9  # -1 dBFS peak


def test_decode_of_a_stereo_image_writes_a_stereo_file(run_cli, tmp_path):
    image = DATA / "riffusion" / "clip_2_start_103694_ms_duration_5678_ms_stereo.png"
    result = run_cli("codec", "decode", image, tmp_path / "clip.flac", "--quality", "draft")
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(tmp_path / "clip.flac", dtype="float32")
    assert rate == 44100
    assert audio.shape == (567 * 441, 2)


def write_bad_inputs(folder):
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio\n")
    soundfile.write(folder / "no_frames.wav", np.zeros((0, 1), np.float32), 44100)
    soundfile.write(folder / "nan.wav", np.array([0.0, np.nan, 0.5], np.float32), 44100, subtype="FLOAT")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    Image.fromarray(np.zeros((300, 50, 3), np.uint8)).save(folder / "short.png")
    Image.fromarray(np.zeros((512, 50), np.uint16)).save(folder / "deep.png")


@pytest.mark.parametrize(("command", "bad", "output", "message"), [
    ("encode", "empty.wav", "out.png", "empty (0 bytes)"),
    ("encode", "text.wav", "out.png", "cannot read text.wav as audio"),
    ("encode", "no_frames.wav", "out.png", "no audio"),
    ("encode", "nan.wav", "out.png", "NaN"),
    ("encode", "missing.wav", "out.png", "does not exist"),
    ("encode", "../audio_ok.wav", "out.txt", "use a .png"),
    ("decode", "empty.png", "out.wav", "empty (0 bytes)"),
    ("decode", "text.png", "out.wav", "cannot read text.png as an image"),
    ("decode", "short.png", "out.wav", "300 pixels high"),
    ("decode", "deep.png", "out.wav", "8-bit"),
    ("decode", "../image_ok.png", "out.mp4", "use a .wav"),
])
def test_bad_input_exits_non_zero_with_one_line_and_writes_nothing(capsys, tmp_path, command, bad, output,
                                                                   message):
    """In-process through the same `main` (a subprocess per case would only add start-up time)."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_bad_inputs(folder)
    soundfile.write(tmp_path / "audio_ok.wav", np.zeros(4410, np.float32) + 0.1, 44100)
    Image.fromarray(np.full((512, 20, 3), 128, np.uint8)).save(tmp_path / "image_ok.png")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["codec", command, str(folder / bad), str(out_dir / output)])
    assert code != 0
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("riffstudio: "), stderr
    assert message in lines[0]
    assert list(out_dir.iterdir()) == []


def test_out_of_range_seconds_is_rejected(run_cli, tmp_path):
    result = run_cli("codec", "decode", DATA / "golden" / "rock.riffusion.png", tmp_path / "x.wav",
                     "--seconds", "30")
    assert result.returncode == 2
    assert "0.5x..2x" in result.stderr
    assert not (tmp_path / "x.wav").exists()
