"""The sampling defaults and speed presets: plain data, importable by the app without the generation code.

`full` is the default: DPM-Solver++ 2M (Karras σ) at 7 steps, guided on every step but the two below
σ 0.28, where guidance changes the result by nothing measurable (Kynkäänniemi et al. 2024) and costs a
second UNet evaluation. At full SD 1.5 size it lands 0.029 from the full-guidance 200-step ODE solution,
against 0.102 for riffusion's PNDM at 50 steps, and is closer in decoded pixels (1.16 vs 1.30) and
log-mel dB (0.21 vs 0.22) too (tests/benchmarks/results/solvers-full-default.md); a 512 px loop is 2.3x
faster than the 15-step default before it and 9.8x faster than diffusers at riffusion's settings
(results/generation-full.md: 53.6-57.3 s with audio on a 2-core EPYC). `draft` is a quick preview: 3 steps
of the same solver with the same guidance interval (the same ODE the full run solves; at 3 steps it
leaves the last step, σ 0.03, unguided: 5 UNet evaluations instead of 6) and the quick codec level.
Refining a draft is the same settings and seed at `full` (`engine.generation.settings.at_speed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SCHEDULER = "dpmpp_2m_karras"  # measured: closest to the ODE end point at every step count
DEFAULT_STEPS = 7  # 8 steps: closer still (0.024), one more guided call; 6: 1.49 px, worse than PNDM@50's 1.30
# σ bounds (low, high] of the guided steps: at 7 steps all but the last two
# (σ 0.13 and 0.03), which run one conditional UNet call each (engine/generation/guidance.py).
DEFAULT_GUIDANCE_INTERVAL = (0.28, 1000.0)
# The app's quick preview, the 30 s aim: 28.5 s prompt -> audio at full size on a slow day of the 2-core
# EPYC of results/generation-full.md (31-33 s there with its last step guided too).
DRAFT_STEPS = 3

# The settings a speed preset sets; the rest of a generation (prompt, seed, width, guidance) it keeps.
SPEED_KEYS = ("steps", "scheduler", "quality", "guidance_interval")
SPEED_PRESETS: dict[str, dict[str, Any]] = {
    "full": {"steps": DEFAULT_STEPS, "scheduler": DEFAULT_SCHEDULER, "quality": "standard",
             "guidance_interval": DEFAULT_GUIDANCE_INTERVAL},
    "draft": {"steps": DRAFT_STEPS, "scheduler": DEFAULT_SCHEDULER, "quality": "draft",
              "guidance_interval": DEFAULT_GUIDANCE_INTERVAL},
}


def speed_of(settings: Mapping[str, Any]) -> str | None:
    """The speed preset a loop's settings (a GenerationSettings dict, e.g. a sidecar's) match, or None if custom.

    Settings read back from JSON (a sidecar, the library, the engine protocol) hold the guidance
    interval as a list; the presets hold a tuple: the same pair.
    """
    for name, preset in SPEED_PRESETS.items():
        if all(_as_compared(settings.get(key)) == _as_compared(value) for key, value in preset.items()):
            return name
    return None


def _as_compared(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
