"""The decoder: quality on the shared clips (sc_mel), exact lengths, time stretch, stereo, edge cases,
the resampler, and the cost of a fresh process's first decode."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from engine.codec import (
    DEFAULT_PARAMS,
    DecodeSettings,
    Quality,
    decode_image,
    encode_audio,
    mel_amplitudes,
    natural_length,
    sc_mel,
)
from engine.codec.resample import resample_by
from engine.errors import CancelledError, InvalidInputError

CLIPS = ("drums", "piano", "rock", "speech")
RIFFUSION_TODAY_DB = -19.7  # riffusion + today's torchaudio on these four clips (the figure)
PEAK = 10 ** (-1 / 20)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return {clip: np.asarray(Image.open(DATA / "golden" / f"{clip}.riffusion.png")) for clip in CLIPS}


@pytest.fixture(scope="module")
def scores(golden) -> dict[str, dict[str, float]]:
    """sc_mel of every quality level on every clip (decoded once for the module)."""
    return {level: {clip: sc_mel(image, decode_image(image, quality=level)) for clip, image in golden.items()}
            for level in ("draft", "standard", "high")}


def tone_image(frequency: float, seconds: float = 1.0, stereo_partner: float | None = None) -> np.ndarray:
    t = np.arange(int(seconds * 44100)) / 44100
    left = 0.5 * np.sin(2 * np.pi * frequency * t)
    if stereo_partner is None:
        return encode_audio(left.astype(np.float32), 44100).pixels
    right = 0.5 * np.sin(2 * np.pi * stereo_partner * t)
    return encode_audio(np.stack([left, right], axis=1).astype(np.float32), 44100, stereo=True).pixels


def dominant_frequency(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0])))
    return float(np.argmax(spectrum) * 44100 / audio.shape[0])


def test_standard_beats_riffusion_on_the_shared_clips(scores):
    """The issue's bar is riffusion's -19.7 dB; we measure ~-26 dB, so regressions show long before."""
    standard = scores["standard"]
    assert np.mean(list(standard.values())) <= min(RIFFUSION_TODAY_DB, -24.0)
    assert max(standard.values()) <= -21.0, standard  # no clip left behind


def test_high_is_at_least_2_db_better_than_standard(scores):
    assert np.mean(list(scores["high"].values())) <= np.mean(list(scores["standard"].values())) - 2.0
    assert np.mean(list(scores["high"].values())) <= -30.0


def test_draft_is_still_better_than_riffusion(scores):
    assert np.mean(list(scores["draft"].values())) <= RIFFUSION_TODAY_DB


def test_round_trip_of_the_shared_clips_sounds_like_the_original(golden):
    """Decoded audio has the original's spectrogram: its mel amplitudes correlate with the source's."""
    for clip in ("drums", "speech"):
        original, _ = soundfile.read(DATA / "audio" / f"{clip}.wav", dtype="float32")
        decoded = decode_image(golden[clip])
        assert decoded.shape == (original.shape[0], 1)
        ours = mel_amplitudes(decoded[:, 0]).ravel() ** 0.25
        theirs = mel_amplitudes(original).ravel() ** 0.25
        assert np.corrcoef(ours, theirs)[0, 1] > 0.95, clip


def test_output_is_float32_peak_normalised_with_headroom_and_the_natural_length(golden):
    audio = decode_image(golden["rock"], quality="draft")
    assert audio.dtype == np.float32
    assert audio.shape == (natural_length(513), 1) == (512 * 441, 1)
    assert np.isfinite(audio).all()
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)


@pytest.mark.parametrize("num_samples", [112896, 150001, 225792, 333333, 451584])
def test_decodes_to_exactly_the_requested_number_of_samples(golden, num_samples):
    audio = decode_image(golden["piano"], quality="draft", num_samples=num_samples)
    assert audio.shape == (num_samples, 1)
    assert np.isfinite(audio).all() and np.max(np.abs(audio)) <= PEAK * (1 + 1e-5)


@pytest.mark.parametrize("stretch", [0.5, 0.77, 1.6, 2.0])
def test_time_stretch_keeps_pitch_and_spreads_the_image_over_the_new_length(stretch):
    image = tone_image(1000.0, seconds=1.0)
    num_samples = round(natural_length(image.shape[1]) * stretch)
    audio = decode_image(image, quality="draft", num_samples=num_samples)[:, 0]
    assert audio.shape == (num_samples,)
    assert dominant_frequency(audio) == pytest.approx(1000.0, abs=8.0)
    # The tone fills the whole output: no silent tail or head.
    quarter = num_samples // 4
    rms = [np.sqrt(np.mean(audio[i * quarter:(i + 1) * quarter] ** 2)) for i in range(4)]
    assert min(rms) > 0.5 * max(rms)


def test_time_stretch_places_events_in_proportion():
    """A click at 25% of the image lands at 25% of a stretched decode."""
    samples = np.zeros(88200, dtype=np.float32)
    samples[22050:22100] = 0.9
    image = encode_audio(samples, 44100).pixels
    for stretch in (0.5, 1.0, 1.7):
        num_samples = round(natural_length(image.shape[1]) * stretch)
        audio = decode_image(image, quality="draft", num_samples=num_samples)[:, 0]
        envelope = np.convolve(audio ** 2, np.ones(441), mode="same")
        assert np.argmax(envelope) / num_samples == pytest.approx(0.25, abs=0.01), stretch


def test_any_width_decodes_and_a_wide_image_is_as_good_as_a_narrow_one():
    rng = np.random.default_rng(7)
    t = np.arange(int(7.68 * 44100)) / 44100
    notes = 220 * 2 ** (rng.integers(0, 12, 16) / 12)
    signal = np.sin(2 * np.pi * np.repeat(notes, t.size // 16 + 1)[: t.size] * t) * 0.3
    signal = signal.astype(np.float32) + 0.01 * rng.standard_normal(t.size).astype(np.float32)
    image = encode_audio(signal, 44100).pixels
    assert image.shape[1] == 769
    wide = decode_image(image, quality="draft")
    assert wide.shape == (768 * 441, 1)
    assert sc_mel(image, wide) < -15
    narrow = image[:, :257]
    assert sc_mel(narrow, decode_image(narrow, quality="draft")) < -15


def test_stereo_image_decodes_to_two_channels_with_each_sides_content():
    image = tone_image(440.0, stereo_partner=1500.0)
    assert not image[:, :, 0].any()
    audio = decode_image(image, quality="draft")
    assert audio.shape == (natural_length(image.shape[1]), 2)
    assert dominant_frequency(audio[:, 0]) == pytest.approx(440.0, abs=6)
    assert dominant_frequency(audio[:, 1]) == pytest.approx(1500.0, abs=6)
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)
    assert sc_mel(image, audio) < -15


def test_stereo_can_be_forced_off_and_grey_images_decode(golden):
    grey = golden["drums"][:, :, 0]
    audio = decode_image(grey, quality="draft")
    assert audio.shape[1] == 1
    np.testing.assert_array_equal(audio, decode_image(golden["drums"], quality="draft", stereo=False))


def test_silent_image_decodes_to_silence():
    white = np.full((512, 100, 3), 255, dtype=np.uint8)
    audio = decode_image(white, quality="high", num_samples=50000)
    assert audio.shape == (50000, 1)
    assert not audio.any()


def test_nearly_silent_image_gives_finite_audio():
    image = np.full((512, 64, 3), 255, dtype=np.uint8)
    image[500, 30] = 254
    audio = decode_image(image)
    assert np.isfinite(audio).all()
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, rel=1e-5)


def test_progress_is_reported_and_cancellation_stops_the_decode(golden):
    calls = []
    decode_image(golden["piano"], quality="standard", progress=lambda done, total: calls.append((done, total)))
    iterations = Quality.STANDARD.settings.total_iterations
    assert calls == [(i, iterations) for i in range(1, iterations + 1)]

    polls = []

    def cancel_on_third_poll() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(CancelledError):
        decode_image(golden["piano"], quality="standard", should_cancel=cancel_on_third_poll)
    assert len(polls) == 3


def test_quality_levels_and_settings_serialise():
    for level in Quality:
        settings = level.settings
        assert DecodeSettings.from_dict(settings.to_dict()) == settings
        assert Quality.parse(level.value) is level
    with pytest.raises(InvalidInputError, match="unknown quality"):
        Quality.parse("ultra")
    custom = DecodeSettings(iterations=0, phase_init="frame", momentum=0.0)
    image = tone_image(300.0, seconds=0.5)
    assert decode_image(image, quality=custom).shape == (natural_length(image.shape[1]), 1)


@pytest.mark.parametrize(("image", "message"), [
    (np.zeros((300, 100, 3), np.uint8), "300 pixels high"),
    (np.zeros((512, 1, 3), np.uint8), "at least 2"),
    (np.zeros((512, 100, 3), np.float32), "uint8"),
    (np.zeros((512, 100, 2), np.uint8), "channels"),
    (np.zeros(512, np.uint8), "pixels high"),
])
def test_unusable_images_are_rejected_with_a_clear_message(image, message):
    with pytest.raises(InvalidInputError, match=message):
        decode_image(image)


@pytest.mark.parametrize("num_samples", [1000, 10**7, 2.5])
def test_lengths_outside_half_to_double_are_rejected(golden, num_samples):
    with pytest.raises(InvalidInputError, match="samples"):
        decode_image(golden["rock"], num_samples=num_samples)


def test_sc_mel_is_near_the_quantisation_floor_for_the_original_audio(golden):
    original, _ = soundfile.read(DATA / "audio" / "piano.wav", dtype="float32")
    assert sc_mel(golden["piano"], original) < -35
    assert sc_mel(golden["piano"], np.zeros_like(original)) == 0.0
    noise = np.random.default_rng(0).standard_normal(original.shape[0]).astype(np.float32)
    assert sc_mel(golden["piano"], noise) > -5
    assert DEFAULT_PARAMS.num_bins == golden["piano"].shape[0]


def test_stereo_image_with_one_silent_side_keeps_that_side_silent():
    t = np.arange(44100) / 44100
    left = (0.5 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    image = encode_audio(np.stack([left, np.zeros_like(left)], axis=1), 44100, stereo=True).pixels
    audio = decode_image(image, quality="draft")
    assert audio.shape[1] == 2 and np.isfinite(audio).all()
    assert np.max(np.abs(audio[:, 0])) == pytest.approx(PEAK, rel=1e-5)
    assert np.max(np.abs(audio[:, 1])) < 1e-3


@settings(max_examples=12, deadline=None)
@given(image=hnp.arrays(np.uint8, st.tuples(st.just(512), st.integers(2, 40), st.sampled_from([1, 3]))),
       stretch=st.floats(0.5, 2.0), quality=st.sampled_from(["draft", "standard"]))
def test_any_image_decodes_to_finite_audio_of_the_requested_length(image, stretch, quality):
    num_samples = max(1, round(natural_length(image.shape[1]) * stretch))
    if not 0.5 * natural_length(image.shape[1]) <= num_samples <= 2 * natural_length(image.shape[1]):
        return
    audio = decode_image(image, quality=quality, num_samples=num_samples)
    assert audio.shape == (num_samples, 1) and audio.dtype == np.float32
    assert np.isfinite(audio).all()
    assert np.max(np.abs(audio)) <= PEAK * (1 + 1e-5)


@pytest.mark.parametrize(("up", "down", "shape"), [
    (7, 4, (143_000,)),  # the decoder's internal 25.2 kHz -> 44.1 kHz
    (147, 160, (48_000, 2)),  # a 48 kHz file in
    (160, 147, (44_100, 1)),
    (1, 2, (1_001,)),
    (2, 1, (999, 2)),
    (441, 80, (8_000,)),  # an 8 kHz file in
    (3, 7, (5,)),  # shorter than the filter
])
def test_resampler_is_scipys_resample_poly(up, down, shape):
    """Our numpy polyphase resampler gives scipy.signal.resample_poly's output (its default filter,
    zero padding), without importing scipy.signal."""
    import scipy.signal

    samples = np.random.default_rng(up * 1000 + down).standard_normal(shape).astype(np.float32)
    expected = scipy.signal.resample_poly(samples, up, down, axis=0).astype(np.float32)
    ours = resample_by(samples, up, down)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * float(np.max(np.abs(expected))))


# Times a fresh interpreter's first decode and then warm ones, and lists the scipy modules decoding needed.
FRESH_PROCESS_DECODES = """
import json, sys, time
import numpy as np
from PIL import Image
from engine.codec import decode_image

image = np.asarray(Image.open(sys.argv[1]))
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    decode_image(image)
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "modules": sorted(name for name in sys.modules if name.startswith("scipy"))}))
"""
FIRST_DECODE_MAX_RATIO = 1.5  # measured ~1.1; was ~2.6-3.5 with the filterbank and scipy.signal built on first use
WARM_DECODES = 3


def decode_in_fresh_process(image_path, cwd, decodes: int = 1 + WARM_DECODES) -> dict:
    """{"times": seconds of each default decode of the image, first one first, "modules": scipy's}.

    Run in `cwd` (an empty folder), so the interpreter imports the installed riffstudio.
    """
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS_DECODES, str(image_path), str(decodes)],
                            cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def first_to_warm_ratio(times: list[float]) -> float:
    return times[0] / statistics.median(times[1:])


@pytest.fixture(scope="module")
def fresh_process_decodes(tmp_path_factory) -> dict:
    return decode_in_fresh_process(DATA / "golden" / "piano.riffusion.png", tmp_path_factory.mktemp("fresh"))


def test_first_decode_in_a_fresh_process_costs_about_what_a_warm_one_does(fresh_process_decodes, tmp_path):
    """A command, the engine's first job and each batch item in a new process pay the first decode.

    Everything a decode precomputes (filterbanks, resampling filter) is cheap to build, so the first
    decode of a 513-column image is within 1.5x the median of the warm ones after it. A ratio, so it
    holds on fast and slow CPUs alike; a busy 2-core machine can spoil one process, so a failing
    ratio is re-measured in up to two more fresh processes.
    """
    ratios = [first_to_warm_ratio(fresh_process_decodes["times"])]
    while ratios[-1] > FIRST_DECODE_MAX_RATIO and len(ratios) < 3:
        again = decode_in_fresh_process(DATA / "golden" / "piano.riffusion.png", tmp_path)
        ratios.append(first_to_warm_ratio(again["times"]))
    assert min(ratios) <= FIRST_DECODE_MAX_RATIO, ratios


def test_decoding_imports_no_scipy(fresh_process_decodes):
    """Importing scipy.signal (with the scipy.stats it pulls in) took 0.6-1 s, more than a decode;
    scipy.fft and scipy.sparse ~0.2 s each (scipy's array-API layer, scipy.special), a fifth of a cold
    `codec decode`. The decoder uses scipy's FFT module directly and numpy for the rest."""
    assert fresh_process_decodes["modules"] == []
