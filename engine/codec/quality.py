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
    FRAME = "frame"  # frame-recursive phase-gradient heuristic: milliseconds
    TREE = "tree"  # spanning-tree phase-gradient integration: ~0.3 s per 5 s, a better start


@dataclass(frozen=True)
class DecodeSettings:
    """iterations: Griffin-Lim iterations after the first phase; momentum: fast Griffin-Lim's alpha."""

    iterations: int
    phase_init: PhaseInit
    momentum: float = 0.99

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise InvalidInputError(f"decode iterations={self.iterations!r} must be a whole number >= 0")
        if not 0.0 <= self.momentum < 1.5:
            raise InvalidInputError(f"decode momentum={self.momentum!r} must be in [0, 1.5)")
        object.__setattr__(self, "phase_init", PhaseInit(self.phase_init))

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


_SETTINGS = {
    Quality.DRAFT: DecodeSettings(iterations=2, phase_init=PhaseInit.FRAME),
    Quality.STANDARD: DecodeSettings(iterations=12, phase_init=PhaseInit.FRAME),
    Quality.HIGH: DecodeSettings(iterations=48, phase_init=PhaseInit.TREE),
}
