"""Generation on ONNX Runtime: parity with diffusers, reproducibility, cancel, progress, audio-to-audio."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.bundle import open_bundle
from engine.errors import CancelledError, InvalidInputError
from engine.generation.loop import init_image_from_audio, render_loop
from engine.generation.pipeline import LoopGenerator
from engine.generation.settings import GenerationSettings
from engine.schedulers import SCHEDULER_NAMES

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
def test_same_image_as_diffusers_from_the_same_latents(generator, diffusers_pipeline, name):
    import diffusers
    import torch

    assert set(DIFFUSERS_CLASSES) == set(SCHEDULER_NAMES)
    class_name, overrides = DIFFUSERS_CLASSES[name]
    pipe = diffusers_pipeline
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)
    latents = np.random.default_rng(3).standard_normal((1, 4, 64, WIDTH // 8), dtype=np.float32)
    settings = GenerationSettings(prompt="a jazz saxophone solo", negative_prompt="muffled", steps=6,
                                  guidance=7.5, scheduler=name, width=WIDTH, seed=11)
    ours = generator.generate(settings, initial_noise=latents, step_rng=TorchNoise(11))
    theirs = pipe(settings.prompt, negative_prompt=settings.negative_prompt, height=512, width=WIDTH,
                  num_inference_steps=settings.steps, guidance_scale=settings.guidance,
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
