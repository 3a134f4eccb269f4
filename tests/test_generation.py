"""Generation on ONNX Runtime: parity with diffusers, reproducibility, cancel, progress, audio-to-audio."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from engine.bundle import open_bundle
from engine.errors import CancelledError, InvalidInputError
from engine.generation.loop import init_image_from_audio, render_loop
from engine.generation.pipeline import LoopGenerator
from engine.generation.settings import DEFAULT_GUIDANCE_INTERVAL, GenerationSettings
from engine.schedulers import SCHEDULER_NAMES, make_scheduler
from engine.schedulers.ays import ays_timesteps

pytestmark = pytest.mark.slow

WIDTH = 128  # 1.3 s of audio: the tiny UNet's attention grows with width squared
DIFFUSERS_CLASSES = {
    "pndm": ("PNDMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "dpmpp_2m_ays": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {"solver_order": 2, "solver_type": "bh2"}),
}


@pytest.fixture(scope="module")
def generator(fp32_bundle):
    return LoopGenerator(open_bundle(fp32_bundle))


@pytest.fixture(scope="module")
def diffusers_pipeline(tiny_sd_dir):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(tiny_sd_dir, safety_checker=None)


class TorchNoise:
    """Stands in for numpy's Generator with torch's, so ancestral steps draw what diffusers draws."""

    def __init__(self, seed: int) -> None:
        import torch

        self._generator = torch.Generator().manual_seed(seed)

    def standard_normal(self, shape, dtype=np.float32):
        import torch

        return torch.randn(shape, generator=self._generator).numpy().astype(dtype)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_same_image_as_diffusers_from_the_same_latents(generator, diffusers_pipeline, tiny_sd_dir, name):
    import diffusers
    import torch

    assert set(DIFFUSERS_CLASSES) == set(SCHEDULER_NAMES)
    class_name, overrides = DIFFUSERS_CLASSES[name]
    pipe = diffusers_pipeline
    # From the checkpoint's own config each time: the pipeline's scheduler still carries the previous
    # case's overrides (use_karras_sigmas=True after dpmpp_2m_karras), which from_config would keep.
    config = diffusers.PNDMScheduler.from_pretrained(tiny_sd_dir, subfolder="scheduler").config
    pipe.scheduler = getattr(diffusers, class_name).from_config(config, **overrides)
    latents = np.random.default_rng(3).standard_normal((1, 4, 64, WIDTH // 8), dtype=np.float32)
    settings = GenerationSettings(prompt="a jazz saxophone solo", negative_prompt="muffled", steps=6,
                                  guidance=7.5, scheduler=name, width=WIDTH, seed=11, guidance_interval=None)
    ours = generator.generate(settings, initial_noise=latents, step_rng=TorchNoise(11))
    # Align Your Steps is diffusers' custom `timesteps=` (NVIDIA's recipe); the others are a step count.
    schedule = ({"timesteps": ays_timesteps(settings.steps).tolist()} if name == "dpmpp_2m_ays"
                else {"num_inference_steps": settings.steps})
    theirs = pipe(settings.prompt, negative_prompt=settings.negative_prompt, height=512, width=WIDTH,
                  **schedule, guidance_scale=settings.guidance,
                  latents=torch.from_numpy(latents), generator=torch.Generator().manual_seed(11),
                  output_type="np").images[0]
    difference = np.abs(ours.image.astype(np.float64) - theirs * 255)
    assert difference.mean() < 1.0, f"{name}: mean abs pixel difference {difference.mean():.3f} levels"


def test_same_seed_same_loop_different_seed_different_loop(generator):
    settings = GenerationSettings(prompt="lofi piano", steps=3, width=WIDTH, seed=5, scheduler="euler_a")
    first = render_loop(generator, settings, num_samples=40000)
    second = render_loop(generator, settings, num_samples=40000)
    other = render_loop(generator, GenerationSettings(prompt="lofi piano", steps=3, width=WIDTH, seed=6,
                                                     scheduler="euler_a"), num_samples=40000)
    assert np.array_equal(first.image, second.image)
    assert np.array_equal(first.audio, second.audio)
    assert first.audio.shape == (40000, 1)
    assert not np.array_equal(first.image, other.image)


def test_a_progress_event_per_step_with_previews(generator):
    events = []
    generator.generate(GenerationSettings(prompt="drum loop", steps=4, width=WIDTH, seed=1),
                       progress=events.append, want_previews=True)
    steps = [e for e in events if e.stage == "denoise"]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    assert all(e.preview.shape == (64, WIDTH // 8, 3) and e.preview.dtype == np.uint8 for e in steps)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0


def test_cancel_stops_between_steps_within_a_second(generator):
    cancel_at = {}
    events = []

    def should_cancel() -> bool:
        if len(events) >= 2 and "time" not in cancel_at:
            cancel_at["time"] = time.perf_counter()
        return "time" in cancel_at

    with pytest.raises(CancelledError):
        generator.generate(GenerationSettings(prompt="drum loop", steps=20, width=WIDTH, seed=1),
                           progress=lambda e: events.append(e) if e.stage == "denoise" else None,
                           should_cancel=should_cancel)
    assert time.perf_counter() - cancel_at["time"] < 1.0
    assert len(events) == 2


def test_strength_zero_returns_the_input_and_one_ignores_it(generator, tmp_path):
    import soundfile

    from engine.codec.audio_io import write_audio

    rng = np.random.default_rng(0)
    clip_a = tmp_path / "a.wav"
    clip_b = tmp_path / "b.flac"
    write_audio(clip_a, 0.3 * np.sin(np.arange(30000) * 0.05)[:, None], 22050)  # another rate, short
    write_audio(clip_b, 0.2 * rng.standard_normal((300000, 2)), 44100)  # stereo, longer than the image
    assert soundfile.info(clip_a).samplerate == 22050

    def riff(path, strength):
        settings = GenerationSettings(prompt="guitar", steps=4, width=WIDTH, seed=2, init_audio=str(path),
                                      strength=strength, scheduler="ddim")
        return render_loop(generator, settings, num_samples=40000).image

    init = init_image_from_audio(str(clip_a), WIDTH)
    assert init.shape == (512, WIDTH, 3)
    round_trip = generator.decode_latents(generator.encode_image(init, np.random.default_rng([2, 1])))
    assert np.array_equal(riff(clip_a, 0.0), round_trip)
    plain = generator.generate(GenerationSettings(prompt="guitar", steps=4, width=WIDTH, seed=2, scheduler="ddim"))
    assert np.array_equal(riff(clip_a, 1.0), plain.image)
    assert np.array_equal(riff(clip_b, 1.0), plain.image)
    assert not np.array_equal(riff(clip_a, 0.5), riff(clip_b, 0.5))


def test_generate_command_writes_loop_image_and_sidecar_without_torch(fp32_bundle, tmp_path):
    out = tmp_path / "loop.wav"
    code = (
        "import sys\nfrom ui.cli.main import main\n"
        f"code = main(['generate', 'funky slap bass', '--model', {str(fp32_bundle)!r}, '--out', {str(out)!r}, "
        f"'--image', {str(tmp_path / 'loop.png')!r}, '--steps', '2', '--width', '{WIDTH}', '--seed', '9', "
        "'--quality', 'draft'])\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
        "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    sidecar = json.loads((tmp_path / "loop.json").read_text())
    assert sidecar["settings"]["seed"] == 9 and sidecar["settings"]["steps"] == 2
    assert sidecar["bundle"]["precision"] == "fp32" and sidecar["provider"] == "cpu"
    import soundfile

    info = soundfile.info(out)
    assert (info.samplerate, info.channels) == (44100, 1)
    assert (tmp_path / "loop.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.json", "loop.png", "loop.wav"]


@pytest.mark.parametrize("args, words", [
    (["   "], "the prompt is empty"),
    (["bass", "--steps", "0"], "steps must be"),
    (["bass", "--steps", "10000"], "steps must be"),
    (["bass", "--guidance", "-1"], "guidance must be"),
    (["bass", "--width", "500"], "multiple of 8"),
    (["bass", "--scheduler", "magic"], "unknown scheduler"),
    (["bass", "--scheduler", "dpmpp_2m_ays", "--steps", "1"], "dpmpp_2m_ays takes 2 to 400 steps"),
    (["bass", "--guidance-interval", "5,1"], "low bound 5.0 is above its high bound 1.0"),
    (["bass", "--guidance-interval=-1,1"], "bounds must be noise levels from 0 to 1000"),
    (["bass", "--guidance-interval", "fast"], "--guidance-interval takes LO,HI"),
])
def test_bad_settings_give_one_line_and_no_files(run_cli, fp32_bundle, tmp_path, args, words):
    out = tmp_path / "out" / "loop.wav"
    result = run_cli("generate", *args, "--model", fp32_bundle, "--out", out)
    assert result.returncode == InvalidInputError.exit_code
    assert result.stderr.strip().startswith("riffstudio:") and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_missing_bundle_and_unreadable_init_audio_are_refused(run_cli, fp32_bundle, tmp_path):
    out = tmp_path / "loop.wav"
    result = run_cli("generate", "bass", "--model", tmp_path / "nowhere", "--out", out)
    assert result.returncode != 0 and "no model bundle" in result.stderr
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    result = run_cli("generate", "bass", "--model", fp32_bundle, "--out", out, "--init-audio", broken,
                     "--width", str(WIDTH), "--steps", "1")
    assert result.returncode == InvalidInputError.exit_code and "cannot read broken.wav" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wav"]


def test_wrong_latents_file_is_refused(generator):
    with pytest.raises(InvalidInputError, match="initial latents must be"):
        generator.generate(GenerationSettings(prompt="x", steps=1, width=WIDTH, seed=1),
                           initial_noise=np.zeros((1, 4, 64, 8), np.float32))


def test_unwritable_audio_format_is_refused_before_generating(run_cli, fp32_bundle, tmp_path):
    result = run_cli("generate", "bass", "--model", fp32_bundle, "--out", tmp_path / "loop.mp3")
    assert result.returncode == InvalidInputError.exit_code
    assert "use a .wav, .flac, .aiff or .ogg file name" in result.stderr
    assert not any(tmp_path.iterdir())


# --- the guidance interval ---------------------------------------------------------------------------

GUIDED = dict(prompt="a jazz saxophone solo", negative_prompt="muffled", steps=6, guidance=7.5, width=64, seed=4)


def count_unet_batches(generator, monkeypatch) -> list[int]:
    """Record the batch of every UNet call the generator makes (2: a guided step, 1: an unguided one)."""
    batches: list[int] = []
    original = generator._unet

    def counting(sample, timestep, context):
        batches.append(sample.shape[0])
        return original(sample, timestep, context)

    monkeypatch.setattr(generator, "_unet", counting)
    return batches


@pytest.mark.parametrize("scheduler", ["dpmpp_2m_karras", "unipc"])
def test_guidance_interval_covering_every_step_is_exactly_full_guidance(generator, monkeypatch, scheduler):
    full = generator.generate(GenerationSettings(**GUIDED, scheduler=scheduler, guidance_interval=None))
    batches = count_unet_batches(generator, monkeypatch)
    covered = generator.generate(GenerationSettings(**GUIDED, scheduler=scheduler, guidance_interval=(0.0, 1000.0)))
    assert np.array_equal(covered.latents, full.latents) and np.array_equal(covered.image, full.image)
    assert batches == [2] * 6 and covered.timings["guided_steps"] == 6


@pytest.mark.parametrize("scheduler", ["dpmpp_2m_karras", "pndm"])
def test_empty_guidance_interval_is_exactly_the_unguided_result(generator, monkeypatch, scheduler):
    unguided = generator.generate(GenerationSettings(**{**GUIDED, "guidance": 1.0}, scheduler=scheduler))
    batches = count_unet_batches(generator, monkeypatch)
    empty = generator.generate(GenerationSettings(**GUIDED, scheduler=scheduler, guidance_interval=(3.0, 3.0)))
    assert np.array_equal(empty.latents, unguided.latents) and np.array_equal(empty.image, unguided.image)
    assert set(batches) == {1} and empty.timings["guided_steps"] == 0
    assert not np.array_equal(empty.image, generator.generate(GenerationSettings(**GUIDED, scheduler=scheduler)).image)


def test_unet_calls_follow_the_guidance_interval(generator, monkeypatch):
    """Steps whose noise level σ is in (low, high] run the batch-2 CFG call, the others one batch-1 call."""
    from engine.generation.guidance import step_noise_levels

    settings = GenerationSettings(**{**GUIDED, "steps": 10}, scheduler="dpmpp_2m_ays", guidance_interval=(0.5, 5.0))
    levels = step_noise_levels(generator.manifest.scheduler,
                               make_scheduler(settings.scheduler, generator.manifest.scheduler, 10).timesteps)
    expected = [2 if 0.5 < level <= 5.0 else 1 for level in levels]
    assert expected == [1, 1, 2, 2, 2, 2, 2, 2, 1, 1]  # σ 14.6, 6.5, 3.9 ... 0.65, 0.40, 0.15
    batches = count_unet_batches(generator, monkeypatch)
    result = generator.generate(settings)
    assert batches == expected and result.timings["guided_steps"] == 6
    # Audio-to-audio starts lower on the same σ scale: the interval keeps its meaning.
    batches.clear()
    generator.generate(replace(settings, strength=0.5), init_image=np.full((512, 64, 3), 128, np.uint8))
    assert batches == expected[5:]


def test_guidance_interval_is_recorded_in_the_sidecar_and_round_trips(generator):
    settings = GenerationSettings(**{**GUIDED, "steps": 2}, guidance_interval=(0.3, 5))
    loop = render_loop(generator, settings)
    record = json.loads(json.dumps(loop.record(generator)))
    assert record["settings"]["guidance_interval"] == [0.3, 5]
    again = GenerationSettings.from_dict(record["settings"])
    assert again == loop.result.settings and again.guidance_interval == (0.3, 5)
    assert GenerationSettings.from_dict({"prompt": "x"}).guidance_interval == DEFAULT_GUIDANCE_INTERVAL
    assert GenerationSettings.from_dict({"prompt": "x", "guidance_interval": None}).guidance_interval is None


@pytest.mark.parametrize(("interval", "words"), [
    ((5.0, 1.0), "low bound 5.0 is above its high bound 1.0"),
    ((-0.5, 2.0), "from 0 to 1000"),
    ((0.0, 1001.0), "from 0 to 1000"),
    ((0.0, float("inf")), "two noise levels"),
    ((0.0, float("nan")), "two noise levels"),
    ((1.0,), "two noise levels"),
    ("0.3,5", "two noise levels"),
    ((True, 2.0), "two noise levels"),
])
def test_bad_guidance_intervals_are_refused_in_one_line(interval, words):
    with pytest.raises(InvalidInputError, match=words) as raised:
        GenerationSettings(prompt="bass", guidance_interval=interval).validate()
    assert len(str(raised.value).splitlines()) == 1


def test_guidance_interval_on_the_command_line():
    from engine.generation.guidance import parse_guidance_interval

    assert parse_guidance_interval("0.3,5") == (0.3, 5.0)
    assert parse_guidance_interval(" 0 , 1000 ") == (0.0, 1000.0)
    for text in ("1", "1,2,3", "a,b", ""):
        with pytest.raises(InvalidInputError, match="--guidance-interval takes LO,HI"):
            parse_guidance_interval(text)


# --- speed presets -------------------------------------------------------------------------------------

def test_speed_presets_set_the_solve_and_keep_the_loop():
    from engine.generation.settings import DEFAULT_GUIDANCE_INTERVAL, DEFAULT_STEPS, DRAFT_STEPS, at_speed
    from engine.speeds import speed_of

    base = GenerationSettings(prompt="bass", seed=3, width=256, guidance=5.0, steps=40, quality="high",
                              guidance_interval=(0.3, 5.0))
    draft = at_speed(base, "draft").validate()
    # The draft solves the full run's ODE: the same solver and the same guidance interval, fewer steps.
    assert (draft.steps, draft.quality, draft.guidance_interval) == (DRAFT_STEPS, "draft", DEFAULT_GUIDANCE_INTERVAL)
    assert (draft.prompt, draft.seed, draft.width, draft.guidance) == ("bass", 3, 256, 5.0)
    full = at_speed(draft, "full")
    assert full == GenerationSettings(prompt="bass", seed=3, width=256, guidance=5.0)
    assert (speed_of(draft.to_dict()), speed_of(full.to_dict()), speed_of(base.to_dict())) == ("draft", "full", None)
    assert full.steps == DEFAULT_STEPS and speed_of(GenerationSettings(prompt="x").to_dict()) == "full"
    with pytest.raises(InvalidInputError, match="unknown speed 'turbo': use one of full, draft"):
        at_speed(base, "turbo")


def test_a_loop_read_back_from_json_still_knows_its_speed():
    """Sidecars, the library and the engine protocol carry the guidance interval as a JSON list."""
    from engine.generation.settings import at_speed
    from engine.speeds import speed_of

    for speed in ("draft", "full"):
        stored = json.loads(json.dumps(at_speed(GenerationSettings(prompt="bass", seed=3), speed).to_dict()))
        assert isinstance(stored["guidance_interval"], list)
        assert speed_of(stored) == speed
    stored["guidance_interval"] = [0.3, 1000.0]
    assert speed_of(stored) is None


def test_the_default_solve_guides_every_step_but_the_last(generator, monkeypatch):
    """The `full` speed: 7 steps, the last two (σ 0.13 and 0.03, below 0.28) one unguided batch-1 call each;
    the study that chose it (results/solvers-full-default.md) found their guidance changes nothing measurable."""
    from engine.generation.settings import DEFAULT_STEPS

    batches = count_unet_batches(generator, monkeypatch)
    result = generator.generate(GenerationSettings(prompt="bass", seed=1, width=64))
    assert batches == [2] * (DEFAULT_STEPS - 2) + [1, 1] and result.timings["guided_steps"] == DEFAULT_STEPS - 2
    batches.clear()
    guided = generator.generate(GenerationSettings(prompt="bass", seed=1, width=64, guidance_interval=None))
    assert batches == [2] * DEFAULT_STEPS and not np.array_equal(guided.latents, result.latents)


def test_generate_speed_draft_on_the_command_line_and_explicit_options_win(run_cli, fp32_bundle, tmp_path):
    from engine.speeds import SPEED_PRESETS

    for name, extra, expected in (("draft", [], SPEED_PRESETS["draft"]),
                                  ("override", ["--steps", "2", "--scheduler", "euler"],
                                   {**SPEED_PRESETS["draft"], "steps": 2, "scheduler": "euler"})):
        out = tmp_path / f"{name}.wav"
        result = run_cli("generate", "bass", "--model", fp32_bundle, "--out", out, "--width", str(WIDTH),
                         "--seed", "5", "--speed", "draft", *extra)
        assert result.returncode == 0, result.stderr
        settings = GenerationSettings.from_dict(json.loads(out.with_suffix(".json").read_text())["settings"])
        assert {key: getattr(settings, key) for key in expected} == expected and settings.seed == 5
