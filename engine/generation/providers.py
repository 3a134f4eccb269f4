"""`--provider auto|cpu|qnn`: which execution provider a job runs on, and why, in one sentence."""

from __future__ import annotations

from dataclasses import replace

from engine.bundle import Bundle
from engine.errors import InvalidInputError, ProviderError
from engine.sessions import SessionSettings, qnn_available

PROVIDER_CHOICES = ("auto", "cpu", "qnn")


def choose_provider(choice: str, bundle: Bundle,
                    base: SessionSettings | None = None) -> tuple[SessionSettings, str]:
    """(session settings, the reason to show the user). `auto` takes the NPU when it and a qnn bundle are here."""
    base = base or SessionSettings()
    if choice not in PROVIDER_CHOICES:
        raise InvalidInputError(f"unknown provider {choice!r}: use one of {', '.join(PROVIDER_CHOICES)}")
    available, why_not = qnn_available()
    if choice == "cpu":
        return replace(base, provider="cpu"), "CPU, as asked"
    if choice == "qnn":
        if bundle.precision != "qnn":
            raise ProviderError(f"{bundle.path} is a {bundle.precision} bundle; the NPU needs one made with "
                                "`riffstudio model convert --precision qnn`")
        if not available:
            raise ProviderError(f"the NPU is not available here ({why_not}): use --provider cpu")
        return replace(base, provider="qnn"), "NPU (QNN), as asked"
    if bundle.precision == "qnn" and available:
        return replace(base, provider="qnn"), "NPU (QNN): a qnn bundle and a QNN device are here"
    if bundle.precision == "qnn":
        return replace(base, provider="cpu"), f"CPU: the bundle is for the NPU but {why_not}"
    reason = "the NPU needs a qnn bundle" if available else why_not
    return replace(base, provider="cpu"), f"CPU: {bundle.precision} bundle ({reason})"
