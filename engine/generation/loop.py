"""A whole loop: settings -> spectrogram image -> audio, with the record that makes it again.

`render_loop` is what the CLI, the engine process and batch presets call; it adds to the image
pipeline the two audio ends: reading an input loop for audio-to-audio (any length, rate or channel
count, cut or padded to the image width) and decoding the painted image with the codec.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.codec import DEFAULT_PARAMS, decode_image, encode_audio
from engine.codec.audio_io import load_for_encoding
from engine.generation.pipeline import GenerationResult, LoopGenerator, Progress, ShouldCancel, StepEvent
from engine.generation.settings import GenerationSettings


@dataclass
class Loop:
    image: np.ndarray  # uint8 [512, width, 3]
    audio: np.ndarray  # float32 [num_samples, channels]
    sample_rate: int
    result: GenerationResult

    def record(self, generator: LoopGenerator) -> dict[str, Any]:
        """Everything needed to make this loop again, bit for bit, on the same bundle and provider: the
        sidecar's body (engine/loop_files.py adds the schema, the version and the files it writes)."""
        return {
            "settings": self.result.settings.to_dict(),
            "bundle": generator.bundle.summary(),
            "provider": self.result.provider,
            "notes": self.result.notes,
            "timings": {k: round(v, 4) for k, v in self.result.timings.items()},
        }


def render_loop(generator: LoopGenerator, settings: GenerationSettings, *, progress: Progress | None = None,
                should_cancel: ShouldCancel | None = None, initial_noise: np.ndarray | None = None,
                num_samples: int | None = None, want_previews: bool = False) -> Loop:
    init_image = None
    if settings.init_audio is not None:
        init_image = init_image_from_audio(settings.init_audio, settings.width)
    result = generator.generate(settings, progress=progress, should_cancel=should_cancel,
                                initial_noise=initial_noise, init_image=init_image, want_previews=want_previews)
    start = time.perf_counter()

    def audio_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(StepEvent("audio", done, total, 0.95 + 0.05 * done / max(total, 1)))

    audio = decode_image(result.image, DEFAULT_PARAMS, quality=result.settings.quality, num_samples=num_samples,
                         stereo=False, progress=audio_progress, should_cancel=should_cancel)
    result.timings["audio_s"] = time.perf_counter() - start
    return Loop(image=result.image, audio=audio, sample_rate=DEFAULT_PARAMS.sample_rate, result=result)


def init_image_from_audio(path: str, width: int) -> np.ndarray:
    """The input loop as the model's kind of image: mono, 44.1 kHz, cut or padded with silence to `width`."""
    samples = load_for_encoding(path, DEFAULT_PARAMS)
    wanted = (width - 1) * DEFAULT_PARAMS.hop_length
    if samples.shape[0] >= wanted:
        samples = samples[:wanted]
    else:
        samples = np.concatenate([samples, np.zeros((wanted - samples.shape[0], samples.shape[1]), np.float32)])
    encoded = encode_audio(samples, DEFAULT_PARAMS.sample_rate, DEFAULT_PARAMS)
    pixels = encoded.pixels
    return np.ascontiguousarray(pixels[:, :width])


