"""Batch preset files (TOML): read, checked, and expanded into one item per loop to render.

    presets = read_presets(Path("pack.toml"))        # PresetFileError "pack.toml:12: bpm: ..." if wrong
    items = expand(presets, seeds_drawn)              # BatchItem per seed, each keyed by its settings

Schema (see docs/batch-presets.example.toml): an optional `[defaults]` table with any preset key, and
`[[preset]]` tables. Every error names the file, the line and the key, and is found before anything
is rendered or written.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.choices import LOOP_FILE_FORMATS, PROVIDERS
from engine.errors import InvalidInputError
from engine.generation.settings import MAX_SEED, SPEED_KEYS, GenerationSettings, at_speed
from plugin.grid_loop import GridOptions

MAX_COUNT = 1000

_STR, _INT, _NUM, _SEEDS = "a string", "a whole number", "a number", "a list of whole numbers"
_PAIR = "two numbers [low, high]"
# key -> what it must be
KEYS: dict[str, str] = {
    "name": _STR, "prompt": _STR, "negative": _STR, "seeds": _SEEDS, "count": _INT, "model": _STR,
    "provider": _STR, "steps": _INT, "guidance": _NUM, "scheduler": _STR, "quality": _STR, "width": _INT,
    "seconds": _NUM, "init_audio": _STR, "strength": _NUM, "format": _STR, "bpm": _NUM, "bars": _NUM,
    "beats": _NUM, "meter": _STR, "fit": _STR, "bit_depth": _STR, "sample_rate": _INT, "normalize": _NUM,
    "guidance_interval": _PAIR, "speed": _STR, "key": _STR,
}
# The first words of a settings check's message -> the preset key it is about.
_MESSAGE_KEYS = {"guidance_interval": "guidance_interval", "unknown speed": "speed",
                 "the prompt": "prompt", "steps": "steps", "guidance": "guidance", "seed": "seeds", "width": "width",
                 "quality": "quality", "strength": "strength", "unknown scheduler": "scheduler", "bpm": "bpm",
                 "bars": "bars", "beats": "beats", "meter": "meter", "fit": "fit", "bit depth": "bit_depth",
                 "sample rate": "sample_rate", "loudness": "normalize", "give the length": "bars",
                 "not a key": "key"}


class PresetFileError(InvalidInputError):
    """A preset file that cannot be used: the message starts with FILE:LINE: KEY."""


@dataclass(frozen=True)
class Preset:
    index: int  # 0-based among [[preset]] tables
    values: dict[str, Any]  # defaults merged in
    lines: dict[str, int]  # key -> line it came from


@dataclass(frozen=True)
class BatchItem:
    """One loop to render: everything that shapes it, and the key it is known by across runs."""

    key: str
    preset: int
    folder: str  # sub-folder (from the preset's name)
    settings: GenerationSettings  # seed fixed
    options: GridOptions | None  # None: the loop as painted (no --bpm)
    audio_format: str
    bundle: str  # the model bundle's path (a preset's `model`, the CLI's --model)
    provider: str
    label: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    session_options: dict[str, Any] = field(default_factory=dict)  # the NPU's, e.g. {"htp_performance_mode": ...}
    # For a seed drawn for `count = N`: the preset's identity and the draw's place, recorded in the sidecar so
    # that the seeds are found again from the results themselves (the summary may be lost).
    seed_draw: tuple[str, int] | None = None


def read_presets(path: Path, *, default_bundle: str | None = None) -> list[Preset]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PresetFileError(f"{path}: cannot read the preset file ({error})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = _line_of_toml_error(error)
        raise PresetFileError(f"{path.name}:{line}: not valid TOML ({_toml_reason(error)})") from None
    lines = _key_lines(text)
    for table in data:
        if table not in ("defaults", "preset"):
            raise PresetFileError(f"{path.name}:{lines.get(('table', table, 0), 1)}: {table}: unknown table; use "
                                  "[defaults] and [[preset]]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise PresetFileError(f"{path.name}:1: defaults: must be a table ([defaults])")
    presets_data = data.get("preset", [])
    if not isinstance(presets_data, list) or not presets_data:
        raise PresetFileError(f"{path.name}:1: preset: no [[preset]] tables: add one with at least a prompt")
    _check_table(path, defaults, lines, "defaults", 0)
    presets = []
    for index, values in enumerate(presets_data):
        _check_table(path, values, lines, "preset", index)
        if "seeds" in values and "count" in values:
            key = "count" if lines.get(("preset", index, "count"), 0) >= lines.get(("preset", index, "seeds"), 0) \
                else "seeds"
            raise PresetFileError(f"{path.name}:{lines.get(('preset', index, key), 1)}: {key}: give either seeds or "
                                  "count, not both")
        inherited = {k: v for k, v in defaults.items()
                     if not (k in ("seeds", "count") and ("seeds" in values or "count" in values))}
        merged = {**inherited, **values}
        where = {key: lines.get(("preset", index, key)) or lines.get(("defaults", 0, key)) or
                 lines.get(("table", "preset", index), 1) for key in merged}
        where["_table"] = lines.get(("table", "preset", index), 1)
        if "seeds" in merged and "count" in merged:
            raise PresetFileError(f"{path.name}:{where['count']}: count: give either seeds or count, not both")
        if default_bundle is not None and "model" not in values:  # --model beats [defaults]; a preset's own wins
            merged["model"] = default_bundle
            where["model"] = where["_table"]
        preset = Preset(index=index, values=merged, lines=where)
        _check_values(path, preset)
        presets.append(preset)
    return presets


def expand(path: Path, presets: list[Preset], drawn: dict[str, list[int]], *, base: Path | None = None,
           bundle_limits=None) -> list[BatchItem]:
    """One item per seed. `drawn` (preset identity -> seeds) is extended, in place, for `count = N`
    presets: seeds are drawn once and recorded by the caller, so a rerun renders the same loops."""
    import numpy as np

    from plugin.grid_loop import paint_width
    from plugin.names import slug

    base = base or path.parent
    items = []
    for preset in presets:
        values = preset.values
        model = values.get("model")
        if model is None:
            raise PresetFileError(f"{path.name}:{preset.lines['_table']}: model: no model for this preset: add "
                                  "model = \"BUNDLE\" (here or in [defaults]) or pass --model")
        model_path = str((base / model).resolve()) if not Path(model).is_absolute() else model
        settings, options = _settings(path, preset, base)
        audio_format = values.get("format", "wav")
        provider = values.get("provider", "auto")
        identity = _digest({"settings": settings.to_dict(), "options": options.to_dict() if options else None,
                            "format": audio_format, "model": model_path, "provider": provider,
                            "seconds": values.get("seconds")})
        if "seeds" in values:
            seeds = list(values["seeds"])
        else:
            count = values.get("count", 1)
            seeds = drawn.setdefault(identity, [])
            rng = np.random.default_rng()
            while len(seeds) < count:
                seeds.append(None)
            for index in range(count):  # a gap: a draw whose seed no record kept (its result never finished)
                if not isinstance(seeds[index], int):
                    seeds[index] = int(rng.integers(0, MAX_SEED))
            seeds = seeds[:count]
        width = settings.width
        if "seconds" in values:
            width = max(64, math.ceil(values["seconds"] * 100 / 8) * 8)
        if options is not None or "seconds" in values:
            limits = bundle_limits(model_path) if bundle_limits else None
            if limits is not None and limits.fixed_shapes:
                width = limits.image_width
            elif options is not None:
                width = paint_width(options.grid(), width, **({} if limits is None else {
                    "min_width": limits.min_image_width, "max_width": limits.max_image_width,
                    "width_step": limits.width_step}))
        folder = slug(values.get("name") or values["prompt"], fallback=f"preset-{preset.index + 1}")
        for index, seed in enumerate(seeds):
            item_settings = replace(settings, seed=int(seed), width=int(width))
            key = _digest({"settings": item_settings.to_dict(), "options": options.to_dict() if options else None,
                           "format": audio_format, "model": model_path, "provider": provider})
            items.append(BatchItem(key=key, preset=preset.index, folder=folder, settings=item_settings,
                                   options=options, audio_format=audio_format, bundle=model_path, provider=provider,
                                   label=f"{values.get('name') or values['prompt']} (seed {seed})",
                                   seed_draw=None if "seeds" in values else (identity, index)))
    return items


def _settings(path: Path, preset: Preset, base: Path) -> tuple[GenerationSettings, GridOptions | None]:
    values = preset.values
    init_audio = values.get("init_audio")
    if init_audio is not None and not Path(init_audio).is_absolute():
        init_audio = str((base / init_audio).resolve())
    if init_audio is not None and not Path(init_audio).is_file():
        raise PresetFileError(f"{path.name}:{preset.lines['init_audio']}: init_audio: {init_audio} is not a file: "
                              "give the path of an audio file (relative to the preset file)")
    kwargs = {"prompt": values.get("prompt", ""), "negative_prompt": values.get("negative", ""),
              "init_audio": init_audio}
    for key in ("steps", "guidance", "scheduler", "quality", "width", "strength"):
        if key in values:
            kwargs[key] = values[key]
    if "guidance_interval" in values:
        kwargs["guidance_interval"] = tuple(values["guidance_interval"])
    # A speed preset first; keys given beside it override its steps, scheduler, quality or interval.
    settings = at_speed(GenerationSettings(**{k: v for k, v in kwargs.items() if k not in SPEED_KEYS}),
                        values.get("speed", "full"), kwargs)
    options = None
    if "bpm" in values:
        options = GridOptions(bpm=values["bpm"], bars=values.get("bars"), beats=values.get("beats"),
                              meter=values.get("meter", "4/4"), fit=values.get("fit", "auto"),
                              bit_depth=str(values.get("bit_depth", "24")),
                              sample_rate=values.get("sample_rate", 44100), normalize_lufs=values.get("normalize"),
                              key=values.get("key"))
        if "seconds" in values:  # it was silently ignored: the grid's bars or beats set the length
            raise PresetFileError(f"{path.name}:{preset.lines['seconds']}: seconds: not with bpm (the length is "
                                  "bars or beats at that tempo): leave out seconds, or bpm")
    else:
        for key in ("bars", "beats", "meter", "fit", "normalize", "key"):
            if key in values:
                raise PresetFileError(f"{path.name}:{preset.lines[key]}: {key}: needs bpm (the session tempo)")
    return settings, options


def _check_values(path: Path, preset: Preset) -> None:
    """Every value checked by the same code the command line uses, each error pinned to its key's line."""
    values = preset.values
    if "prompt" not in values:
        raise PresetFileError(f"{path.name}:{preset.lines['_table']}: prompt: missing; every preset needs a prompt")
    fmt = values.get("format", "wav")
    if fmt not in LOOP_FILE_FORMATS:
        raise PresetFileError(f"{path.name}:{preset.lines['format']}: format: must be one of "
                              f"{', '.join(LOOP_FILE_FORMATS)}, not {fmt!r}")
    if "count" in values and not 1 <= values["count"] <= MAX_COUNT:
        raise PresetFileError(f"{path.name}:{preset.lines['count']}: count: must be from 1 to {MAX_COUNT}")
    if "seeds" in values:
        seeds = values["seeds"]
        bad = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
        if not seeds or bad:
            raise PresetFileError(f"{path.name}:{preset.lines['seeds']}: seeds: must be whole numbers from 0 to "
                                  f"{MAX_SEED}" + (f", not {bad[0]}" if bad else " (at least one)"))
    if "seconds" in values and not 0.64 <= values["seconds"] <= 20.48:
        raise PresetFileError(f"{path.name}:{preset.lines['seconds']}: seconds: must be from 0.64 to 20.48")
    if "provider" in values and values["provider"] not in PROVIDERS:
        raise PresetFileError(f"{path.name}:{preset.lines['provider']}: provider: must be auto, cpu or qnn")
    try:
        settings, options = _settings(path, preset, path.parent)
        settings.validate()
        if options is not None:
            options.validate(Path(f"x.{fmt}"))
    except PresetFileError:
        raise
    except InvalidInputError as error:
        message = str(error)
        key = next((k for words, k in _MESSAGE_KEYS.items() if message.lower().startswith(words)), None)
        if key not in preset.lines:
            key = next((k for k in ("bpm", "bars", "beats") if k in preset.lines and k in message), None)
        line = preset.lines.get(key, preset.lines["_table"]) if key else preset.lines["_table"]
        raise PresetFileError(f"{path.name}:{line}: {key or 'preset'}: {message}") from None


def _check_table(path: Path, table: dict[str, Any], lines: dict, kind: str, index: int) -> None:
    if not isinstance(table, dict):
        raise PresetFileError(f"{path.name}:1: {kind}: must be a table")
    for key, value in table.items():
        line = lines.get((kind, index, key), lines.get(("table", kind, index), 1))
        if key not in KEYS:
            raise PresetFileError(f"{path.name}:{line}: {key}: unknown key; known keys: {', '.join(sorted(KEYS))}")
        expected = KEYS[key]
        if key == "bit_depth" and isinstance(value, int) and not isinstance(value, bool):
            table[key] = value = str(value)
        if not _is(value, expected):
            raise PresetFileError(f"{path.name}:{line}: {key}: must be {expected}, not {value!r}")


def _is(value: Any, expected: str) -> bool:
    if expected == _STR:
        return isinstance(value, str)
    if expected == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _NUM:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if expected == _PAIR:
        return isinstance(value, list) and len(value) == 2 and all(_is(v, _NUM) for v in value)
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
_KEY = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""")


def _key_lines(text: str) -> dict[tuple, int]:
    """(table kind, index, key) -> 1-based line; ("table", kind, index) -> the table header's line."""
    lines: dict[tuple, int] = {}
    counts: dict[str, int] = {}
    kind, index = None, 0
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            kind = header.group(2)
            index = counts.get(kind, 0)
            counts[kind] = index + (1 if header.group(1) == "[[" else 0)
            lines.setdefault(("table", kind, index), number)
            continue
        key = _KEY.match(line)
        if key and kind is not None:
            lines.setdefault((kind, index, next(g for g in key.groups() if g)), number)
        elif key:
            lines.setdefault(("top", 0, next(g for g in key.groups() if g)), number)
            lines.setdefault(("table", next(g for g in key.groups() if g), 0), number)
    return lines


def _line_of_toml_error(error: tomllib.TOMLDecodeError) -> int:
    lineno = getattr(error, "lineno", None)
    if lineno:
        return int(lineno)
    match = re.search(r"line (\d+)", str(error))
    return int(match.group(1)) if match else 1


def _toml_reason(error: tomllib.TOMLDecodeError) -> str:
    return re.sub(r"\s*\(at line \d+, column \d+\)", "", getattr(error, "msg", None) or str(error))


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=True).encode()).hexdigest()[:16]
