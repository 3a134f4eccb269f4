"""Numpy schedulers (samplers) for Stable Diffusion, each equal to diffusers' class of the same config.

`make_scheduler(name, config, num_steps, strength=...)` is the one entry point; `sample` runs a whole
trajectory with a plain callable as the model. One file per family: pndm, ddim, euler (+ ancestral),
lms, dpm_solver (+ `ays`, its Align Your Steps schedule), unipc; `noise` holds the training noise they
share and how a bundle's config is read, `settings` the one base of their settings (from a config, to and
from JSON).
"""

from engine.schedulers.ddim import DDIM, DDIMSettings
from engine.schedulers.dpm_solver import DPMSolverPP2M, DPMSolverSettings
from engine.schedulers.euler import Euler, EulerAncestral, EulerAncestralSettings, EulerSettings
from engine.schedulers.lms import LMS, LMSSettings
from engine.schedulers.noise import TrainingNoise
from engine.schedulers.pndm import PNDM, PNDMSettings
from engine.schedulers.registry import (
    SCHEDULER_NAMES,
    Scheduler,
    check_scheduler_steps,
    make_scheduler,
    scheduler_settings,
)
from engine.schedulers.sampling import sample
from engine.schedulers.settings import SchedulerSettings
from engine.schedulers.unipc import UniPC, UniPCSettings

__all__ = [
    "DDIM",
    "LMS",
    "PNDM",
    "SCHEDULER_NAMES",
    "DDIMSettings",
    "DPMSolverPP2M",
    "DPMSolverSettings",
    "Euler",
    "EulerAncestral",
    "EulerAncestralSettings",
    "EulerSettings",
    "LMSSettings",
    "PNDMSettings",
    "Scheduler",
    "SchedulerSettings",
    "TrainingNoise",
    "UniPC",
    "UniPCSettings",
    "check_scheduler_steps",
    "make_scheduler",
    "sample",
    "scheduler_settings",
]
