"""The σ (variance-exploding) form the k-diffusion-style schedulers share: Euler, Euler ancestral and LMS
walk the same σ schedule, feed the model the same scaled input and noise a clean latent the same way
(`SigmaSampler`, their base), and step along the same slope (`to_d`); only their step rules differ.

The latent at noise level σ is x = x_0 + σ ε; the model was trained on x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε,
which is x / sqrt(σ² + 1). σ_i is the training σ interpolated linearly at the (possibly fractional)
timestep t_i, then a final σ (0, or the smallest training σ) after the last step. DPM-Solver++ and UniPC build
their σ tables from the same pieces (`multistep_timesteps`, `interpolated_sigmas`, `with_final_sigma`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from engine.schedulers.noise import TrainingNoise, sigmas_of


def discrete_timesteps(noise: TrainingNoise, spacing: str, steps_offset: int, num_steps: int) -> np.ndarray:
    """The k-diffusion-style schedulers' timesteps (Euler, Euler ancestral, LMS), decreasing, float32;
    "linspace" gives fractional timesteps."""
    train = noise.num_train_timesteps
    if spacing == "linspace":
        return np.linspace(0, train - 1, num_steps, dtype=np.float32)[::-1].copy()
    if spacing == "leading":
        return (np.arange(num_steps) * (train // num_steps)).round()[::-1].astype(np.float32) + steps_offset
    return np.arange(train, 0, -train / num_steps).round().astype(np.float32) - 1


def multistep_timesteps(train: int, spacing: str, steps_offset: int, num_steps: int) -> np.ndarray:
    """The multistep solvers' timesteps (DPM-Solver++, UniPC), decreasing whole training timesteps, int64:
    n + 1 points spaced over the training range, the last (t = 0) dropped."""
    if spacing == "linspace":
        return np.linspace(0, train - 1, num_steps + 1).round()[::-1][:-1].astype(np.int64)
    if spacing == "leading":
        ratio = train // (num_steps + 1)
        return (np.arange(num_steps + 1) * ratio).round()[::-1][:-1].astype(np.int64) + steps_offset
    return np.arange(train, 0, -train / num_steps).round().astype(np.int64) - 1  # trailing


def interpolated_sigmas(train_sigmas: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
    """σ at each timestep, linear in t between training timesteps (clamped at the ends), float64."""
    return np.interp(timesteps, np.arange(len(train_sigmas)), train_sigmas)


def with_final_sigma(sigmas: np.ndarray, train_sigmas: np.ndarray, final_sigmas_type: str) -> np.ndarray:
    """`sigmas` plus the σ the last step lands on, float32: 0 (a clean latent), or under "sigma_min" the
    smallest training σ (diffusers' `final_sigmas_type`)."""
    last = train_sigmas[0] if final_sigmas_type == "sigma_min" else 0.0
    return np.append(sigmas, last).astype(np.float32)


def start_sigma(sigmas: np.ndarray, spacing: str) -> float:
    """The initial noise scale: σ_max, or sqrt(σ_max² + 1) under "leading" spacing (diffusers' choice)."""
    sigma_max = np.max(sigmas)
    return float(sigma_max if spacing in ("linspace", "trailing") else np.sqrt(sigma_max ** 2 + 1))


def denoised(model_output: np.ndarray, x: np.ndarray, sigma: np.float32, prediction_type: str) -> np.ndarray:
    """D(x; σ), the model's estimate of x_0, from its output under each parametrisation."""
    model_output = np.asarray(model_output, np.float32)
    if prediction_type == "epsilon":
        return x - sigma * model_output
    if prediction_type == "v_prediction":
        return model_output * (-sigma / np.sqrt(sigma ** 2 + 1)) + x / (sigma ** 2 + 1)
    return model_output  # "sample"


def to_d(x: np.ndarray, sigma: np.float32, denoised: np.ndarray) -> np.ndarray:
    """d = (x - D) / σ, the probability-flow ODE's slope dx/dσ at x (k-diffusion's `to_d`): the one
    derivative every σ-form step integrates, whatever the rule."""
    return (x - denoised) / sigma


class SigmaSettings(Protocol):
    """What the σ-form samplers read from their settings (Euler's also choose the final σ, `final_sigmas_type`)."""

    @property
    def noise(self) -> TrainingNoise: ...

    @property
    def timestep_spacing(self) -> str: ...

    @property
    def steps_offset(self) -> int: ...

    @property
    def prediction_type(self) -> str: ...


class SigmaSampler:
    """What Euler, Euler ancestral and LMS share, so that each class holds only its step rule: the σ
    schedule of `num_steps` steps started at step `begin` (as diffusers' `set_timesteps` then
    `set_begin_index(begin)`), the model's input at a step, and a clean latent noised to a step's level.
    One object per trajectory; `step` is each subclass's own."""

    ancestral = False  # True where `step` draws fresh noise

    def __init__(self, settings: SigmaSettings, num_steps: int, begin: int = 0) -> None:
        self.settings = settings
        self.num_steps = num_steps
        self.begin = begin
        train_sigmas = sigmas_of(settings.noise.alphas_cumprod())
        timesteps = discrete_timesteps(settings.noise, settings.timestep_spacing, settings.steps_offset, num_steps)
        # diffusers' Euler can end at the smallest training σ; its Euler ancestral and LMS always end at 0.
        final_sigmas_type = getattr(settings, "final_sigmas_type", "zero")
        # float32: σ at every step, then the final σ (LMS's coefficients index the whole schedule, as diffusers')
        self.all_sigmas = with_final_sigma(interpolated_sigmas(train_sigmas, timesteps), train_sigmas,
                                           final_sigmas_type)
        self.timesteps = timesteps[begin:]  # float32, the UNet's timestep at each step from `begin`
        self.sigmas = self.all_sigmas[begin:]  # σ at each of those steps, then the final σ
        self.init_noise_sigma = start_sigma(self.all_sigmas, settings.timestep_spacing)

    def scale_model_input(self, sample: np.ndarray, step_index: int) -> np.ndarray:
        """x / sqrt(σ² + 1): the latent at σ as the model saw it in training (unit variance at every level)."""
        sigma = self.sigmas[step_index]
        return np.asarray(sample, dtype=np.float32) / np.sqrt(sigma ** 2 + 1)

    def add_noise(self, original: np.ndarray, noise: np.ndarray, step_index: int = 0) -> np.ndarray:
        """x = x_0 + σ ε: a clean latent at the noise level of step `step_index` (audio-to-audio's start)."""
        return np.asarray(original, np.float32) + np.asarray(noise, np.float32) * self.sigmas[step_index]
