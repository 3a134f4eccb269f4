"""Align Your Steps (Sabour, Fidler and Kreis 2024): NVIDIA's optimised 10-step schedule for Stable
Diffusion 1.5, as the training timesteps diffusers ships (`AysSchedules["StableDiffusionTimesteps"]`),
run with DPM-Solver++(2M) the way diffusers runs a custom schedule (`set_timesteps(timesteps=...)`: σ
interpolated at each timestep, final σ 0).

Other step counts interpolate the schedule log-linearly, as NVIDIA's guide does (`loglinear_interp`):
log t is linear in the step position between the ten published points, then rounded to a whole timestep.
10 steps give the published list exactly; the first (999) and last (24) timesteps never move.
"""

from __future__ import annotations

import numpy as np

from engine.errors import InvalidInputError
from engine.schedulers.dpm_solver import DPMSolverPP2M, DPMSolverSettings

SD15_TIMESTEPS = (999, 850, 736, 645, 545, 455, 343, 233, 124, 24)
MIN_STEPS = 2  # one point would be the last one (t = 24): the interpolation needs both ends
MAX_STEPS = 400  # rounded timesteps stay distinct up to 430 steps; AYS is a few-step schedule anyway


def ays_timesteps(num_steps: int) -> np.ndarray:
    """The AYS SD 1.5 schedule for `num_steps` steps, decreasing whole timesteps, int64."""
    check_ays_steps(num_steps)
    published = np.asarray(SD15_TIMESTEPS, dtype=np.float64)
    if num_steps == len(published):
        return published.astype(np.int64)
    log_t = np.interp(np.linspace(0, 1, num_steps), np.linspace(0, 1, len(published)), np.log(published[::-1]))
    return np.round(np.exp(log_t)[::-1]).astype(np.int64)


def check_ays_steps(num_steps: int) -> None:
    """Step counts the interpolated schedule is defined for (a one-line error otherwise)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not MIN_STEPS <= num_steps <= MAX_STEPS:
        raise InvalidInputError(f"dpmpp_2m_ays takes {MIN_STEPS} to {MAX_STEPS} steps, not {num_steps!r} "
                                "(10 is the published schedule)")


def dpm_solver_ays(settings: DPMSolverSettings, num_steps: int, begin: int = 0) -> DPMSolverPP2M:
    """DPM-Solver++(2M) on the AYS schedule: the registry's constructor for `dpmpp_2m_ays`."""
    timesteps = ays_timesteps(num_steps)
    train = settings.noise.num_train_timesteps
    if timesteps[0] >= train:
        raise InvalidInputError(f"dpmpp_2m_ays is Stable Diffusion 1.5's schedule over 1000 training timesteps; "
                                f"this model has {train}: use dpmpp_2m_karras")
    return DPMSolverPP2M(settings, num_steps, begin, custom_timesteps=timesteps)
