"""Decode quality levels: how much work phase reconstruction may spend.

`draft` is for live preview, `standard` the default, `high` for final export. Each names a
`DecodeSettings`, which is what the decoder reads; both serialise to plain values.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidInputError


class PhaseInit(enum.StrEnum):
    FRAME = "frame"  # frame-recursive phase-gradient heuristic: ~20 ms per 5 s of audio
    TREE = "tree"  # spanning-tree phase-gradient integration: ~0.1-0.2 s per 5 s, a much better start


@dataclass(frozen=True)
class DecodeSettings:
    """How a decode spends its time.

    iterations: Griffin-Lim iterations on frames as short as the window (frequency bins ~10 Hz apart).
    fine_iterations: iterations after those on twice as many bins (~5 Hz apart): each costs about two
      coarse ones, but resolves the narrow low mel bands (3.7 Hz apart at 0 Hz) much better.
    phase_init: how the first phase is made. momentum: fast Griffin-Lim's alpha.
    """

    iterations: int
    phase_init: PhaseInit
    fine_iterations: int = 0
    momentum: float = 0.99

    def __post_init__(self) -> None:
        for name in ("iterations", "fine_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"decode {name}={value!r} must be a whole number >= 0")
        if not 0.0 <= self.momentum < 1.5:
            raise InvalidInputError(f"decode momentum={self.momentum!r} must be in [0, 1.5)")
        object.__setattr__(self, "phase_init", PhaseInit(self.phase_init))

    @property
    def total_iterations(self) -> int:
        return self.iterations + self.fine_iterations

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "phase_init": str(self.phase_init)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecodeSettings:
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"invalid decode settings {dict(data)!r}: {error}") from None


class Quality(enum.StrEnum):
    DRAFT = "draft"
    STANDARD = "standard"
    HIGH = "high"

    @property
    def settings(self) -> DecodeSettings:
        return _SETTINGS[self]

    @classmethod
    def parse(cls, value: str | Quality) -> Quality:
        try:
            return cls(value)
        except ValueError:
            raise InvalidInputError(f"unknown quality {value!r}; use one of "
                                    f"{', '.join(level.value for level in cls)}") from None


# Chosen with tests/benchmarks/bench_codec.py (see results/codec.md): each level is the best mean
# sc_mel we measured inside its time budget, with room for a busy machine.
_SETTINGS = {
    Quality.DRAFT: DecodeSettings(iterations=2, phase_init=PhaseInit.FRAME),
    Quality.STANDARD: DecodeSettings(iterations=8, fine_iterations=2, phase_init=PhaseInit.TREE),
    Quality.HIGH: DecodeSettings(iterations=16, fine_iterations=32, phase_init=PhaseInit.TREE),
}
