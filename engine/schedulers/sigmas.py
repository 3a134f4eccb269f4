"""The σ (variance-exploding) form the k-diffusion-style schedulers share: Euler, Euler ancestral and LMS
walk the same σ schedule, feed the model the same scaled input and noise a clean latent the same way.

The latent at noise level σ is x = x_0 + σ ε; the model was trained on x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε,
which is x / sqrt(σ² + 1). σ_i is the training σ interpolated linearly at the (possibly fractional)
timestep t_i, then a final σ (0, or the smallest training σ) after the last step. DPM-Solver++ and UniPC build
their σ tables from the same pieces (`multistep_timesteps`, `interpolated_sigmas`, `with_final_sigma`).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    if prediction_type == "epsilon":
        return x - sigma * model_output
    if prediction_type == "v_prediction":
        return model_output * (-sigma / np.sqrt(sigma ** 2 + 1)) + x / (sigma ** 2 + 1)
    return model_output  # "sample"


def scaled_model_input(sample: np.ndarray, sigma: np.float32) -> np.ndarray:
    """x / sqrt(σ² + 1): the latent at σ as the model saw it in training (unit variance at every level)."""
    return np.asarray(sample, dtype=np.float32) / np.sqrt(sigma ** 2 + 1)


def noised(original: np.ndarray, noise: np.ndarray, sigma: np.float32) -> np.ndarray:
    """x = x_0 + σ ε: a clean latent at noise level σ (audio-to-audio's start)."""
    return np.asarray(original, np.float32) + np.asarray(noise, np.float32) * sigma


@dataclass(frozen=True, eq=False)
class SigmaSchedule:
    """One trajectory's noise levels, from step `begin` on. Euler, Euler ancestral and LMS differ only in
    their steps, so they build this the same way (`sigma_schedule`) instead of each repeating it."""

    timesteps: np.ndarray  # float32, the UNet's timestep at each step from `begin`
    sigmas: np.ndarray  # float32, σ at each of those steps, then the final σ
    all_sigmas: np.ndarray  # float32, the same over the whole schedule (diffusers' indices are absolute)
    init_noise_sigma: float  # text-to-audio starts from unit noise times this


def sigma_schedule(noise: TrainingNoise, spacing: str, steps_offset: int, num_steps: int, begin: int,
                   final_sigmas_type: str = "zero") -> SigmaSchedule:
    """The σ schedule of `num_steps` steps, started at step `begin` (audio-to-audio), as diffusers'
    `set_timesteps` then `set_begin_index(begin)`."""
    train_sigmas = sigmas_of(noise.alphas_cumprod())
    timesteps = discrete_timesteps(noise, spacing, steps_offset, num_steps)
    all_sigmas = with_final_sigma(interpolated_sigmas(train_sigmas, timesteps), train_sigmas, final_sigmas_type)
    return SigmaSchedule(timesteps=timesteps[begin:], sigmas=all_sigmas[begin:], all_sigmas=all_sigmas,
                         init_noise_sigma=start_sigma(all_sigmas, spacing))
