"""Linear multistep (LMS, k-diffusion's `sample_lms`), as diffusers' `LMSDiscreteScheduler` (order 4).

Same σ form as Euler (x = x_0 + σ ε, model input x / sqrt(σ² + 1), slope d = (x - D) / σ: `SigmaSampler`
and `to_d`), but each step integrates the Lagrange polynomial through the last slopes, as an Adams-Bashforth
method in σ:

    x_{i+1} = x_i + Σ_j c_j d_{i-j},    c_j = ∫_{σ_i}^{σ_{i+1}} Π_{k≠j} (τ - σ_{i-k}) / (σ_{i-j} - σ_{i-k}) dτ

over j, k < order = min(i + 1, 4). diffusers (and k-diffusion) integrate with scipy's `quad`; the integrand
is a polynomial of degree <= 3, which we integrate exactly.

diffusers counts the order from the absolute step index, so audio-to-audio (which starts at step
`begin` > 0 with no slopes yet) builds its first coefficients from a higher-order polynomial through σ
values it never visited, and uses only as many of them as it has slopes. We do the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import polynomial

from engine.schedulers.noise import (
    TIMESTEP_SPACINGS,
    TrainingNoise,
    check_choice,
    check_int,
    next_step,
)
from engine.schedulers.settings import SchedulerSettings
from engine.schedulers.sigmas import SigmaSampler, denoised, to_d

ORDER = 4


@dataclass(frozen=True)
class LMSSettings(SchedulerSettings):
    """diffusers' `LMSDiscreteScheduler` config keys we read, with its defaults."""

    noise: TrainingNoise = field(default_factory=TrainingNoise)
    use_karras_sigmas: bool = False
    use_exponential_sigmas: bool = False
    use_beta_sigmas: bool = False
    prediction_type: str = "epsilon"
    timestep_spacing: str = "linspace"
    steps_offset: int = 0

    def __post_init__(self) -> None:
        for key in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
            check_choice(key, getattr(self, key), (False,), "lms")
        check_choice("prediction_type", self.prediction_type, ("epsilon", "v_prediction", "sample"), "lms")
        check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        check_int("steps_offset", self.steps_offset, minimum=0)


def lms_coefficient(sigmas: np.ndarray, i: int, order: int, j: int) -> float:
    """c_j: the integral from σ_i to σ_{i+1} of the Lagrange basis polynomial that is 1 at σ_{i-j} and 0 at
    the other σ_{i-k}, k < order."""
    nodes = [float(sigmas[i - k]) for k in range(order) if k != j]
    basis = polynomial.polyfromroots(nodes) / np.prod([float(sigmas[i - j]) - node for node in nodes])
    antiderivative = polynomial.polyint(basis)
    return float(polynomial.polyval(float(sigmas[i + 1]), antiderivative)
                 - polynomial.polyval(float(sigmas[i]), antiderivative))


class LMS(SigmaSampler):
    """Fourth-order linear multistep (LMSSettings) over `num_steps` steps, starting at step `begin`. One per
    trajectory."""

    def __init__(self, settings: LMSSettings, num_steps: int, begin: int = 0) -> None:
        super().__init__(settings, num_steps, begin)
        self._slopes: list[np.ndarray] = []  # d_i, newest last (at most ORDER)
        self._next = 0

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        self._next = next_step("lms", self._next, step_index)
        x = np.asarray(sample, dtype=np.float32)
        sigma = self.sigmas[step_index]
        d = to_d(x, sigma, denoised(model_output, x, sigma, self.settings.prediction_type))
        self._slopes = [*self._slopes[-(ORDER - 1):], d]
        i = self.begin + step_index  # diffusers' order and σ indices are absolute
        order = min(i + 1, ORDER)
        coefficients = [lms_coefficient(self.all_sigmas, i, order, j) for j in range(order)]
        update = sum(c * slope for c, slope in zip(coefficients, reversed(self._slopes), strict=False))
        return x + update
