"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Algorithm 2), as diffusers' `DPMSolverMultistepScheduler` with
algorithm_type="dpmsolver++", solver_order=2; optionally on Karras et al.'s σ schedule.

Variance-preserving form: x = α x_0 + s ε with α = 1 / sqrt(σ² + 1), s = σ α, log-SNR λ = log α - log s.
The model's prediction becomes the data estimate D = (x - s ε) / α. A step from σ_i to σ_{i+1}, with
h = λ_{i+1} - λ_i:

    first order:   x_{i+1} = (s_{i+1} / s_i) x_i - α_{i+1} (e^{-h} - 1) D_i
    second order:  r = (λ_i - λ_{i-1}) / h,   D' = (D_i - D_{i-1}) / r
                   x_{i+1} = (s_{i+1} / s_i) x_i - α_{i+1} (e^{-h} - 1) (D_i + D'/2)       (midpoint)
                   x_{i+1} = ... - α_{i+1} (e^{-h} - 1) D_i + α_{i+1} ((e^{-h} - 1)/h + 1) D'  (heun)

The first step is first order (no previous D); so is the last (to σ = 0, and always when
`euler_at_final`), and with `lower_order_final` the last two steps of schedules under 15 steps use
orders 1 and 2. diffusers counts those from the whole schedule, also in audio-to-audio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import InvalidInputError
from engine.schedulers.noise import (
    TIMESTEP_SPACINGS,
    TrainingNoise,
    check_bool,
    check_choice,
    check_int,
    effective_config,
    karras_sigmas,
    next_step,
    sigmas_of,
    timestep_of_sigma,
)
from engine.schedulers.settings import SchedulerSettings
from engine.schedulers.sigmas import interpolated_sigmas, multistep_timesteps, with_final_sigma


@dataclass(frozen=True)
class DPMSolverSettings(SchedulerSettings):
    """diffusers' `DPMSolverMultistepScheduler` config keys we read, with its defaults.

    `sigma_min`/`sigma_max` are not init keys of that class, but its Karras schedule reads them from the
    config when present (None: the training σ range)."""

    noise: TrainingNoise = field(default_factory=TrainingNoise)
    solver_order: int = 2
    prediction_type: str = "epsilon"
    thresholding: bool = False
    algorithm_type: str = "dpmsolver++"
    solver_type: str = "midpoint"
    lower_order_final: bool = True
    euler_at_final: bool = False
    use_karras_sigmas: bool = False
    use_exponential_sigmas: bool = False
    use_beta_sigmas: bool = False
    use_lu_lambdas: bool = False
    use_flow_sigmas: bool = False
    final_sigmas_type: str = "zero"
    variance_type: str | None = None
    timestep_spacing: str = "linspace"
    steps_offset: int = 0
    rescale_betas_zero_snr: bool = False
    sigma_min: float | None = None
    sigma_max: float | None = None

    def __post_init__(self) -> None:
        check_choice("solver_order", self.solver_order, (1, 2), "dpmpp_2m")
        check_choice("prediction_type", self.prediction_type, ("epsilon", "v_prediction", "sample"), "dpmpp_2m")
        check_choice("algorithm_type", self.algorithm_type, ("dpmsolver++",), "dpmpp_2m")
        check_choice("solver_type", self.solver_type, ("midpoint", "heun"), "dpmpp_2m")
        check_bool("lower_order_final", self.lower_order_final)
        check_bool("euler_at_final", self.euler_at_final)
        check_bool("use_karras_sigmas", self.use_karras_sigmas)
        for key in ("thresholding", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas",
                    "rescale_betas_zero_snr"):
            check_choice(key, getattr(self, key), (False,), "dpmpp_2m")
        check_choice("final_sigmas_type", self.final_sigmas_type, ("zero", "sigma_min"))
        check_choice("variance_type", self.variance_type, (None,), "dpmpp_2m")
        check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        check_int("steps_offset", self.steps_offset, minimum=0)
        for key in ("sigma_min", "sigma_max"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise InvalidInputError(f"the model's scheduler config sets {key}={value!r}, not a positive number")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> DPMSolverSettings:
        # λ clipping (for cosine schedules) is off unless the config asks; we support it off only.
        clipped = effective_config(config).get("lambda_min_clipped", -float("inf"))
        check_choice("lambda_min_clipped", clipped, (-float("inf"),), "dpmpp_2m")
        return super().from_config(config, **overrides)


def dpm_schedule(settings: DPMSolverSettings, num_steps: int,
                 custom_timesteps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(timesteps, int64; σ per timestep plus the final σ, float32). `custom_timesteps` replace the
    spaced ones, as diffusers' `set_timesteps(timesteps=...)` (Align Your Steps): σ is interpolated at them."""
    train = settings.noise.num_train_timesteps
    alphas_cumprod = settings.noise.alphas_cumprod()
    train_sigmas = sigmas_of(alphas_cumprod)
    if custom_timesteps is not None:
        timesteps = np.asarray(custom_timesteps, dtype=np.int64)
    else:
        timesteps = multistep_timesteps(train, settings.timestep_spacing, settings.steps_offset, num_steps)
    if settings.use_karras_sigmas and custom_timesteps is None:
        sigma_min = settings.sigma_min if settings.sigma_min is not None else float(train_sigmas[0])
        sigma_max = settings.sigma_max if settings.sigma_max is not None else float(train_sigmas[-1])
        sigmas = karras_sigmas(sigma_min, sigma_max, num_steps)
        log_sigmas = np.log(train_sigmas)
        timesteps = np.array([timestep_of_sigma(s, log_sigmas) for s in sigmas])
        if settings.noise.beta_schedule != "squaredcos_cap_v2":
            timesteps = timesteps.round()
        timesteps = timesteps.astype(np.int64)
    else:
        sigmas = interpolated_sigmas(train_sigmas, timesteps)
    return timesteps, with_final_sigma(sigmas, train_sigmas, settings.final_sigmas_type)


def _alpha_sigma(sigma: np.float32) -> tuple[np.float32, np.float32]:
    """(α, s) of the VP form for a VE σ: α = 1 / sqrt(σ² + 1), s = σ α."""
    alpha = 1 / np.sqrt(sigma ** 2 + 1)
    return alpha, sigma * alpha


def _log_snr(alpha: np.float32, s: np.float32) -> np.float32:
    with np.errstate(divide="ignore"):  # s = 0 at the end: λ = +inf, and e^{-h} = 0 as it should be
        return np.log(alpha) - np.log(s)


class DPMSolverPP2M:
    """DPM-Solver++(2M) over `num_steps` steps, starting at step `begin`. One per trajectory."""

    ancestral = False

    def __init__(self, settings: DPMSolverSettings, num_steps: int, begin: int = 0, *,
                 custom_timesteps: np.ndarray | None = None) -> None:
        self.settings = settings
        self.num_steps = num_steps
        self.begin = begin
        all_timesteps, self.all_sigmas = dpm_schedule(settings, num_steps, custom_timesteps)
        self._schedule_length = len(all_timesteps)
        self.timesteps = all_timesteps[begin:].astype(np.float32)
        self.sigmas = self.all_sigmas[begin:]
        self.init_noise_sigma = 1.0
        self._previous: np.ndarray | None = None  # D_{i-1}
        self._next = 0

    def scale_model_input(self, sample: np.ndarray, step_index: int) -> np.ndarray:
        return np.asarray(sample, dtype=np.float32)

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        self._next = next_step("dpm-solver", self._next, step_index)
        settings = self.settings
        x = np.asarray(sample, dtype=np.float32)
        i = self.begin + step_index
        last, short = self._schedule_length - 1, self._schedule_length < 15
        first_order = self._previous is None or settings.solver_order == 1 or (i == last and (
            settings.euler_at_final or (settings.lower_order_final and short) or settings.final_sigmas_type == "zero"))
        # (lower_order_final on the second-to-last step asks for order <= 2, which 2M always is)

        alpha_i, s_i = _alpha_sigma(self.all_sigmas[i])
        alpha_t, s_t = _alpha_sigma(self.all_sigmas[i + 1])
        data = self._data_estimate(np.asarray(model_output, np.float32), x, alpha_i, s_i)
        h = _log_snr(alpha_t, s_t) - _log_snr(alpha_i, s_i)
        phi = alpha_t * (np.exp(-h) - 1)
        if first_order:
            x_next = (s_t / s_i) * x - phi * data
        else:
            alpha_p, s_p = _alpha_sigma(self.all_sigmas[i - 1])
            r = (_log_snr(alpha_i, s_i) - _log_snr(alpha_p, s_p)) / h
            slope = (1.0 / r) * (data - self._previous)
            if settings.solver_type == "midpoint":
                x_next = (s_t / s_i) * x - phi * data - 0.5 * phi * slope
            else:
                x_next = (s_t / s_i) * x - phi * data + (alpha_t * ((np.exp(-h) - 1) / h + 1)) * slope
        self._previous = data
        return x_next

    def _data_estimate(self, model_output: np.ndarray, x: np.ndarray, alpha: np.float32, s: np.float32) -> np.ndarray:
        kind = self.settings.prediction_type
        if kind == "epsilon":
            return (x - s * model_output) / alpha
        if kind == "v_prediction":
            return alpha * x - s * model_output
        return model_output  # "sample"

    def add_noise(self, original: np.ndarray, noise: np.ndarray, step_index: int = 0) -> np.ndarray:
        """x = α x_0 + s ε at step `step_index`."""
        alpha, s = _alpha_sigma(self.sigmas[step_index])
        return alpha * np.asarray(original, np.float32) + s * np.asarray(noise, np.float32)
