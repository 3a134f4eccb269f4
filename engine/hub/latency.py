"""Device latencies: the figures Qualcomm publishes for riffusion, and the ones read from a profile job.

Published: Qualcomm AI Hub's riffusion model page, Snapdragon X Elite CRD (precompiled QNN ONNX).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PUBLISHED_MS = {"Snapdragon X Elite CRD": {"text_encoder": 7.6, "unet": 129.9, "vae_decoder": 227.6}}


def profile_latency_ms(profile: Mapping[str, Any]) -> float | None:
    """The estimated inference time of a downloaded profile (qai-hub reports microseconds)."""
    summary = profile.get("execution_summary", {}) if isinstance(profile, Mapping) else {}
    value = summary.get("estimated_inference_time")
    return None if value is None else float(value) / 1000.0


def latency_table(device: str, measured: Mapping[str, float | None]) -> str:
    published = PUBLISHED_MS.get(device, {})
    lines = [f"{'model':<13}{'this job ms':>12}{'published ms':>14}"]
    for component, ms in measured.items():
        mine = f"{ms:.1f}" if ms is not None else "-"
        theirs = f"{published[component]:.1f}" if component in published else "-"
        lines.append(f"{component:<13}{mine:>12}{theirs:>14}")
    return "\n".join(lines)
