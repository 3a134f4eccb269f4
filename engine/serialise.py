"""Settings dataclasses to and from plain dicts (JSON, TOML, IPC messages), checked at the door."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from engine.errors import InvalidInputError

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], what: str) -> T:
    """`cls(**data)`, refusing unknown keys and missing required ones with a one-line message."""
    return cls(**checked_fields(cls, data, what))


def checked_fields(cls: type, data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """`data` as keyword arguments for dataclass `cls`, checked as `from_dict` checks them: for callers
    that must convert a nested value (a dict standing for a dataclass) before building `cls`."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{what} must be a mapping of names to values, not {type(data).__name__}")
    fields = dataclasses.fields(cls)
    names = {field.name for field in fields}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidInputError(f"unknown {what}(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}")
    required = [f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in data]
    if required:
        raise InvalidInputError(f"{what}s need {', '.join(required)}")
    return dict(data)
