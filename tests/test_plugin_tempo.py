"""Tempo and beat on real and synthetic loops, through `riffstudio loop`: the tempo found, and the output's
hits on the target grid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import DATA
from plugin_audio import RATE, beat_deviations, drum_loop, synth_arpeggio, synth_pad

from engine.errors import InvalidInputError
from plugin.tempo import MAX_BPM, MIN_BPM, estimate_tempo, octave_relation, onset_envelope, pitch_flux
from ui.cli.main import main

SYNTHETIC_BPMS = [80, 87, 93, 100, 110, 117, 120, 128, 135, 140, 150, 160]


@pytest.mark.parametrize("bpm", SYNTHETIC_BPMS)
def test_tempo_of_synthetic_drum_loops_within_one_percent_or_an_octave(bpm):
    audio, _ = drum_loop(bpm, seconds=6.0)
    free = estimate_tempo(onset_envelope(audio, RATE))
    assert octave_relation(free.bpm, bpm) is not None, free  # unguided: the right tempo or an exact octave
    assert free.octave == 1.0 and free.has_beat
    guided = estimate_tempo(onset_envelope(audio, RATE), target_bpm=bpm)
    assert abs(guided.bpm / bpm - 1) < 0.01  # with the session tempo, the octave is settled
    assert abs(guided.phase_s - 0.1) < 0.005  # the first hit is at 100 ms


def test_no_beat_in_a_pad_or_noise():
    t = np.arange(5 * RATE) / RATE
    pad = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) * (1 + 0.2 * np.sin(2 * np.pi * 0.3 * t))
    noise = np.random.default_rng(1).standard_normal(5 * RATE)
    for audio in (pad, noise):
        assert not estimate_tempo(onset_envelope(audio.astype(np.float32), RATE)).has_beat


def _loop(tmp_path: Path, source: Path, bpm: float, *extra: str, bars: str = "2") -> tuple[np.ndarray, dict, Path]:
    out = tmp_path / f"out-{bpm:g}.wav"
    assert main(["loop", str(source), "--bpm", f"{bpm:g}", "--bars", bars, "--out", str(out), *extra]) == 0
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == RATE
    return audio, json.loads(out.with_suffix(".json").read_text()), out


@pytest.mark.slow
@pytest.mark.parametrize(("source_bpm", "target_bpm"), [(80, 80), (93, 100), (117, 110), (128, 128), (140, 150),
                                                        (160, 160)])
def test_loop_puts_synthetic_drums_on_the_grid(tmp_path, source_bpm, target_bpm):
    audio, _ = drum_loop(source_bpm, seconds=6.0)
    source = tmp_path / "drums.wav"
    soundfile.write(source, audio, RATE)
    out, sidecar, _ = _loop(tmp_path, source, target_bpm)
    fit = sidecar["fit"]
    assert fit["mode"] == "beat"
    assert octave_relation(fit["tempo_found"], source_bpm) == 1.0
    assert out.shape[0] == round(8 * 60 / target_bpm * RATE)
    assert fit["stretch"] == pytest.approx(source_bpm / target_bpm, rel=0.01)
    # Every 8th note of the target grid has its hit (the source has one on every 8th), nearly all within
    # 10 ms. The stragglers are the codec's: the pre-echo of a stretched decode starts a hit up to ~35 ms
    # early, and Griffin-Lim's ripples in a decoded noise decay can outshout a soft hat.
    deviation = np.abs(beat_deviations(out, RATE, 2 * target_bpm, window_s=0.045))
    assert len(deviation) == 16, np.round(deviation * 1000, 1)
    assert np.median(deviation) < 0.005 and np.mean(deviation < 0.010) >= 0.75, np.round(deviation * 1000, 1)
    assert np.max(deviation) < 0.050, np.round(deviation * 1000, 1)
    assert abs(out[0] - out[-1]) < np.median(np.abs(np.diff(out)))  # the seam


REAL = [("drums", 100), ("piano", 120), ("rock", 95)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "bpm"), REAL)
def test_loop_puts_real_clips_on_the_grid(tmp_path, name, bpm):
    for target in (bpm, round(bpm * 1.08, 1)):
        out, sidecar, _ = _loop(tmp_path, DATA / "audio" / f"{name}.wav", target)
        fit = sidecar["fit"]
        assert fit["mode"] == "beat" and abs(fit["tempo_found"] / bpm - 1) < 0.01, fit
        assert out.shape[0] == round(8 * 60 / target * RATE) == sidecar["audio"]["samples"]
        deviation = np.abs(beat_deviations(out, RATE, target))
        assert len(deviation) >= 6, deviation  # a hit on (nearly) every beat
        # Played music: most beats within 10 ms (the drummer's own timing and soft piano attacks spread the rest).
        assert np.median(deviation) < 0.010 and np.mean(deviation < 0.010) >= 0.6, np.round(deviation * 1000, 1)
        assert abs(out[0] - out[-1]) < np.median(np.abs(np.diff(out)))


def test_loop_command_in_a_fresh_interpreter_with_a_spectrogram_image(tmp_path, run_cli):
    from engine.codec import encode_audio
    from engine.codec.audio_io import load_for_encoding
    from engine.codec.image_file import write_spectrogram_image

    image = tmp_path / "drums.png"
    write_spectrogram_image(image, encode_audio(load_for_encoding(DATA / "audio" / "drums.wav"), RATE))
    result = run_cli("loop", image, "--bpm", "100", "--bars", "1", "--out", tmp_path / "one bar.flac",
                     "--rate", "48000")
    assert result.returncode == 0, result.stderr
    assert "tempo found 100.0" in result.stdout and ", no key," in result.stdout  # drums: no key, said so
    info = soundfile.info(tmp_path / "one bar.flac")
    assert info.frames == round(4 * 60 / 100 * 48000) and info.samplerate == 48000 and info.format == "FLAC"


def test_a_pad_is_fitted_by_length_and_says_so(tmp_path):
    t = np.arange(6 * RATE) / RATE
    pad = (sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) * 0.2).astype(np.float32)
    source = tmp_path / "pad.wav"
    soundfile.write(source, pad, RATE)
    out, sidecar, _ = _loop(tmp_path, source, 120, bars="1")
    assert sidecar["fit"]["mode"] == "length" and "no beat" in sidecar["fit"]["reason"]
    assert sidecar["fit"]["tempo_found"] is None
    assert out.shape[0] == 88200
    drums = tmp_path / "drums.wav"
    soundfile.write(drums, drum_loop(120)[0], RATE)
    _, forced, _ = _loop(tmp_path, drums, 120, "--fit", "length", bars="1")
    assert forced["fit"]["mode"] == "length" and "asked for" in forced["fit"]["reason"]


def test_bad_grid_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    source = DATA / "audio" / "drums.wav"
    for args in (["--bpm", "fast"], ["--bpm", "100", "--meter", "4"], ["--bpm", "100", "--bars", "0"],
                 ["--bpm", "100", "--bit-depth", "32f", "--out", str(tmp_path / "x.flac")],
                 ["--bpm", "100", "--out", str(tmp_path / "x.ogg")]):
        out = [] if "--out" in args else ["--out", str(tmp_path / "x.wav")]
        assert main(["loop", str(source), *args, *out]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_bpm_link_without_the_extra_asks_for_a_number(tmp_path, capsys):
    try:
        import aalink  # noqa: F401

        pytest.skip("aalink is installed here; the no-extra message cannot be shown")
    except ImportError:
        pass
    assert main(["loop", str(DATA / "audio" / "drums.wav"), "--bpm", "link", "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert "riffstudio[link]" in err and "--bpm 120" in err and err.count("\n") == 1


class _LinkStandIn:
    """Stands in for aalink.Link (a third-party binding that would join the LAN): enabled, num_peers, tempo."""

    def __init__(self, peers: int, tempo: float) -> None:
        self.enabled = False
        self._peers, self._tempo = peers, tempo

    def __call__(self, bpm: float):
        return self

    @property
    def num_peers(self) -> int:
        return self._peers if self.enabled else 0

    @property
    def tempo(self) -> float:
        return self._tempo


def test_link_tempo_from_peers_and_one_line_without_peers():
    from plugin.link import session_tempo

    assert session_tempo(0.5, link_factory=_LinkStandIn(1, 123.5)) == 123.5
    alone = _LinkStandIn(0, 120.0)
    with pytest.raises(InvalidInputError, match=r"no Ableton Link peers.*--bpm 120"):
        session_tempo(0.2, link_factory=alone)
    assert alone.enabled is False  # left the session


def _fitted_note_offsets(audio: np.ndarray, notes: list[float], session_bpm: float,
                         meter: str = "4/4") -> tuple[dict, np.ndarray]:
    """Fit `audio` to 2 bars at `session_bpm` as `riffstudio loop` does (the file's image, the file's audio for the
    analysis): the fit report, and each source note's distance (s) to the session's 16th grid in the loop."""
    from engine.codec import DEFAULT_PARAMS, encode_audio
    from plugin.fit import Grid, fit_to_grid

    image = encode_audio(audio[:, None], RATE, DEFAULT_PARAMS).pixels
    grid = Grid.parse(bpm=session_bpm, bars=2, meter=meter)
    fitted = fit_to_grid(image, grid, analysis_audio=audio[:, None], analysis_rate=RATE, quality="draft")
    report = fitted.report
    span = fitted.audio.shape[0] / report.repeats / RATE / report.stretch
    inside = np.array([t for t in notes if report.start_s - 0.001 <= t < report.start_s + span])
    placed = (inside - report.start_s) * report.stretch
    sixteenth = 60.0 / session_bpm / 4
    return report.to_dict(), np.abs(placed - np.round(placed / sixteenth) * sixteenth)


@pytest.mark.parametrize("session_bpm", [120, 140])
def test_a_128_bpm_synth_arpeggio_of_16ths_gets_its_beat_and_lands_on_the_grid(session_bpm):
    audio, notes = synth_arpeggio(128)
    found = estimate_tempo(onset_envelope(audio, RATE), target_bpm=session_bpm)
    assert found.has_beat and abs(found.bpm / 128 - 1) < 0.04, found
    report, offsets = _fitted_note_offsets(audio, notes, session_bpm)
    assert report["mode"] == "beat", report["reason"]
    assert offsets.size >= 16 and np.median(offsets) < 0.012, np.round(offsets * 1000, 1)


def test_a_beatless_pad_with_uneven_chord_changes_gets_no_beat():
    for seed in range(4):
        found = estimate_tempo(onset_envelope(synth_pad(seed=seed), RATE), target_bpm=120)
        assert not found.has_beat, (seed, found)


def test_the_pitch_flux_peaks_with_the_broadband_flux():
    """Both fluxes place a note at the same time (within 8 ms), so their sum places the beat: the pitch flux's
    46 ms frame used to peak 11-15 ms before the broadband flux's, pulling the grid early where it carried
    the onset (a harp through the codec, a legato line)."""
    t = np.arange(3 * RATE) / RATE
    audio = np.zeros_like(t)
    starts = 0.2 + 0.25 * np.arange(10)
    for k, start in enumerate(starts):  # piano-like notes of an arpeggio, 5 ms attacks, each held to the next
        f = 220 * 2 ** ((0, 4, 7, 12, 7, 4, 0, 4, 7, 12)[k] / 12)
        inside = (t >= start) & (t < start + 0.25)
        since = t[inside] - start
        audio[inside] += sum(np.sin(2 * np.pi * f * h * since) / h for h in range(1, 6)) * np.minimum(since / 0.005, 1)
    audio = (0.2 * audio).astype(np.float32)
    broadband = onset_envelope(audio, RATE, tonal=False)
    pitched = pitch_flux(audio, RATE, round(broadband.hop_s * RATE), broadband.strength.size)

    def peak(flux: np.ndarray, start: float) -> float:
        low, high = (round((start + d) / broadband.hop_s) for d in (-0.05, 0.05))
        return (low + int(np.argmax(flux[low:high]))) * broadband.hop_s

    lead = np.array([peak(broadband.strength, s) - peak(pitched, s) for s in starts[1:]])
    assert np.all(np.abs(lead) < 0.008), np.round(lead * 1000, 1)


needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None
                                      or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file(),
                                      reason="renders General MIDI clips: needs fluidsynth and fluid-soundfont-gm")


# Clips of tests/tempo_corpus.py's tuning part the detector before these changes got wrong: a 3/4 harmonica
# melody read at half its tempo, organ chord stabs called beatless (confidence 0.12), clarinet melodies whose
# grid drifted 70-135 ms over the clip (the least-squares fit pulled the period 1.5-2.8% off). Then a swung 3/4 violin
# melody (214) and electric piano chord stabs (216) at the right tempo but called beatless (confidence 0.13, 0.10):
# the beat's tempogram is weak where the 8ths between the beats come and go.
CORPUS_CLIPS = [206, 221, 262, 158, 214, 216]


@needs_fluidsynth
@pytest.mark.parametrize("seed", CORPUS_CLIPS)
def test_corpus_clips_get_their_tempo_and_land_on_the_grid(seed):
    from tempo_corpus import render_clip, tempo_clip

    clip = tempo_clip(seed)
    audio, notes = render_clip(clip)
    session = float(round(clip.bpm * (1.0, 0.94, 1.07)[seed % 3]))  # as the benchmark asks: 6% under, 7% over
    found = estimate_tempo(onset_envelope(audio, RATE), target_bpm=session)
    assert found.has_beat and abs(found.bpm / clip.bpm - 1) < 0.04, (clip, found)
    report, offsets = _fitted_note_offsets(audio, list(notes), session, clip.meter)
    assert report["mode"] == "beat", report["reason"]
    assert np.median(offsets) < 0.012, np.round(offsets * 1000, 1)


@needs_fluidsynth
def test_a_pad_whose_pulse_is_faster_than_any_beat_has_no_beat_and_a_tempo_in_range():
    """A pad (tests/tempo_corpus.py's clip 259) whose shimmer repeats at ~500 bpm with no slower level the
    autocorrelation supports: the detector before reported 502 bpm, above the 240 bpm it looks for."""
    from tempo_corpus import render_clip, tempo_clip

    audio, _ = render_clip(tempo_clip(259))
    found = estimate_tempo(onset_envelope(audio, RATE), target_bpm=120)
    assert not found.has_beat and MIN_BPM <= found.bpm <= MAX_BPM, found
