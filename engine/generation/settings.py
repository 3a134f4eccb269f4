"""What a generation is: every choice that shapes a loop, as one frozen, serialisable dataclass.

The JSON sidecar written beside each loop is `GenerationSettings.to_dict()` plus the bundle's identity,
so any loop can be made again exactly (`GenerationSettings.from_dict`). Checks live here, once, so the
CLI, the engine process and batch presets all refuse the same bad input with the same message.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.choices import QUALITIES
from engine.errors import InvalidInputError
from engine.serialise import from_dict
from engine.speeds import (
    DEFAULT_GUIDANCE_INTERVAL,
    DEFAULT_SCHEDULER,
    DEFAULT_STEPS,
    DRAFT_STEPS,
    SPEED_KEYS,
    SPEED_PRESETS,
)

__all__ = ["DEFAULT_GUIDANCE_INTERVAL", "DEFAULT_SCHEDULER", "DEFAULT_STEPS", "DRAFT_STEPS", "SPEED_KEYS",
           "SPEED_PRESETS", "GenerationSettings", "at_speed"]

MAX_STEPS = 500
MAX_GUIDANCE = 30.0
MAX_SEED = 2**32 - 1
DEFAULT_GUIDANCE = 7.0
DEFAULT_STRENGTH = 0.75


@dataclass(frozen=True)
class GenerationSettings:
    """One loop. `seed=None` means "pick one"; the result records the seed that was used.

    An empty prompt is refused: Stable Diffusion would paint an unconditioned spectrogram, which is
    never what a producer typing into the prompt box meant. The negative prompt may be empty.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    scheduler: str = DEFAULT_SCHEDULER
    width: int = 512
    quality: str = "standard"
    # Audio-to-audio ("riff on this"): the input loop and how far to move away from it (0..1).
    init_audio: str | None = None
    strength: float = DEFAULT_STRENGTH
    # Guidance only on steps whose noise level σ is in (low, high] (engine/generation/guidance.py); the
    # other steps run the conditional UNet alone, unguided. None: every step guided. The default is the
    # `full` speed's (engine/speeds.py).
    guidance_interval: tuple[float, float] | None = DEFAULT_GUIDANCE_INTERVAL

    def __post_init__(self) -> None:
        if isinstance(self.guidance_interval, list):  # from JSON (the sidecar, the engine protocol)
            object.__setattr__(self, "guidance_interval", tuple(self.guidance_interval))

    def validate(self, *, min_width: int = 64, max_width: int = 2048, width_step: int = 8) -> GenerationSettings:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidInputError("the prompt is empty: describe the loop, e.g. \"funky slap bass, 100 bpm\"")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise InvalidInputError(f"steps must be a whole number from 1 to {MAX_STEPS}, not {self.steps!r} "
                                    f"({DEFAULT_STEPS} is the default with {DEFAULT_SCHEDULER})")
        if not _finite(self.guidance) or not 0.0 <= self.guidance <= MAX_GUIDANCE:
            raise InvalidInputError(f"guidance must be from 0 to {MAX_GUIDANCE:g}, not {self.guidance!r} "
                                    "(7 is the usual; 1 or less turns guidance off)")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED):
            raise InvalidInputError(f"seed must be a whole number from 0 to {MAX_SEED}, not {self.seed!r}")
        if not isinstance(self.width, int) or self.width % width_step or not min_width <= self.width <= max_width:
            raise InvalidInputError(f"width must be a multiple of {width_step} px from {min_width} to {max_width}, "
                                    f"not {self.width!r} (512 px is 5.1 s of audio)")
        if self.quality not in QUALITIES:
            raise InvalidInputError(f"quality must be one of {', '.join(QUALITIES)}, not {self.quality!r}")
        if not _finite(self.strength) or not 0.0 <= self.strength <= 1.0:
            raise InvalidInputError(f"strength must be from 0 to 1, not {self.strength!r} "
                                    "(0 keeps the input loop, 1 ignores it)")
        from engine.generation.guidance import check_guidance_interval
        from engine.schedulers import SCHEDULER_NAMES, check_scheduler_steps

        if self.scheduler not in SCHEDULER_NAMES:
            raise InvalidInputError(f"unknown scheduler {self.scheduler!r}: use one of {', '.join(SCHEDULER_NAMES)}")
        check_scheduler_steps(self.scheduler, self.steps)
        check_guidance_interval(self.guidance_interval)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationSettings:
        return from_dict(cls, data, "generation setting")


def at_speed(settings: GenerationSettings, speed: str,
             overrides: Mapping[str, Any] | None = None) -> GenerationSettings:
    """`settings` with the steps, scheduler, codec quality and guidance interval of a speed preset, then
    those of `overrides` that are given (not None): what the user set beside the speed wins.

    Everything else (prompt, seed, width, guidance, init audio) is kept, so a draft refined at `full`
    is the same loop, solved properly.
    """
    if speed not in SPEED_PRESETS:
        raise InvalidInputError(f"unknown speed {speed!r}: use one of {', '.join(SPEED_PRESETS)}")
    given = {key: value for key, value in (overrides or {}).items() if key in SPEED_KEYS and value is not None}
    return dataclasses.replace(settings, **{**SPEED_PRESETS[speed], **given})


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
