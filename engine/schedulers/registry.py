"""The schedulers a user can pick, by name, and the one interface the pipeline drives them through.

    scheduler = make_scheduler("dpmpp_2m_karras", bundle.manifest.scheduler, num_steps=25)
    latents = noise * scheduler.init_noise_sigma            # audio-to-audio: scheduler.add_noise(init, noise)
    for i, t in enumerate(scheduler.timesteps):
        eps = unet(scheduler.scale_model_input(latents, i), t, ...)
        latents = scheduler.step(eps, i, latents, rng)

Every name keeps the bundle's training noise (β schedule, steps_offset, prediction type, ...): the result
equals diffusers' `XScheduler.from_config(pipe.scheduler.config)` run the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from engine.errors import InvalidInputError
from engine.schedulers.ays import check_ays_steps, dpm_solver_ays
from engine.schedulers.ddim import DDIM, DDIMSettings
from engine.schedulers.dpm_solver import DPMSolverPP2M, DPMSolverSettings
from engine.schedulers.euler import Euler, EulerAncestral, EulerAncestralSettings, EulerSettings
from engine.schedulers.lms import LMS, LMSSettings
from engine.schedulers.noise import check_steps, first_step
from engine.schedulers.pndm import PNDM, PNDMSettings
from engine.schedulers.settings import SchedulerSettings
from engine.schedulers.unipc import UniPC, UniPCSettings


class Scheduler(Protocol):
    """One denoising trajectory. Step indices count model evaluations from 0 to len(timesteps) - 1;
    call `step` once per index, in order (multistep schedulers keep the previous predictions)."""

    timesteps: np.ndarray  # float32, the UNet's `timestep` input at each evaluation
    init_noise_sigma: float  # text-to-audio starts from unit noise times this
    ancestral: bool  # True where `step` draws fresh noise (needs rng)

    def scale_model_input(self, sample: np.ndarray, step_index: int) -> np.ndarray:
        """The UNet's latent input at evaluation `step_index`."""
        ...

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        """The latent after evaluation `step_index`, from the UNet's (guided) prediction. Ancestral
        schedulers add `noise`, or standard normal noise drawn from `rng`."""
        ...

    def add_noise(self, original: np.ndarray, noise: np.ndarray, step_index: int = 0) -> np.ndarray:
        """`original` noised to the level of evaluation `step_index` (audio-to-audio starts at 0)."""
        ...


# name -> (settings class, overrides of the bundle's config, scheduler class); one line per name.
_SCHEDULERS: dict[str, tuple[type[SchedulerSettings], dict[str, Any], Callable[..., Scheduler]]] = {
    "pndm": (PNDMSettings, {}, PNDM),
    "ddim": (DDIMSettings, {}, DDIM),
    "euler": (EulerSettings, {}, Euler),
    "euler_a": (EulerAncestralSettings, {}, EulerAncestral),
    "lms": (LMSSettings, {}, LMS),
    "dpmpp_2m": (DPMSolverSettings, {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
                 DPMSolverPP2M),
    "dpmpp_2m_karras": (DPMSolverSettings,
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
                        DPMSolverPP2M),
    # NVIDIA's Align Your Steps timesteps for SD 1.5 (log-linear for other counts), DPM-Solver++(2M) on them.
    "dpmpp_2m_ays": (DPMSolverSettings,
                     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
                     dpm_solver_ays),
    "unipc": (UniPCSettings, {"solver_order": 2, "solver_type": "bh2"}, UniPC),
}
SCHEDULER_NAMES: tuple[str, ...] = tuple(_SCHEDULERS)
# Step counts a scheduler allows beyond the model's (1 .. training timesteps): name -> check.
_STEP_CHECKS: dict[str, Callable[[int], None]] = {"dpmpp_2m_ays": check_ays_steps}


def scheduler_settings(name: str, config: Mapping[str, Any]) -> Any:
    """The frozen settings scheduler `name` runs with, from the bundle's scheduler config."""
    settings_cls, overrides, _ = _lookup(name)
    return settings_cls.from_config(config, **overrides)


def make_scheduler(name: str, config: Mapping[str, Any], num_steps: int, *, strength: float = 1.0) -> Scheduler:
    """Scheduler `name` for `num_steps` steps with the bundle's scheduler `config`.

    `strength` < 1 is audio-to-audio: like diffusers' img2img pipeline the trajectory skips its first
    num_steps - int(num_steps * strength) steps and starts from `add_noise(init_latents, noise)`.
    """
    settings_cls, overrides, scheduler_cls = _lookup(name)
    settings = settings_cls.from_config(config, **overrides)
    steps = check_steps(num_steps, settings.noise)
    check_scheduler_steps(name, steps)
    return scheduler_cls(settings, steps, first_step(steps, strength))


def check_scheduler_steps(name: str, num_steps: int) -> None:
    """Refuse, with one line, a step count scheduler `name` is not defined for (before any model work)."""
    _lookup(name)
    check = _STEP_CHECKS.get(name)
    if check is not None:
        check(num_steps)


def _lookup(name: str) -> tuple[type[SchedulerSettings], dict[str, Any], Callable[..., Scheduler]]:
    try:
        return _SCHEDULERS[name]
    except (KeyError, TypeError):
        raise InvalidInputError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULER_NAMES)}") from None
