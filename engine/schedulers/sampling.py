"""The whole denoising loop for one scheduler, with a plain callable as the model: what the solver-accuracy
benchmark runs (distance of each scheduler and step count from a 200-step reference), and the reference
for the pipeline's own loop, which adds guidance, cancellation and progress around the same three calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from engine.schedulers.registry import make_scheduler

Model = Callable[[np.ndarray, np.float32], np.ndarray]


def sample(model: Model, name: str, num_steps: int, config: Mapping[str, Any], noise: np.ndarray, *,
           rng: np.random.Generator | None = None, init_latents: np.ndarray | None = None,
           strength: float = 1.0) -> np.ndarray:
    """The final latent of scheduler `name` over `num_steps` steps, float32.

    `model(sample, timestep)` returns the prediction (ε for the usual prediction_type "epsilon") for the
    scaled latent at `timestep`. Text-to-audio starts from `noise` (unit normal) times the scheduler's
    `init_noise_sigma`; with `init_latents`, audio-to-audio starts from them noised by `noise` to the
    level `strength` picks. Ancestral schedulers (euler_a) draw fresh noise from `rng` at every step.
    """
    scheduler = make_scheduler(name, config, num_steps, strength=strength)
    noise = np.asarray(noise, dtype=np.float32)
    if init_latents is None:
        latents = noise * scheduler.init_noise_sigma
    else:
        latents = scheduler.add_noise(init_latents, noise, 0)
    for i, t in enumerate(scheduler.timesteps):
        prediction = model(scheduler.scale_model_input(latents, i), t)
        latents = scheduler.step(prediction, i, latents, rng)
    return latents
