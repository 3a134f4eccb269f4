"""The provider options `generate` and `interpolate` share, and the generator they open."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from engine.choices import PROVIDERS

if TYPE_CHECKING:
    from engine.generation.pipeline import LoopGenerator


def add_provider_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", choices=PROVIDERS, default="auto",
                        help="where to run: auto takes the NPU when a qnn bundle and the NPU are here")
    parser.add_argument("--npu-mode", metavar="MODE",
                        help="NPU performance mode (default: the bundle's, burst): sustained_high_performance "
                        "for long batches, balanced or power_saver on battery")


def open_generator(args: argparse.Namespace) -> LoopGenerator:
    """The bundle at `args.model` opened on the provider asked for, saying which one and why."""
    from engine.generation.providers import open_generator as open_on_provider

    generator, reason = open_on_provider(args.model, args.provider, npu_options(args))
    print(f"provider: {reason}", file=sys.stderr)
    return generator


def npu_options(args: argparse.Namespace) -> dict[str, str]:
    """--npu-mode as the session options a job carries (empty: the bundle's own mode)."""
    return {"htp_performance_mode": args.npu_mode} if getattr(args, "npu_mode", None) else {}
