"""The sampling defaults and speed presets: plain data, importable by the app without the generation code.

`full` is the default; `draft` is a quick preview with full guidance (so it previews the same ODE the full
run solves) and the quick codec level. Refining a draft is the same settings and seed at `full`
(`engine.generation.settings.at_speed`). The numbers come from the solver study
(tests/benchmarks/results/solvers-128px.md, solvers-full-fewsteps.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SCHEDULER = "dpmpp_2m_karras"  # measured: closest to the ODE end point at every step count
DEFAULT_STEPS = 15  # 0.009 from a 200-step solve, vs 0.10 for riffusion's PNDM at 50 (solvers-64px.md)
# The app's quick preview: 29.7 s prompt -> image at full size on a 2-core VNNI Xeon, the 30 s aim
# (tests/benchmarks/results/generation-full-fewsteps.md).
DRAFT_STEPS = 3

# The settings a speed preset sets; the rest of a generation (prompt, seed, width, guidance) it keeps.
SPEED_KEYS = ("steps", "scheduler", "quality", "guidance_interval")
SPEED_PRESETS: dict[str, dict[str, Any]] = {
    "full": {"steps": DEFAULT_STEPS, "scheduler": DEFAULT_SCHEDULER, "quality": "standard",
             "guidance_interval": None},
    "draft": {"steps": DRAFT_STEPS, "scheduler": DEFAULT_SCHEDULER, "quality": "draft", "guidance_interval": None},
}


def speed_of(settings: Mapping[str, Any]) -> str | None:
    """The speed preset a loop's settings (a GenerationSettings dict, e.g. a sidecar's) match, or None if custom."""
    for name, preset in SPEED_PRESETS.items():
        if all(settings.get(key) == value for key, value in preset.items()):
            return name
    return None
