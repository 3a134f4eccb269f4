"""Euler and Euler ancestral (Karras et al. 2022, "Elucidating the Design Space...", Algorithm 1 and the
k-diffusion ancestral variant), as diffusers' `EulerDiscreteScheduler` and `EulerAncestralDiscreteScheduler`.

Both work in the σ form: the latent is x = x_0 + σ ε, the model sees x / sqrt(σ² + 1) (its training
input), and its noise prediction gives the denoised estimate D = x - σ ε and the ODE slope
d = (x - D) / σ (`to_d`). Then

    Euler:            x_{i+1} = x_i + d (σ_{i+1} - σ_i)
    Euler ancestral:  σ_up = sqrt(σ_{i+1}² (σ_i² - σ_{i+1}²) / σ_i²),  σ_down = sqrt(σ_{i+1}² - σ_up²)
                      x_{i+1} = x_i + d (σ_down - σ_i) + σ_up z,   z ~ N(0, I) fresh each step

σ_i is the training σ interpolated linearly at the (possibly fractional) timestep t_i, then 0 at the end.
The latents start at `init_noise_sigma` times unit noise: σ_0, or sqrt(σ_0² + 1) under "leading" spacing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.schedulers.noise import (
    TIMESTEP_SPACINGS,
    TrainingNoise,
    check_choice,
    check_int,
)
from engine.schedulers.settings import SchedulerSettings
from engine.schedulers.sigmas import SigmaSampler, denoised, to_d


@dataclass(frozen=True)
class EulerSettings(SchedulerSettings):
    """diffusers' `EulerDiscreteScheduler` config keys we read, with its defaults."""

    noise: TrainingNoise = field(default_factory=TrainingNoise)
    prediction_type: str = "epsilon"
    interpolation_type: str = "linear"
    use_karras_sigmas: bool = False
    use_exponential_sigmas: bool = False
    use_beta_sigmas: bool = False
    timestep_spacing: str = "linspace"
    timestep_type: str = "discrete"
    steps_offset: int = 0
    rescale_betas_zero_snr: bool = False
    final_sigmas_type: str = "zero"

    def __post_init__(self) -> None:
        check_choice("prediction_type", self.prediction_type, ("epsilon", "v_prediction", "sample"), "euler")
        check_choice("interpolation_type", self.interpolation_type, ("linear",), "euler")
        for key in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "rescale_betas_zero_snr"):
            check_choice(key, getattr(self, key), (False,), "euler")
        check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        check_choice("timestep_type", self.timestep_type, ("discrete", "continuous"))
        if self.timestep_type == "continuous" and self.prediction_type == "v_prediction":
            check_choice("timestep_type", self.timestep_type, ("discrete",), "euler (with v_prediction)")
        check_int("steps_offset", self.steps_offset, minimum=0)
        check_choice("final_sigmas_type", self.final_sigmas_type, ("zero", "sigma_min"))


@dataclass(frozen=True)
class EulerAncestralSettings(SchedulerSettings):
    """diffusers' `EulerAncestralDiscreteScheduler` config keys we read, with its defaults."""

    noise: TrainingNoise = field(default_factory=TrainingNoise)
    prediction_type: str = "epsilon"
    timestep_spacing: str = "linspace"
    steps_offset: int = 0
    rescale_betas_zero_snr: bool = False

    def __post_init__(self) -> None:
        check_choice("prediction_type", self.prediction_type, ("epsilon", "v_prediction"), "euler_a")
        check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        check_int("steps_offset", self.steps_offset, minimum=0)
        check_choice("rescale_betas_zero_snr", self.rescale_betas_zero_snr, (False,), "euler_a")


class Euler(SigmaSampler):
    """Euler's method on the probability-flow ODE (EulerSettings) over `num_steps` steps, starting at step
    `begin`."""

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(sample, dtype=np.float32)
        sigma, sigma_next = self.sigmas[step_index], self.sigmas[step_index + 1]
        d = to_d(x, sigma, denoised(model_output, x, sigma, self.settings.prediction_type))
        return x + d * (sigma_next - sigma)


class EulerAncestral(SigmaSampler):
    """Euler ancestral sampling (EulerAncestralSettings) over `num_steps` steps, starting at step `begin`.
    Each step draws fresh noise: pass `rng` (or the noise itself, `noise=`) to `step`."""

    ancestral = True

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(sample, dtype=np.float32)
        if noise is None:
            if rng is None:
                raise ValueError("euler_a draws fresh noise every step: pass rng (or noise)")
            noise = rng.standard_normal(x.shape, dtype=np.float32)
        sigma, sigma_next = self.sigmas[step_index], self.sigmas[step_index + 1]
        sigma_up = np.sqrt(sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2)
        sigma_down = np.sqrt(sigma_next ** 2 - sigma_up ** 2)
        d = to_d(x, sigma, denoised(model_output, x, sigma, self.settings.prediction_type))
        return x + d * (sigma_down - sigma) + np.asarray(noise, np.float32) * sigma_up
