"""Where classifier-free guidance runs: the guidance interval (Kynkäänniemi et al. 2024, "Applying
Guidance in a Limited Interval Improves Sample and Distribution Quality in Diffusion Models").

Guidance costs a second (unconditional) UNet evaluation per step. The paper finds it harmful at the
highest noise levels (it pulls every sample toward the same few layouts) and nearly without effect at the
lowest, and applies it only to steps whose noise level σ lies in (σ_lo, σ_hi]; the other steps take the
conditional prediction alone, unguided, at half the UNet cost.

Here σ is the variance-exploding noise level of the step's UNet timestep t under the model's training
noise, σ_t = sqrt((1 - ᾱ_t) / ᾱ_t) (interpolated for fractional t): the same scale for every scheduler
and step count, so one interval means the same thing for all of them. Stable Diffusion 1.5 runs from
σ ≈ 14.6 (t = 999) down to 0.029 (t = 0). `(0, 1000)` covers every step (full guidance); `(x, x)` is
empty (no step guided: the same as guidance 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.errors import InvalidInputError
from engine.schedulers.noise import TrainingNoise, sigmas_of
from engine.schedulers.sigmas import interpolated_sigmas

MAX_SIGMA = 1000.0  # far above any SD checkpoint's σ_max (14.6 for SD 1.5): the top of the range


def step_noise_levels(scheduler_config: Mapping[str, Any], timesteps: np.ndarray) -> np.ndarray:
    """σ of each step's UNet timestep under the model's training noise, float64."""
    train_sigmas = sigmas_of(TrainingNoise.from_config(scheduler_config).alphas_cumprod())
    return interpolated_sigmas(train_sigmas, np.asarray(timesteps, dtype=np.float64))


def guided_steps(noise_levels: np.ndarray, interval: tuple[float, float] | None) -> np.ndarray:
    """Which steps run guided (bool per step): all without an interval, else those with σ in (lo, hi]."""
    levels = np.asarray(noise_levels, dtype=np.float64)
    if interval is None:
        return np.ones(levels.shape, dtype=bool)
    low, high = interval
    return (levels > low) & (levels <= high)


def check_guidance_interval(interval: Any) -> None:
    """One-line errors for an interval that is not two noise levels 0 <= lo <= hi <= MAX_SIGMA."""
    if interval is None:
        return
    if (isinstance(interval, str) or not isinstance(interval, list | tuple) or len(interval) != 2
            or not all(_finite(bound) for bound in interval)):
        raise InvalidInputError(f"guidance_interval must be two noise levels [low, high], not {interval!r} "
                                f"(e.g. [0.3, 5]; σ runs from 14.6 down to 0.03 in SD 1.5)")
    low, high = interval
    if not (0.0 <= low <= MAX_SIGMA and 0.0 <= high <= MAX_SIGMA):
        raise InvalidInputError(f"guidance_interval bounds must be noise levels from 0 to {MAX_SIGMA:g}, "
                                f"not {low!r}, {high!r}")
    if low > high:
        raise InvalidInputError(f"guidance_interval's low bound {low!r} is above its high bound {high!r}: "
                                "give them low first")


def parse_guidance_interval(text: str) -> tuple[float, float]:
    """`LO,HI` as typed on the command line (e.g. "0.3,5"); checked as the settings check it."""
    parts = text.split(",")
    try:
        interval = tuple(float(part) for part in parts)
    except ValueError:
        interval = ()
    if len(interval) != 2:
        raise InvalidInputError(f"--guidance-interval takes LO,HI (two noise levels, e.g. 0.3,5), not {text!r}")
    check_guidance_interval(interval)
    return interval  # type: ignore[return-value]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))
