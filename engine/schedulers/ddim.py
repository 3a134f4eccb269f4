"""DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models"), deterministic (η = 0, as the SD
pipelines run it), as diffusers' `DDIMScheduler`.

From x_t with noise prediction ε, eq. 12 with σ_t = 0:

    x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)
    x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'}) ε,        t' = t - num_train_timesteps // num_steps

where ᾱ_{t'} for t' < 0 is 1 (`set_alpha_to_one`) or ᾱ_0. x̂_0 is clipped to ±clip_sample_range when the
config asks (`clip_sample`, diffusers' default true: riffusion's config sets it false).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.schedulers.noise import (
    TIMESTEP_SPACINGS,
    TrainingNoise,
    alpha_schedule,
    check_bool,
    check_choice,
    check_int,
    check_number,
)
from engine.schedulers.settings import SchedulerSettings


@dataclass(frozen=True)
class DDIMSettings(SchedulerSettings):
    """diffusers' `DDIMScheduler` config keys we read, with its defaults."""

    noise: TrainingNoise = field(default_factory=TrainingNoise)
    clip_sample: bool = True
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    prediction_type: str = "epsilon"
    thresholding: bool = False
    clip_sample_range: float = 1.0
    timestep_spacing: str = "leading"
    rescale_betas_zero_snr: bool = False

    def __post_init__(self) -> None:
        check_bool("clip_sample", self.clip_sample)
        check_bool("set_alpha_to_one", self.set_alpha_to_one)
        check_int("steps_offset", self.steps_offset, minimum=0)
        check_choice("prediction_type", self.prediction_type, ("epsilon", "v_prediction", "sample"), "ddim")
        check_choice("thresholding", self.thresholding, (False,), "ddim")
        check_number("clip_sample_range", self.clip_sample_range)
        check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        check_choice("rescale_betas_zero_snr", self.rescale_betas_zero_snr, (False,), "ddim")


def ddim_timesteps(settings: DDIMSettings, num_steps: int) -> np.ndarray:
    """The training timesteps visited, decreasing, int64."""
    train = settings.noise.num_train_timesteps
    if settings.timestep_spacing == "linspace":
        return np.linspace(0, train - 1, num_steps).round()[::-1].astype(np.int64)
    if settings.timestep_spacing == "leading":
        return (np.arange(num_steps) * (train // num_steps)).round()[::-1].astype(np.int64) + settings.steps_offset
    return np.round(np.arange(train, 0, -train / num_steps)).astype(np.int64) - 1


class DDIM:
    """Deterministic DDIM over `num_steps` steps, starting at step `begin` (audio-to-audio)."""

    ancestral = False

    def __init__(self, settings: DDIMSettings, num_steps: int, begin: int = 0) -> None:
        self.settings = settings
        self.num_steps = num_steps
        self.schedule = alpha_schedule(settings.noise, ddim_timesteps(settings, num_steps), num_steps, begin,
                                       settings.set_alpha_to_one, "ddim")
        self.alphas_cumprod, self.final_alpha_cumprod = self.schedule.alphas_cumprod, self.schedule.final_alpha_cumprod
        self.timesteps = self.schedule.timesteps.astype(np.float32)
        self.init_noise_sigma = 1.0

    def scale_model_input(self, sample: np.ndarray, step_index: int) -> np.ndarray:
        return np.asarray(sample, dtype=np.float32)

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(sample, dtype=np.float32)
        out = np.asarray(model_output, dtype=np.float32)
        t = int(self.schedule.timesteps[step_index])
        alpha, alpha_prev = self.schedule.alpha(t), self.schedule.alpha(t - self.schedule.stride)
        beta = 1 - alpha
        kind = self.settings.prediction_type
        if kind == "epsilon":
            x0, eps = (x - np.sqrt(beta) * out) / np.sqrt(alpha), out
        elif kind == "sample":
            x0 = out
            eps = (x - np.sqrt(alpha) * x0) / np.sqrt(beta)
        else:  # v_prediction: v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x0
            x0 = np.sqrt(alpha) * x - np.sqrt(beta) * out
            eps = np.sqrt(alpha) * out + np.sqrt(beta) * x
        if self.settings.clip_sample:
            limit = self.settings.clip_sample_range
            x0 = np.clip(x0, -limit, limit)
        return np.sqrt(alpha_prev) * x0 + np.sqrt(1 - alpha_prev) * eps

    def add_noise(self, original: np.ndarray, noise: np.ndarray, step_index: int = 0) -> np.ndarray:
        """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε at the timestep of step `step_index`."""
        return self.schedule.add_noise(original, noise, step_index)
