"""Prompt -> spectrogram image -> loop, on ONNX Runtime sessions from a model bundle (no torch).

The maths is diffusers' StableDiffusionPipeline (and its img2img variant for audio-to-audio), step for
step, so that the same initial noise gives the same image: CLIP text embeddings for the prompt and the
negative prompt, classifier-free guidance `uncond + g * (cond - uncond)`, the scheduler's update, the
VAE decoder on `latents / scale_factor`, then `(x / 2 + 0.5)` clipped and rounded to 8 bits.

Sessions are created once per `LoopGenerator` and reused across jobs. The CFG pair runs as one batch-2
UNet call when the model has a dynamic batch (CPU bundles), as two calls otherwise (QNN's fixed shapes);
steps outside the settings' guidance interval run the conditional UNet alone (batch 1), unguided.
If the NPU fails mid-way, the same bundle's models carry on on the CPU and the result says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.bundle import Bundle
from engine.bundle.manifest import OPENED_AT_LOAD, TOKENIZER_NAME
from engine.errors import CancelledError, InvalidInputError, reason
from engine.generation.settings import GenerationSettings
from engine.sessions import SessionSettings, create_session
from engine.tokenizer import PromptTokenizer

LATENT_CHANNELS = 4
# Latent -> rough RGB for live previews without the VAE (SD 1.x latent space; a fixed linear map).
PREVIEW_MATRIX = np.array([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264],
                           [-0.184, -0.271, -0.473]], dtype=np.float32)


@dataclass(frozen=True)
class StepEvent:
    """Progress of one job: `stage` in ("text", "denoise", "decode", "audio"); `step` counts denoising steps."""

    stage: str
    step: int
    total: int
    fraction: float
    preview: np.ndarray | None = None  # uint8 [64, width/8, 3] during denoising, when asked for


Progress = Callable[[StepEvent], None]
ShouldCancel = Callable[[], bool]


@dataclass
class GenerationResult:
    settings: GenerationSettings  # with the seed actually used
    image: np.ndarray  # uint8 [512, width, 3], riffusion's layout
    latents: np.ndarray  # float32 [1, 4, 64, width/8], the final latents
    provider: str
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class LoopGenerator:
    """A bundle's models, opened once, turning settings into spectrogram images."""

    def __init__(self, bundle: Bundle, session_settings: SessionSettings | None = None, *,
                 session_options: Mapping[str, Any] | None = None) -> None:
        """`session_options`: the user's own SessionSettings options (e.g. the NPU's performance mode), which
        win over the bundle's; kept apart so that they survive a switch of provider."""
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.session_settings = session_settings or SessionSettings()
        self.session_options = dict(session_options or {})
        self.tokenizer = PromptTokenizer(bundle.checked_file(TOKENIZER_NAME))
        self._sessions: dict[str, object] = {}
        self.notes: list[str] = []
        start = time.perf_counter()
        for component in OPENED_AT_LOAD:
            self._session(component)
        self.load_seconds = time.perf_counter() - start

    @property
    def provider(self) -> str:
        return self.session_settings.provider

    # -- public jobs -------------------------------------------------------------------------------

    def generate(self, settings: GenerationSettings, *, progress: Progress | None = None,
                 should_cancel: ShouldCancel | None = None, initial_noise: np.ndarray | None = None,
                 init_image: np.ndarray | None = None, want_previews: bool = False,
                 step_rng: np.random.Generator | None = None) -> GenerationResult:
        """Text-to-image, or image-to-image when `init_image` (uint8 [512, width, 3]) is given.

        `initial_noise` replaces the seed's starting noise and `step_rng` the seed's stream for ancestral
        steps and VAE sampling: both exist to reproduce another tool's run exactly.
        """
        from engine.schedulers import make_scheduler

        settings = self.checked(settings)
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        context = self.encode_prompts(settings.prompt, settings.negative_prompt)
        timings["text_s"] = time.perf_counter() - clock
        _notify(progress, StepEvent("text", 0, settings.steps, 0.02))

        rng = step_rng or np.random.default_rng([settings.seed, 1])  # ancestral + VAE sampling: own stream
        noise = initial_noise if initial_noise is not None else self.initial_noise(settings.seed, settings.width)
        self._check_noise(noise, settings.width)
        # Strength 1 ignores the input loop entirely: diffusers' img2img would keep sqrt(alpha_bar_T) (7%) of it.
        if settings.strength >= 1.0:
            init_image = None
        strength = settings.strength if init_image is not None else 1.0
        scheduler = make_scheduler(settings.scheduler, self.manifest.scheduler, settings.steps, strength=strength)
        if init_image is not None:
            clock = time.perf_counter()
            init_latents = self.encode_image(init_image, rng)
            timings["vae_encode_s"] = time.perf_counter() - clock
            latents = scheduler.add_noise(init_latents, noise) if len(scheduler.timesteps) else init_latents
        else:
            latents = noise * np.float32(scheduler.init_noise_sigma)

        clock = time.perf_counter()
        latents = self.denoise(latents, context, scheduler, settings.guidance, rng, progress=progress,
                               should_cancel=should_cancel, want_previews=want_previews,
                               guidance_interval=settings.guidance_interval)
        timings["denoise_s"] = time.perf_counter() - clock
        timings["steps"] = float(len(scheduler.timesteps))
        timings["guided_steps"] = float(self.guided_steps(scheduler, settings.guidance,
                                                          settings.guidance_interval).sum())
        clock = time.perf_counter()
        image = self.decode_latents(latents)
        timings["vae_decode_s"] = time.perf_counter() - clock
        _notify(progress, StepEvent("decode", settings.steps, settings.steps, 0.95))
        notes, self.notes = self.notes, []
        return GenerationResult(settings=settings, image=image, latents=latents, provider=self.provider,
                                notes=notes, timings=timings)

    # -- the pieces --------------------------------------------------------------------------------

    def encode_prompts(self, prompt: str, negative_prompt: str) -> np.ndarray:
        """float32 [2, 77, hidden]: the negative (unconditional) embedding first, as diffusers orders them."""
        ids = self.tokenizer.encode([negative_prompt, prompt])
        if self._fixed_batch("text_encoder"):
            rows = [self._run("text_encoder", {"input_ids": ids[i : i + 1]})[0] for i in range(2)]
            return np.concatenate(rows)
        return self._run("text_encoder", {"input_ids": ids})[0]

    def initial_noise(self, seed: int, width: int) -> np.ndarray:
        """The seed's starting noise, float32 [1, 4, 64, width/8] (numpy's PCG64: same on every OS)."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((1, LATENT_CHANNELS, self.manifest.image_height // 8, width // 8),
                                   dtype=np.float32)

    def denoise(self, latents: np.ndarray, context: np.ndarray, scheduler, guidance: float,
                rng: np.random.Generator, *, progress: Progress | None = None,
                should_cancel: ShouldCancel | None = None, want_previews: bool = False,
                guidance_interval: tuple[float, float] | None = None) -> np.ndarray:
        """The scheduler's trajectory from `latents`. Steps outside `guidance_interval` (σ bounds, see
        engine/generation/guidance.py) run exactly as guidance 1 does: the conditional UNet alone."""
        total = len(scheduler.timesteps)
        guided = self.guided_steps(scheduler, guidance, guidance_interval)
        for index, timestep in enumerate(scheduler.timesteps):
            if should_cancel is not None and should_cancel():
                raise CancelledError(f"cancelled at step {index} of {total}")
            model_input = scheduler.scale_model_input(latents, index)
            noise = self.predict_noise(model_input, float(timestep), context, guidance if guided[index] else 1.0)
            latents = scheduler.step(noise, index, latents, rng=rng)
            preview = latent_preview(latents) if want_previews else None
            _notify(progress, StepEvent("denoise", index + 1, total, 0.05 + 0.85 * (index + 1) / total, preview))
        return latents

    def guided_steps(self, scheduler, guidance: float, interval: tuple[float, float] | None) -> np.ndarray:
        """bool per step: where classifier-free guidance runs (a batch-2 UNet call, or a pair)."""
        from engine.generation.guidance import guided_steps, step_noise_levels

        if guidance <= 1.0:
            return np.zeros(len(scheduler.timesteps), dtype=bool)
        return guided_steps(step_noise_levels(self.manifest.scheduler, scheduler.timesteps), interval)

    def predict_noise(self, sample: np.ndarray, timestep: float, context: np.ndarray, guidance: float) -> np.ndarray:
        """The UNet's noise prediction, classifier-free guided when guidance > 1 (as diffusers decides)."""
        if guidance <= 1.0:
            return self._unet(sample, timestep, context[1:])
        noise_uncond, noise_cond = self._unet_pair(sample, timestep, context)
        return noise_uncond + np.float32(guidance) * (noise_cond - noise_uncond)

    def decode_latents(self, latents: np.ndarray) -> np.ndarray:
        """VAE decode, then diffusers' post-processing to uint8 [512, width, 3]."""
        scaled = (latents / np.float32(self.manifest.latent_scale_factor)).astype(np.float32)
        decoded = self._run("vae_decoder", {"latent": scaled})[0][0]
        pixels = np.clip(decoded / 2 + 0.5, 0.0, 1.0).transpose(1, 2, 0)
        return np.round(pixels * 255).astype(np.uint8)

    def encode_image(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """VAE encode (a sample of the latent distribution, as diffusers' img2img does) times scale."""
        if image.ndim != 3 or image.shape[0] != self.manifest.image_height or image.shape[2] != 3:
            raise InvalidInputError(f"init image must be {self.manifest.image_height} px high RGB, "
                                    f"not {image.shape}")
        pixels = (image.astype(np.float32) / 255.0) * 2 - 1
        moments = self._run("vae_encoder", {"image": pixels.transpose(2, 0, 1)[None].copy()})[0]
        mean, logvar = np.split(moments, 2, axis=1)
        std = np.exp(0.5 * np.clip(logvar, -30.0, 20.0))
        sample = mean + std * rng.standard_normal(mean.shape, dtype=np.float32)
        return (sample * np.float32(self.manifest.latent_scale_factor)).astype(np.float32)

    # -- sessions ----------------------------------------------------------------------------------

    def _unet(self, sample: np.ndarray, timestep: float, context: np.ndarray) -> np.ndarray:
        batch = sample.shape[0]
        return self._run("unet", {"sample": sample, "timestep": np.full((batch,), timestep, np.float32),
                                  "encoder_hidden_states": context})[0]

    def _unet_pair(self, sample: np.ndarray, timestep: float, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._fixed_batch("unet"):
            return self._unet(sample, timestep, context[:1]), self._unet(sample, timestep, context[1:])
        noise = self._unet(np.concatenate([sample, sample]), timestep, context)
        return noise[:1], noise[1:]

    def _fixed_batch(self, component: str) -> bool:
        return self.manifest.components[component].inputs[0].shape[0] == 1

    def _session(self, component: str):
        if component not in self._sessions:
            self._sessions[component] = create_session(
                self.bundle.checked_file(self.manifest.components[component].file),
                self.bundle.session_settings(self.session_settings, self.session_options),
                cache_dir=self.bundle.cache_dir())
        return self._sessions[component]

    def _run(self, component: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session(component).run(None, feeds)
        except Exception as error:  # onnxruntime raises its own exception types
            if self.provider != "qnn":
                raise
            # The NPU failed mid-job: finish on the CPU with the same (quantised) models.
            self.notes.append(f"the NPU failed in {component} ({reason(error, 100)}); "
                              "finished on the CPU")
            self.session_settings = replace(self.session_settings, provider="cpu")
            self._sessions.clear()
            return self._session(component).run(None, feeds)

    def checked(self, settings: GenerationSettings) -> GenerationSettings:
        """Settings validated against this bundle's geometry, with a seed picked if none was given."""
        m = self.manifest
        if m.fixed_shapes and settings.width != m.image_width:
            raise InvalidInputError(f"this {m.precision} bundle makes {m.image_width} px wide images only, "
                                    f"not {settings.width}: use --width {m.image_width} or a CPU bundle")
        settings.validate(min_width=m.min_image_width, max_width=m.max_image_width, width_step=m.width_step)
        if settings.seed is None:
            settings = replace(settings, seed=int(np.random.default_rng().integers(0, 2**32 - 1)))
        return settings

    def _check_noise(self, noise: np.ndarray, width: int) -> None:
        expected = (1, LATENT_CHANNELS, self.manifest.image_height // 8, width // 8)
        if noise.shape != expected or noise.dtype != np.float32 or not np.all(np.isfinite(noise)):
            raise InvalidInputError(f"initial latents must be finite float32 {expected} for a {width} px image, "
                                    f"not {noise.dtype} {noise.shape}")


def latent_preview(latents: np.ndarray) -> np.ndarray:
    """A cheap look at the latents (no VAE): uint8 [64, width/8, 3], for the UI's live preview."""
    rgb = np.einsum("chw,cr->hwr", latents[0], PREVIEW_MATRIX)
    return np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)


def _notify(progress: Progress | None, event: StepEvent) -> None:
    if progress is not None:
        progress(event)
