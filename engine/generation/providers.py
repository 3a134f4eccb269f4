"""`--provider auto|cpu|qnn`: which execution provider a job runs on, and why, in one sentence; and the one
recipe that opens a model bundle on it (the engine, batch in-process and the CLI all call `open_generator`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from engine.bundle import Bundle, open_bundle
from engine.choices import PROVIDERS
from engine.errors import InvalidInputError, ProviderError
from engine.generation.pipeline import LoopGenerator
from engine.sessions import SessionSettings, npu_present, qnn_available


def choose_provider(choice: str, bundle: Bundle,
                    base: SessionSettings | None = None) -> tuple[SessionSettings, str]:
    """(session settings, the reason to show the user). `auto` takes the NPU when it and a qnn bundle are here."""
    base = base or SessionSettings()
    if choice not in PROVIDERS:
        raise InvalidInputError(f"unknown provider {choice!r}: use one of {', '.join(PROVIDERS)}")
    available, why_not = qnn_available()
    if choice == "cpu":
        return replace(base, provider="cpu"), "CPU, as asked"
    if choice == "qnn":
        if bundle.precision != "qnn":
            raise ProviderError(f"{bundle.path} is a {bundle.precision} bundle; the NPU needs one made with "
                                "`riffstudio model convert --precision qnn`")
        if not available:
            raise ProviderError(f"the NPU is not available here ({why_not}): use --provider cpu")
        device = "NPU (QNN)" if npu_present() else "QNN's HTP simulator (no NPU here)"
        return replace(base, provider="qnn"), f"{device}, as asked"
    if bundle.precision == "qnn" and available and npu_present():
        return replace(base, provider="qnn"), "NPU (QNN): a qnn bundle and a Snapdragon NPU are here"
    if bundle.precision == "qnn" and available:
        # The QNN provider lists a device that is not an NPU (the HTP simulator of the x64 builds, 100x slower
        # than the CPU path): never taken by itself.
        return replace(base, provider="cpu"), ("CPU: the bundle is for the NPU but QNN offers no NPU here, only "
                                               "the HTP simulator (--provider qnn runs it anyway)")
    if bundle.precision == "qnn":
        return replace(base, provider="cpu"), f"CPU: the bundle is for the NPU but {why_not}"
    if available:  # qnn_available's second value is then the device QNN offers, not a reason
        reason = "the NPU needs a qnn bundle" if npu_present() else "no NPU here"
    else:
        reason = why_not or "no Snapdragon NPU here"
    return replace(base, provider="cpu"), f"CPU: {bundle.precision} bundle ({reason})"


def open_generator(bundle: str | os.PathLike[str] | Bundle, provider: str = "auto",
                   session_options: Mapping[str, Any] | None = None, *,
                   base: SessionSettings | None = None) -> tuple[LoopGenerator, str]:
    """The bundle (a path or an open Bundle) opened on the provider asked for, and the sentence saying which
    provider runs and why. session_options: the NPU's options (e.g. {"htp_performance_mode": "burst"})."""
    if not isinstance(bundle, Bundle):
        bundle = open_bundle(bundle)
    session_settings, why = choose_provider(provider, bundle, base)
    return LoopGenerator(bundle, session_settings, session_options=dict(session_options or {}) or None), why
