"""The one base of every scheduler's settings: read from a bundle's scheduler config the way diffusers'
`XScheduler.from_config(config, **overrides)` reads it, and saved as plain JSON data.

Each scheduler's settings are a frozen dataclass of diffusers' init keys for that scheduler (its names,
its defaults) after a `noise` field, the checkpoint's training noise. What they share is written once
here, as diffusers' `ConfigMixin` does, and one level deep: a class changes only what is its own (DPM-Solver
refuses λ clipping, PNDM keeps diffusers' meaning of a missing `skip_prk_steps`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from engine.errors import InvalidInputError
from engine.schedulers.noise import TrainingNoise, effective_config
from engine.serialise import checked_fields


class SchedulerSettings:
    """`from_config`, `to_dict` and `from_dict` for a frozen settings dataclass with a `noise: TrainingNoise`
    field. Holds no fields itself, so each subclass's fields, defaults and JSON form are its own."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> Self:
        """The settings from a bundle's scheduler config, as diffusers' `from_config(config, **overrides)`: keys
        present in the config win over the class's defaults, `overrides` win over both, and the training noise
        comes from the same config (so switching scheduler keeps the checkpoint's noise)."""
        values = effective_config(config)
        names = {f.name for f in dataclasses.fields(cls)} - {"noise"}
        kwargs = {k: values[k] for k in names if k in values}
        kwargs.update(overrides)
        return cls(**{"noise": TrainingNoise.from_config(values), **kwargs})

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON data: tuples (trained betas, UniPC's disable_corrector) become lists."""
        data = dataclasses.asdict(self)
        return _tuples_as_lists({**data, "noise": _tuples_as_lists(data["noise"])})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; unknown keys are an error, missing ones take the defaults."""
        values = checked_fields(cls, data, "scheduler setting")
        noise = dict(values.get("noise", {}))
        unknown = sorted(set(noise) - {f.name for f in dataclasses.fields(TrainingNoise)})
        if unknown:
            raise InvalidInputError(f"unknown training-noise setting(s) {', '.join(unknown)}")
        values["noise"] = TrainingNoise(**noise)
        return cls(**values)


def _tuples_as_lists(data: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}
