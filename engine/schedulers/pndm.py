"""PNDM without Runge-Kutta warm-up (PLMS): riffusion's own scheduler, as diffusers' `PNDMScheduler` with
`skip_prk_steps=True` (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds").

Each step moves x from timestep t to t - Δ (Δ = num_train_timesteps // num_steps) with the DDIM transfer
φ(x, ε, t, t-Δ) = sqrt(ᾱ'/ᾱ) x - (ᾱ' - ᾱ) ε / (ᾱ sqrt(1-ᾱ') + sqrt(ᾱ (1-ᾱ) ᾱ')), fed a linear-multistep
(Adams-Bashforth) blend of the noise predictions ε_k seen so far:

    1 prediction:   ε_0 (then the same step again, with (ε_0 + ε_1) / 2: a Heun-like second evaluation)
    2 predictions:  (3 ε_k - ε_{k-1}) / 2
    3 predictions:  (23 ε_k - 16 ε_{k-1} + 5 ε_{k-2}) / 12
    4 or more:      (55 ε_k - 59 ε_{k-1} + 37 ε_{k-2} - 9 ε_{k-3}) / 24

The second evaluation repeats a timestep, so n >= 2 steps cost n + 1 model evaluations (`timesteps` has
one entry per evaluation). The correcting prediction ε_1 is used once and not kept in the history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.schedulers.noise import (
    TIMESTEP_SPACINGS,
    TrainingNoise,
    alpha_schedule,
    check_bool,
    check_choice,
    check_int,
    effective_config,
    next_step,
)
from engine.schedulers.settings import SchedulerSettings


@dataclass(frozen=True)
class PNDMSettings(SchedulerSettings):
    """diffusers' `PNDMScheduler` config keys we read, with its defaults but one: `skip_prk_steps` defaults to
    true, the only mode we run (PLMS) and what riffusion's and SD 1.5's configs set (diffusers' default is
    false, the Runge-Kutta warm-up; `from_config` keeps that meaning for a config that leaves the key out)."""

    noise: TrainingNoise = field(default_factory=TrainingNoise)
    skip_prk_steps: bool = True
    set_alpha_to_one: bool = False
    prediction_type: str = "epsilon"
    timestep_spacing: str = "leading"
    steps_offset: int = 0

    def __post_init__(self) -> None:
        check_bool("skip_prk_steps", self.skip_prk_steps)
        check_bool("set_alpha_to_one", self.set_alpha_to_one)
        check_choice("skip_prk_steps", self.skip_prk_steps, (True,), "pndm")
        check_choice("prediction_type", self.prediction_type, ("epsilon", "v_prediction"), "pndm")
        check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        check_int("steps_offset", self.steps_offset, minimum=0)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> PNDMSettings:
        # A config without the key gets diffusers' default, false (its scheduler would run Runge-Kutta steps),
        # and is refused as an explicit false is, rather than run as PLMS and differ from diffusers.
        if "skip_prk_steps" not in effective_config(config) and "skip_prk_steps" not in overrides:
            overrides = {**overrides, "skip_prk_steps": False}
        return super().from_config(config, **overrides)


def plms_timesteps(settings: PNDMSettings, num_steps: int) -> np.ndarray:
    """One training timestep per model evaluation, int64: t_{n-1}, t_{n-2}, t_{n-2}, t_{n-3}, ..., t_0."""
    train = settings.noise.num_train_timesteps
    if settings.timestep_spacing == "linspace":
        ascending = np.linspace(0, train - 1, num_steps).round().astype(np.int64)
    elif settings.timestep_spacing == "leading":
        ascending = (np.arange(num_steps) * (train // num_steps)).round().astype(np.int64) + settings.steps_offset
    else:  # trailing
        ascending = np.round(np.arange(train, 0, -train / num_steps))[::-1].astype(np.int64) - 1
    # The second-to-last entry is repeated for the second evaluation of the first step.
    return np.concatenate([ascending[:-1], ascending[-2:-1], ascending[-1:]])[::-1].copy()


class PNDM:
    """PLMS over `num_steps` steps, starting at evaluation `begin` (audio-to-audio). One per trajectory."""

    ancestral = False

    def __init__(self, settings: PNDMSettings, num_steps: int, begin: int = 0) -> None:
        self.settings = settings
        self.num_steps = num_steps
        self.schedule = alpha_schedule(settings.noise, plms_timesteps(settings, num_steps), num_steps, begin,
                                       settings.set_alpha_to_one, "pndm")
        self.alphas_cumprod, self.final_alpha_cumprod = self.schedule.alphas_cumprod, self.schedule.final_alpha_cumprod
        self.timesteps = self.schedule.timesteps.astype(np.float32)
        self.init_noise_sigma = 1.0
        self._history: list[np.ndarray] = []  # model outputs ε_k, newest last (at most 4)
        self._start_sample: np.ndarray | None = None  # x at the step being evaluated twice
        self._next = 0

    def scale_model_input(self, sample: np.ndarray, step_index: int) -> np.ndarray:
        return np.asarray(sample, dtype=np.float32)

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        self._next = next_step("pndm", self._next, step_index)
        eps = np.asarray(model_output, dtype=np.float32)
        t = int(self.schedule.timesteps[step_index])
        t_prev = t - self.schedule.stride
        if step_index == 1:
            # The first step's second evaluation: redo t+Δ -> t from the same start with the mean slope.
            t, t_prev = t + self.schedule.stride, t
            eps = (eps + self._history[-1]) / 2
            sample, self._start_sample = self._start_sample, None
        else:
            self._history = [*self._history[-3:], eps]
            e = self._history[::-1]  # e[0] is the newest
            if len(e) == 1:
                eps = e[0]
                self._start_sample = sample
            elif len(e) == 2:
                eps = (3 * e[0] - e[1]) / 2
            elif len(e) == 3:
                eps = (23 * e[0] - 16 * e[1] + 5 * e[2]) / 12
            else:
                eps = (1 / 24) * (55 * e[0] - 59 * e[1] + 37 * e[2] - 9 * e[3])
        return self._transfer(np.asarray(sample, dtype=np.float32), eps, t, t_prev)

    def _transfer(self, x: np.ndarray, eps: np.ndarray, t: int, t_prev: int) -> np.ndarray:
        """φ(x_t, ε, t, t'): the DDIM step from t to t' written as in the PNDM paper (eq. 11)."""
        alpha, alpha_prev = self.schedule.alpha(t), self.schedule.alpha(t_prev)
        if self.settings.prediction_type == "v_prediction":
            # v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x0  =>  ε = sqrt(ᾱ) v + sqrt(1-ᾱ) x. diffusers converts the blended
            # prediction, at the step's own t and x, so the history holds raw model outputs.
            eps = np.sqrt(alpha) * eps + np.sqrt(1 - alpha) * x
        sample_coeff = np.sqrt(alpha_prev / alpha)
        denominator = alpha * np.sqrt(1 - alpha_prev) + np.sqrt(alpha * (1 - alpha) * alpha_prev)
        return sample_coeff * x - (alpha_prev - alpha) * eps / denominator

    def add_noise(self, original: np.ndarray, noise: np.ndarray, step_index: int = 0) -> np.ndarray:
        """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε at the timestep of evaluation `step_index`."""
        return self.schedule.add_noise(original, noise, step_index)
