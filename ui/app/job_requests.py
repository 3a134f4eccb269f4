"""Every job the app queues, built in one place: Generate, Draft, Refine, More like this, Longer and Riff.

Why one place: the requests were once built three ways in the window and only Generate passed the NPU
mode, so Refine, More like this, Longer and Riff silently ran the NPU at its default. Here every request
goes through `job_request`, which takes the bundle, the provider and the NPU session options from the
app's settings; the intent functions only say what the loop is. Pure functions of plain values (no Qt,
no randomness of their own: the window rolls seeds), so they are tested without a window."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.speeds import SPEED_PRESETS
from ui.app.controller import JobRequest
from ui.app.exports import paint_width_for, width_for_seconds
from ui.app.generate_panel import GenerateValues
from ui.app.library import LibraryLoop
from ui.app.settings import AppSettings

__all__ = ["draft_request", "follow_request", "generate_request", "job_request", "longer_request",
           "more_like_this_request", "refined_request", "riff_request", "session_options"]


def session_options(app: AppSettings) -> dict[str, Any]:
    """The engine session options the app's settings ask for: the NPU's performance mode, unless on the CPU."""
    return {"htp_performance_mode": app.npu_mode} if app.provider != "cpu" else {}


def job_request(app: AppSettings, settings: dict[str, Any], *, label: str, bpm: float | None,
                bars: float | None, kind: str = "", parent: str = "") -> JobRequest:
    """The one constructor of a queued job: `settings` (a GenerationSettings dict) run with the app's bundle,
    provider and session options; `kind` and `parent` are what the library's badge and row say it came from."""
    return JobRequest(settings=settings, bundle=app.bundle, provider=app.provider, bpm=bpm, bars=bars,
                      label=label, session_options=session_options(app), kind=kind, parent=parent)


def _panel_width(values: GenerateValues) -> int:
    """The image width for the panel's length: the bar grid at its BPM, else its seconds."""
    return paint_width_for(values.bpm, values.bars) if values.bpm and values.bars \
        else width_for_seconds(values.seconds)


def generate_request(app: AppSettings, values: GenerateValues) -> JobRequest:
    """Generate: the panel's loop at the panel's settings."""
    return job_request(app, values.settings(_panel_width(values)), label=values.prompt, bpm=values.bpm,
                       bars=values.bars)


def draft_request(app: AppSettings, values: GenerateValues) -> JobRequest:
    """Draft: the panel's loop at the draft speed preset (a quick preview to refine)."""
    settings = {**values.settings(_panel_width(values)), **SPEED_PRESETS["draft"]}
    return job_request(app, settings, label=f"draft: {values.prompt}", bpm=values.bpm, bars=values.bars,
                       kind="draft")


def _from_loop(app: AppSettings, loop: LibraryLoop, label: str, kind: str, **changes: Any) -> JobRequest:
    """`loop` again (its settings and grid) with `changes`, labelled "`label`: its prompt", a `kind` of it."""
    return job_request(app, {**loop.settings, **changes}, label=f"{label}: {loop.prompt}", bpm=loop.bpm,
                       bars=loop.bars, kind=kind, parent=loop.job)


def refined_request(app: AppSettings, loop: LibraryLoop, values: GenerateValues) -> JobRequest:
    """Refine: `loop` (a draft) at full speed with the panel's steps, scheduler and quality, same seed."""
    quality = values.quality if values.quality != "draft" else SPEED_PRESETS["full"]["quality"]
    return _from_loop(app, loop, "refined", "refined", **{**SPEED_PRESETS["full"], "steps": values.steps,
                                               "scheduler": values.scheduler, "quality": quality})


def more_like_this_request(app: AppSettings, loop: LibraryLoop, seed: int) -> JobRequest:
    """More like this: `loop`'s settings with another seed."""
    return _from_loop(app, loop, "more like", "variation", seed=seed)


def longer_request(app: AppSettings, loop: LibraryLoop) -> JobRequest:
    """Same seed, longer: twice the bars on a bar grid (twice the width, at most 2048 px, in seconds mode)."""
    if loop.bpm and loop.bars:
        bars = loop.bars * 2
        return job_request(app, {**loop.settings, "width": paint_width_for(loop.bpm, bars)},
                           label=f"longer: {loop.prompt}", bpm=loop.bpm, bars=bars, kind="longer", parent=loop.job)
    return _from_loop(app, loop, "longer", "longer", width=min(int(loop.settings.get("width", 512)) * 2, 2048))


def riff_request(app: AppSettings, path: str, values: GenerateValues, seed: int, *, prompt: str | None = None,
                 base: LibraryLoop | None = None) -> JobRequest:
    """Riff: audio-to-audio from `path` at the panel's strength, with `base`'s settings and grid (a library loop)
    or the panel's (a dropped file); the prompt is `prompt`, else the panel's, else the file's name."""
    prompt = prompt or values.prompt or Path(path).stem.replace("_", " ")
    settings = dict(base.settings) if base is not None else values.settings(_panel_width(values))
    settings.update(prompt=prompt, init_audio=str(Path(path).resolve()), strength=values.strength, seed=seed)
    # A library loop's riff is named by its loop ("riff: dusty drums"), not its results file ("riff on loop.wav").
    label = f"riff: {base.prompt}" if base is not None else f"riff on {Path(path).name}"
    return job_request(app, settings, label=label, bpm=base.bpm if base else values.bpm,
                       bars=base.bars if base else values.bars, kind="riff",
                       parent=base.job if base is not None else str(Path(path).resolve()))


def follow_request(app: AppSettings, *, bpm: float | None, bars: float | None, key: str | None = None) -> JobRequest:
    """A job queued in an earlier session, followed again: only its grid and key are known (the engine has the
    rest)."""
    return replace(job_request(app, {}, label="from last session", bpm=bpm, bars=bars), key=key)
