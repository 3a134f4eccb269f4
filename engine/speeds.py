"""The sampling defaults and speed presets: plain data, importable by the app without the generation code.

`full` is the default; `draft` is a quick preview with full guidance (so it previews the same ODE the full
run solves) and the quick codec level. Refining a draft is the same settings and seed at `full`
(`engine.generation.settings.at_speed`). The numbers come from the solver study
(tests/benchmarks/results/solvers-128px.md; draft: fewest steps for a preview under 30 s).
"""

from __future__ import annotations

from typing import Any

DEFAULT_SCHEDULER = "dpmpp_2m_karras"  # measured: closest to the ODE end point at every step count
DEFAULT_STEPS = 15  # 0.009 from a 200-step solve, vs 0.10 for riffusion's PNDM at 50 (solvers-64px.md)
# The app's quick preview. On paper (not yet measured end to end): 3 batch-2 UNet calls at the 7.3 s measured
# at full size (results/generation-full.md) + ~5 s of text, VAE and draft audio = ~27 s, under the 30 s aim.
DRAFT_STEPS = 3

# The settings a speed preset sets; the rest of a generation (prompt, seed, width, guidance) it keeps.
SPEED_KEYS = ("steps", "scheduler", "quality", "guidance_interval")
SPEED_PRESETS: dict[str, dict[str, Any]] = {
    "full": {"steps": DEFAULT_STEPS, "scheduler": DEFAULT_SCHEDULER, "quality": "standard",
             "guidance_interval": None},
    "draft": {"steps": DRAFT_STEPS, "scheduler": DEFAULT_SCHEDULER, "quality": "draft", "guidance_interval": None},
}
