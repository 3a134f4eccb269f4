"""The encoder makes riffusion 0.0.5's images: golden files, a real stereo recording, EXIF, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from engine.codec import DEFAULT_PARAMS, SpectrogramParams, encode_audio, mel_amplitudes
from engine.codec.image_file import read_spectrogram_image, write_spectrogram_image
from engine.errors import InvalidInputError

CLIPS = ("drums", "piano", "rock", "speech")
RECORDING = DATA / "riffusion" / "clip_2_start_103694_ms_duration_5678_ms"


def read_wav(path):
    samples, rate = soundfile.read(path, dtype="float32")
    return samples, rate


def within_one_level(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape
    return float(np.mean(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)) <= 1))


@pytest.mark.parametrize("clip", CLIPS)
def test_encoder_reproduces_riffusions_golden_image(clip):
    samples, rate = read_wav(DATA / "audio" / f"{clip}.wav")
    golden = Image.open(DATA / "golden" / f"{clip}.riffusion.png")
    encoded = encode_audio(samples, rate)
    assert encoded.pixels.dtype == np.uint8
    assert encoded.pixels.shape == np.asarray(golden).shape == (512, samples.shape[0] // 441 + 1, 3)
    assert within_one_level(encoded.pixels, np.asarray(golden)) >= 0.995
    assert encoded.max_value == pytest.approx(golden.getexif()[11080], rel=1e-4)


def test_mono_image_of_a_stereo_recording_is_its_left_channel_like_riffusions():
    samples, rate = read_wav(RECORDING.with_suffix(".wav"))
    assert samples.shape[1] == 2
    golden = Image.open(RECORDING.with_suffix(".png"))
    encoded = encode_audio(samples, rate)
    assert not encoded.stereo
    assert within_one_level(encoded.pixels, np.asarray(golden)) >= 0.995
    assert encoded.max_value == pytest.approx(golden.getexif()[11080], rel=1e-4)


def test_stereo_image_matches_riffusions_layout():
    samples, rate = read_wav(RECORDING.with_suffix(".wav"))
    golden = np.asarray(Image.open(RECORDING.parent / (RECORDING.name + "_stereo.png")))
    encoded = encode_audio(samples, rate, stereo=True)
    assert encoded.stereo
    assert not encoded.pixels[:, :, 0].any()  # R = 0
    assert within_one_level(encoded.pixels, golden) >= 0.995
    assert not np.array_equal(encoded.pixels[:, :, 1], encoded.pixels[:, :, 2])  # G = left, B = right


def test_image_file_round_trips_pixels_and_exif(tmp_path):
    samples, rate = read_wav(DATA / "audio" / "piano.wav")
    encoded = encode_audio(samples, rate)
    path = write_spectrogram_image(tmp_path / "piano.png", encoded)
    exif = Image.open(path).getexif()
    golden_exif = Image.open(DATA / "golden" / "piano.riffusion.png").getexif()
    assert set(exif) == set(golden_exif) == set(range(11000, 11081, 10)) | {11005}
    for tag in golden_exif:
        if tag != 11080:
            assert exif[tag] == golden_exif[tag], tag
    read = read_spectrogram_image(path)
    assert np.array_equal(read.pixels, encoded.pixels)
    assert read.params == DEFAULT_PARAMS
    assert read.stereo is False
    assert read.max_value == pytest.approx(encoded.max_value)
    assert read.has_exif


def test_reading_riffusions_own_files_gives_their_parameters():
    read = read_spectrogram_image(RECORDING.parent / (RECORDING.name + "_stereo.png"))
    assert read.params == DEFAULT_PARAMS
    assert read.max_value == 46801012.0
    assert read.has_exif


def test_image_without_exif_reads_with_default_parameters(tmp_path):
    pixels = np.full((512, 40, 3), 200, dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "model.png")
    read = read_spectrogram_image(tmp_path / "model.png")
    assert read.params == DEFAULT_PARAMS
    assert read.stereo is None and read.max_value is None and not read.has_exif


def test_non_default_parameters_travel_in_exif(tmp_path):
    params = SpectrogramParams(step_ms=20, num_bins=256, max_hz=8000)
    samples = np.random.default_rng(1).standard_normal(44100).astype(np.float32) * 0.1
    encoded = encode_audio(samples, 44100, params)
    assert encoded.pixels.shape == (256, 44100 // 882 + 1, 3)
    read = read_spectrogram_image(write_spectrogram_image(tmp_path / "x.png", encoded))
    assert read.params == params


def test_params_serialise_to_a_dict_and_back():
    params = SpectrogramParams(sample_rate=48000, min_hz=20, max_hz=20000, power=0.5)
    assert SpectrogramParams.from_dict(params.to_dict()) == params
    assert DEFAULT_PARAMS.n_fft == 17640 and DEFAULT_PARAMS.win_length == 4410
    assert DEFAULT_PARAMS.hop_length == 441
    with pytest.raises(InvalidInputError, match="unknown spectrogram parameter"):
        SpectrogramParams.from_dict({"hop": 3})
    with pytest.raises(InvalidInputError, match="frequency range"):
        SpectrogramParams(max_hz=30000)


def test_silence_encodes_to_a_white_image_with_zero_maximum():
    encoded = encode_audio(np.zeros(10000, dtype=np.float32), 44100)
    assert encoded.max_value == 0.0
    assert (encoded.pixels == 255).all()


def test_encoder_rejects_unusable_audio():
    with pytest.raises(InvalidInputError, match="empty"):
        encode_audio(np.zeros(0, dtype=np.float32), 44100)
    with pytest.raises(InvalidInputError, match="NaN"):
        encode_audio(np.array([0.0, np.nan, 0.1], dtype=np.float32), 44100)
    with pytest.raises(InvalidInputError, match="resampled"):
        encode_audio(np.zeros(100, dtype=np.float32), 48000)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples=hnp.arrays(np.float32, st.integers(1, 6000),
                          elements=st.floats(-1, 1, width=32, allow_nan=False)),
       stereo=st.booleans())
def test_encoder_on_random_signals_gives_a_valid_image(samples, stereo):
    encoded = encode_audio(samples, 44100, stereo=stereo)
    columns = samples.shape[0] // 441 + 1
    assert encoded.pixels.shape == (512, columns, 3)
    assert encoded.pixels.dtype == np.uint8
    assert np.isfinite(encoded.max_value) and encoded.max_value >= 0
    levels = encoded.pixels[:, :, 1:]
    if encoded.max_value == 0:
        assert (levels == 255).all()  # silence is white
    else:
        assert levels.min() == 0  # the loudest bin is full black
    if stereo:
        assert not encoded.pixels[:, :, 0].any()
    else:
        assert np.array_equal(encoded.pixels[:, :, 0], encoded.pixels[:, :, 2])


@settings(max_examples=15, deadline=None)
@given(gain=st.floats(1e-4, 1.0), frequency=st.floats(50, 9000))
def test_mel_amplitudes_scale_linearly_and_peak_at_the_tone(gain, frequency):
    t = np.arange(8820) / 44100
    tone = np.sin(2 * np.pi * frequency * t).astype(np.float32)
    mel = mel_amplitudes(tone * np.float32(gain))
    reference = mel_amplitudes(tone)
    assert mel.shape == (1, 512, 21)
    np.testing.assert_allclose(mel, reference * gain, rtol=1e-3, atol=reference.max() * gain * 1e-5)
    peak_bin = int(np.argmax(reference[0, :, 10]))
    from engine.codec.mel import filter_corners

    centre = filter_corners(DEFAULT_PARAMS)[peak_bin + 1]
    assert abs(centre - frequency) < max(30.0, 0.02 * frequency)


@pytest.mark.parametrize("params", [DEFAULT_PARAMS, SpectrogramParams(sample_rate=22050, num_bins=128, min_hz=50,
                                                                      max_hz=8000)])
def test_filterbank_is_torchaudios_triangles_to_the_bit(params):
    """The banded filterbank (built from the two filters over each bin, not from a dense matrix) holds
    exactly the weights of torchaudio's formula evaluated everywhere."""
    from engine.codec.mel import analysis_filterbank, analysis_freqs, filter_corners, triangles

    dense = triangles(analysis_freqs(params), filter_corners(params))
    used = int(np.flatnonzero(dense.any(axis=1))[-1]) + 1
    bank = analysis_filterbank(params)
    assert bank.shape == (params.num_bins, used)
    np.testing.assert_array_equal(bank.to_dense(), dense[:used].T.astype(np.float32))
