"""Calibration inputs for static quantization, captured from real use of the model.

Ranges calibrated on random inputs miss what matters: the UNet sees noisy latents whose statistics
change along the denoising trajectory, and both the prompt's and the empty prompt's embeddings
(classifier-free guidance). So we run the torch model (export time: torch, diffusers and
transformers are imported lazily) along real trajectories for a built-in list of varied music
prompts, and keep every component's inputs at batch 1:

- text encoder: the tokenized prompts and the empty prompt;
- UNet: (sample, timestep, encoder_hidden_states) at `captures` timesteps spread over each
  trajectory, once with the prompt's and once with the empty prompt's embeddings;
- VAE decoder: trajectory ends divided by the VAE scale factor (0.18215);
- VAE encoder: the images the decoder makes of them.

The set is small (about 150 MB at SD 1.5 sizes) and can be saved, so that quantization can be
repeated without the torch run (an hour on two cores at full size). Memory during calibration is
bounded by `engine/bundle/ranges.py`, which streams.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import CancelledError, InvalidInputError, ModelBundleError
from engine.model_get.calibration import MUSIC_PROMPTS


@dataclass(frozen=True)
class CalibrationSettings:
    """How much of the model's real use to capture."""

    prompts: tuple[str, ...] = MUSIC_PROMPTS
    steps: int = 10
    captures: int = 4
    guidance_scale: float = 7.0
    width: int = 512
    seed: int = 0
    vae_samples: int = 8

    def __post_init__(self) -> None:
        if not self.prompts:
            raise InvalidInputError("calibration needs at least one prompt")
        if not 1 <= self.captures <= self.steps:
            raise InvalidInputError(f"captures must be 1..steps ({self.steps}), not {self.captures}")
        if self.width % 8 or self.width <= 0:
            raise InvalidInputError(f"width must be a positive multiple of 8, not {self.width}")
        if self.vae_samples < 0:
            raise InvalidInputError(f"vae_samples must be >= 0, not {self.vae_samples}")


Feeds = dict[str, np.ndarray]


@dataclass
class CalibrationSet:
    """Input feeds (batch 1, by ONNX input name) for each component."""

    text_encoder: list[Feeds] = field(default_factory=list)
    unet: list[Feeds] = field(default_factory=list)
    vae_decoder: list[Feeds] = field(default_factory=list)
    vae_encoder: list[Feeds] = field(default_factory=list)

    def for_component(self, component: str) -> list[Feeds]:
        if component not in {f.name for f in dataclasses.fields(self)}:
            raise InvalidInputError(f"no calibration data for component {component!r}")
        return getattr(self, component)

    def save(self, path: str | Path) -> None:
        """One .npz file (atomic), arrays named `<component>/<index>/<input>`."""
        from engine.atomic import atomic_path

        arrays = {f"{component}/{i}/{name}": value
                  for component in ("text_encoder", "unet", "vae_decoder", "vae_encoder")
                  for i, feeds in enumerate(self.for_component(component)) for name, value in feeds.items()}
        with atomic_path(path) as temp, temp.open("wb") as file:
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> CalibrationSet:
        result = cls()
        try:
            with np.load(path) as data:
                grouped: dict[tuple[str, int], Feeds] = {}
                for key in data.files:
                    component, index, name = key.split("/")
                    grouped.setdefault((component, int(index)), {})[name] = data[key]
        except (OSError, ValueError) as error:
            raise ModelBundleError(f"calibration data {path} is unreadable ({error}); capture it again") from error
        for (component, _), feeds in sorted(grouped.items()):
            result.for_component(component).append(feeds)
        return result


def tokenize(tokenizer: Any, prompts: list[str] | tuple[str, ...]) -> np.ndarray:
    """CLIP token ids, int32 [len(prompts), 77], padded and truncated as the pipeline does.

    `tokenizer` is the checkpoint's transformers CLIPTokenizer.
    """
    encoded = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="np")
    return encoded.input_ids.astype(np.int32)


def capture_calibration_set(checkpoint: Any, settings: CalibrationSettings = CalibrationSettings(), *,
                            progress: Callable[[int, int], None] | None = None,
                            cancelled: Callable[[], bool] | None = None) -> CalibrationSet:
    """Run the torch models along one guided trajectory per prompt, keeping every component's inputs.

    `checkpoint` is `engine.export.source.Checkpoint` (text_encoder, tokenizer, unet, vae,
    scheduler_config). `progress(done, total)` counts trajectories; `cancelled()` is polled between
    UNet calls.
    """
    import torch
    from diffusers import PNDMScheduler

    unet, vae = checkpoint.unet, checkpoint.vae
    # The bundle's scheduler (riffusion: PNDM without PRK steps); what matters here is a realistic
    # spread of noise levels, which every SD scheduler gives.
    scheduler = PNDMScheduler.from_config(checkpoint.scheduler_config)
    ids = tokenize(checkpoint.tokenizer, [*settings.prompts, ""])
    result = CalibrationSet(text_encoder=[{"input_ids": row[None]} for row in ids])
    generator = torch.Generator().manual_seed(settings.seed)
    capture_at = set(np.linspace(0, settings.steps - 1, settings.captures).round().astype(int).tolist())
    with torch.inference_mode():
        embeddings = checkpoint.text_encoder(torch.from_numpy(ids).long())[0]
        uncond = embeddings[-1:]
        for number, cond in enumerate(embeddings[:-1]):
            cond = cond[None]
            latents = _trajectory(unet, scheduler, cond, uncond, settings, generator, capture_at,
                                  result.unet, cancelled)
            if number < settings.vae_samples:
                latent = latents / vae.config.scaling_factor
                result.vae_decoder.append({"latent": latent.numpy().astype(np.float32)})
                image = vae.decode(latent, return_dict=False)[0].clamp(-1, 1)
                result.vae_encoder.append({"image": image.numpy().astype(np.float32)})
            if progress is not None:
                progress(number + 1, len(settings.prompts))
    return result


def _trajectory(unet, scheduler, cond, uncond, settings: CalibrationSettings, generator,
                capture_at: set[int], sink: list[Feeds], cancelled: Callable[[], bool] | None):
    """One classifier-free-guided denoising run; UNet inputs at the `capture_at` steps go to `sink`."""
    import torch

    scheduler.set_timesteps(settings.steps)
    shape = (1, unet.config.in_channels, 64, settings.width // 8)
    latents = torch.randn(shape, generator=generator) * scheduler.init_noise_sigma
    both = torch.cat([uncond, cond])
    for step, t in enumerate(scheduler.timesteps):
        if cancelled is not None and cancelled():
            raise CancelledError("calibration capture cancelled; nothing was written")
        sample = scheduler.scale_model_input(latents, t)
        if step in capture_at:
            timestep = np.array([float(t)], dtype=np.float32)
            for embedding in (cond, uncond):
                sink.append({"sample": sample.numpy().astype(np.float32), "timestep": timestep,
                             "encoder_hidden_states": embedding.numpy().astype(np.float32)})
        noise = unet(torch.cat([sample, sample]), t, encoder_hidden_states=both, return_dict=False)[0]
        noise_uncond, noise_cond = noise.chunk(2)
        guided = noise_uncond + settings.guidance_scale * (noise_cond - noise_uncond)
        latents = scheduler.step(guided, t, latents, return_dict=False)[0]
    return latents
