"""Interpolation between two prompts and/or two seeds, as riffusion does it: the text embeddings move in a
straight line, the starting noise along a great circle (slerp keeps it at the norm the model was trained
on; a straight line through two noise samples passes through noise that is too quiet). Each step is a
clip of its own; `join_clips` makes the chain one seamless file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from engine.codec import DEFAULT_PARAMS, decode_image
from engine.codec.decode import PEAK
from engine.errors import InvalidInputError
from engine.generation.pipeline import LoopGenerator, Progress, ShouldCancel, StepEvent
from engine.generation.settings import GenerationSettings

MAX_INTERPOLATION_STEPS = 64
CROSSFADE_SECONDS = 0.04


def slerp(t: float, v0: np.ndarray, v1: np.ndarray, dot_threshold: float = 0.9995) -> np.ndarray:
    """Spherical interpolation between two arrays (linear where they are nearly parallel)."""
    a, b = v0.astype(np.float64).ravel(), v1.astype(np.float64).ravel()
    dot = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    if abs(dot) > dot_threshold:
        mixed = (1 - t) * a + t * b
    else:
        theta = np.arccos(dot)
        mixed = (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)
    return mixed.reshape(v0.shape).astype(v0.dtype)


def interpolation_weights(count: int) -> np.ndarray:
    if not isinstance(count, int) or not 2 <= count <= MAX_INTERPOLATION_STEPS:
        raise InvalidInputError(f"interpolation needs 2 to {MAX_INTERPOLATION_STEPS} steps, not {count!r}")
    return np.linspace(0.0, 1.0, count)


def interpolate(generator: LoopGenerator, start: GenerationSettings, end_prompt: str, end_seed: int, count: int,
                *, progress: Progress | None = None, should_cancel: ShouldCancel | None = None,
                on_clip: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> list[np.ndarray]:
    """`count` clips from (start.prompt, start.seed) to (end_prompt, end_seed); returns their audio.

    `on_clip(index, image, audio)` receives each clip as soon as it is made, so nothing is lost if a long
    run is cancelled half-way.
    """
    from engine.schedulers import make_scheduler

    weights = interpolation_weights(count)
    if start.seed is None:
        raise InvalidInputError("interpolation needs a start seed")
    start = generator.checked(start)
    generator.checked(replace(start, prompt=end_prompt, seed=end_seed))
    context_a = generator.encode_prompts(start.prompt, start.negative_prompt)
    context_b = generator.encode_prompts(end_prompt, start.negative_prompt)
    noise_a = generator.initial_noise(start.seed, start.width)
    noise_b = generator.initial_noise(end_seed, start.width)
    clips = []
    for index, alpha in enumerate(weights):
        scheduler = make_scheduler(start.scheduler, generator.manifest.scheduler, start.steps)
        context = ((1 - alpha) * context_a + alpha * context_b).astype(np.float32)
        latents = slerp(float(alpha), noise_a, noise_b) * np.float32(scheduler.init_noise_sigma)

        def step_progress(event: StepEvent, index: int = index) -> None:
            if progress is not None:
                progress(replace(event, stage=f"clip {index + 1}/{count}",
                                 fraction=(index + event.fraction) / count))

        latents = generator.denoise(latents, context, scheduler, start.guidance, np.random.default_rng([start.seed, 1]),
                                    progress=step_progress, should_cancel=should_cancel,
                                    guidance_interval=start.guidance_interval)
        image = generator.decode_latents(latents)
        audio = decode_image(image, DEFAULT_PARAMS, quality=start.quality, stereo=False, should_cancel=should_cancel)
        if on_clip is not None:
            on_clip(index, image, audio)
        clips.append(audio)
    return clips


def join_clips(clips: list[np.ndarray], sample_rate: int = DEFAULT_PARAMS.sample_rate,
               crossfade_seconds: float = CROSSFADE_SECONDS) -> np.ndarray:
    """One file from consecutive clips, each seam an equal-power crossfade (no click, no gap)."""
    if not clips:
        raise InvalidInputError("no clips to join")
    fade = round(crossfade_seconds * sample_rate)
    out = clips[0].astype(np.float32)
    for clip in clips[1:]:
        clip = clip.astype(np.float32)
        n = min(fade, out.shape[0], clip.shape[0])
        fade_in = np.sin(np.linspace(0, np.pi / 2, n, dtype=np.float32))[:, None]
        fade_out = np.cos(np.linspace(0, np.pi / 2, n, dtype=np.float32))[:, None]
        seam = out[out.shape[0] - n :] * fade_out + clip[:n] * fade_in
        out = np.concatenate([out[: out.shape[0] - n], seam, clip[n:]])
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return out * np.float32(PEAK / peak) if peak > PEAK else out
