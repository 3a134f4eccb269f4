"""The training noise of a checkpoint, read from its scheduler config, and what every scheduler derives from it.

A latent at training timestep t is x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, with ᾱ_t = prod_{s<=t} (1 - β_s)
(`alphas_cumprod`). The same noise level in the variance-exploding form the k-diffusion samplers use is
σ_t = sqrt((1 - ᾱ_t) / ᾱ_t): x_t / sqrt(ᾱ_t) = x_0 + σ_t ε.

diffusers computes β and ᾱ with torch in float32; we reproduce them bit for bit (torch's linspace rounds
once per element, its cumprod accumulates in float64), and σ to one float32 ulp (torch's float32 square
root is not always correctly rounded, numpy's is).

`effective_config` reads a bundle's scheduler config the way diffusers' `XScheduler.from_config(
pipe.scheduler.config)` does; `settings.SchedulerSettings` builds every scheduler's settings from it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import InvalidInputError

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
TIMESTEP_SPACINGS = ("linspace", "leading", "trailing")
MAX_STEPS = 1000


@dataclass(frozen=True)
class TrainingNoise:
    """The β schedule a checkpoint was trained with (diffusers' config keys and defaults)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        check_int("num_train_timesteps", self.num_train_timesteps, minimum=2)
        check_number("beta_start", self.beta_start)
        check_number("beta_end", self.beta_end)
        check_choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES)
        if self.trained_betas is not None:
            if isinstance(self.trained_betas, str) or not all(
                    isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 1
                    for b in self.trained_betas):
                raise InvalidInputError("the model's scheduler config has trained_betas that are not numbers in "
                                        "[0, 1): re-convert the model")
            if len(self.trained_betas) != self.num_train_timesteps:
                raise InvalidInputError(f"the model's scheduler config has {len(self.trained_betas)} trained_betas "
                                        f"for {self.num_train_timesteps} timesteps: re-convert the model")
            object.__setattr__(self, "trained_betas", tuple(float(b) for b in self.trained_betas))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainingNoise:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in effective_config(config).items() if k in names})

    def betas(self) -> np.ndarray:
        """β_t, float32, as diffusers' schedulers build them."""
        n = self.num_train_timesteps
        if self.trained_betas is not None:
            return np.asarray(self.trained_betas, dtype=np.float32)
        if self.beta_schedule == "linear":
            return _torch_linspace_float32(self.beta_start, self.beta_end, n)
        if self.beta_schedule == "scaled_linear":
            return _torch_linspace_float32(self.beta_start ** 0.5, self.beta_end ** 0.5, n) ** 2
        # squaredcos_cap_v2 (improved DDPM): ᾱ(t) = cos²((t + 0.008) / 1.008 · π/2), β capped at 0.999.
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)],
                        dtype=np.float32)

    def alphas_cumprod(self) -> np.ndarray:
        """ᾱ_t for t = 0 .. num_train_timesteps - 1, float32."""
        alphas = np.float32(1.0) - self.betas()
        return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


def sigmas_of(alphas_cumprod: np.ndarray) -> np.ndarray:
    """σ_t = sqrt((1 - ᾱ_t) / ᾱ_t), float32 like ᾱ."""
    return np.sqrt((np.float32(1.0) - alphas_cumprod) / alphas_cumprod)


def _torch_linspace_float32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(start, end, steps, dtype=float32): the first half counts up from start, the second
    down from end, each element `start + step * i` rounded once to float32."""
    start32, end32 = np.float32(start), np.float32(end)
    step = (end32 - start32) / np.float32(steps - 1)
    index = np.arange(steps)
    up = np.float64(start32) + np.float64(step) * index
    down = np.float64(end32) - np.float64(step) * (steps - 1 - index)
    return np.where(index < steps // 2, up, down).astype(np.float32)


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022, eq. 5: σ_i = (σ_max^(1/ρ) + i/(n-1) (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ, float64."""
    ramp = np.linspace(0, 1, num_steps)
    max_inv_rho, min_inv_rho = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


def timestep_of_sigma(sigma: float, log_sigmas: np.ndarray) -> float:
    """The fractional training timestep whose σ is `sigma`: linear interpolation in log σ between the two
    training timesteps around it (clamped to the table), as diffusers' `_sigma_to_t`."""
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    below = int(np.clip(np.cumsum(log_sigma - log_sigmas >= 0).argmax(), None, len(log_sigmas) - 2))
    low, high = log_sigmas[below], log_sigmas[below + 1]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    return float((1 - w) * below + w * (below + 1))


# --- the ᾱ form (DDIM, PNDM) ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AlphaSchedule:
    """One trajectory of a scheduler that steps between training timesteps in the ᾱ form (DDIM, PNDM),
    from evaluation `begin` on: both build, check and noise it the same way (`alpha_schedule`)."""

    alphas_cumprod: np.ndarray  # ᾱ_t for every training timestep, float32
    final_alpha_cumprod: np.float32  # what stands for ᾱ_t at t < 0: 1 (`set_alpha_to_one`) or ᾱ_0
    timesteps: np.ndarray  # int64, the training timestep of each evaluation from `begin`
    stride: int  # Δ = num_train_timesteps // num_steps, how far one step moves

    def alpha(self, t: int) -> np.float32:
        """ᾱ_t, or the final ᾱ past the end (t < 0)."""
        return self.alphas_cumprod[t] if t >= 0 else self.final_alpha_cumprod

    def add_noise(self, original: np.ndarray, noise: np.ndarray, step_index: int = 0) -> np.ndarray:
        """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε at the timestep of evaluation `step_index`."""
        alpha = self.alphas_cumprod[int(self.timesteps[step_index])]
        return np.sqrt(alpha) * np.asarray(original, np.float32) + np.sqrt(1 - alpha) * np.asarray(noise, np.float32)


def alpha_schedule(noise: TrainingNoise, all_timesteps: np.ndarray, num_steps: int, begin: int,
                   set_alpha_to_one: bool, scheduler: str) -> AlphaSchedule:
    """The `AlphaSchedule` of `scheduler`'s `all_timesteps` (one per evaluation) over `num_steps` steps,
    started at evaluation `begin`; refuses timesteps outside the training range (spacing and
    steps_offset can push them there) rather than indexing past ᾱ."""
    alphas_cumprod = noise.alphas_cumprod()
    final_alpha_cumprod = np.float32(1.0) if set_alpha_to_one else alphas_cumprod[0]
    if all_timesteps.max() >= len(alphas_cumprod) or all_timesteps.min() < 0:
        raise InvalidInputError(f"{num_steps} steps put a {scheduler} timestep outside the model's "
                                f"{len(alphas_cumprod)} training timesteps: use fewer steps")
    return AlphaSchedule(alphas_cumprod, final_alpha_cumprod, all_timesteps[begin:],
                         noise.num_train_timesteps // num_steps)


# --- reading a bundle's scheduler config -------------------------------------------------------------


def effective_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys a diffusers scheduler takes from `config` in `from_config`, after the pipeline's fixes.

    Keys the config's own class filled with its defaults (listed in `_use_default_values`, as in a
    loaded `pipe.scheduler.config`) are dropped, so the new scheduler uses *its* defaults for them, as
    diffusers does. StableDiffusionPipeline rewrites an explicit `steps_offset` other than 1 to 1 and an
    explicit `clip_sample: true` to false in the scheduler it is given; `pipe.scheduler.config` carries
    those rewrites, so we apply them too (riffusion's config needs neither).
    """
    if not isinstance(config, Mapping):
        raise InvalidInputError("the model's scheduler config is not a JSON object: re-convert the model")
    defaulted = set(config.get("_use_default_values", ()))
    values = {k: v for k, v in config.items() if not str(k).startswith("_") and k not in defaulted}
    if "steps_offset" in values and values["steps_offset"] != 1:
        values["steps_offset"] = 1
    if values.get("clip_sample") is True:
        values["clip_sample"] = False
    return values


# --- validation --------------------------------------------------------------------------------------


def check_choice(key: str, value: Any, allowed: tuple[Any, ...], scheduler: str = "") -> None:
    if value not in allowed:
        who = f"riffstudio's {scheduler} scheduler" if scheduler else "riffstudio"
        raise InvalidInputError(f"the model's scheduler config sets {key}={value!r}, which {who} does not "
                                f"support (use {' or '.join(map(repr, allowed))})")


def check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"the model's scheduler config sets {key}={value!r}, not an integer >= {minimum}")


def check_number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"the model's scheduler config sets {key}={value!r}, not a number")


def check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidInputError(f"the model's scheduler config sets {key}={value!r}, not true or false")


def check_steps(num_steps: Any, noise: TrainingNoise) -> int:
    """The number of denoising steps a user asked for, checked: 1 .. min(1000, training timesteps)."""
    limit = min(MAX_STEPS, noise.num_train_timesteps)
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or not 1 <= num_steps <= limit:
        raise InvalidInputError(f"the number of steps must be a whole number from 1 to {limit}, not {num_steps!r}")
    return int(num_steps)


def first_step(num_steps: int, strength: Any) -> int:
    """Where audio-to-audio starts: diffusers' img2img `get_timesteps` keeps int(num_steps * strength) steps
    and skips the rest, slicing its list of model evaluations there (then `set_begin_index` there).

    Strength 0 (or one that keeps no whole step) leaves nothing to do for most schedulers: their trajectory
    is empty. PNDM's list has one evaluation more than steps, so it keeps one, as in diffusers.
    """
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength <= 1:
        raise InvalidInputError(f"strength must be a number from 0 to 1, not {strength!r}")
    return num_steps - min(int(num_steps * strength), num_steps)


def next_step(name: str, expected: int, step_index: int) -> int:
    """The step after `step_index`, which must be `expected`: multistep schedulers keep history, so their
    steps run once each, in order. A plain ValueError: calling them otherwise is a programming error."""
    if step_index != expected:
        raise ValueError(f"{name} steps run once each, in order: expected step {expected}, got {step_index}")
    return expected + 1
