"""The session tempo from Ableton Link peers on the local network (`--bpm link`).

Link comes from `aalink` (GPLv3), installed only with the optional `link` extra
(`pip install 'riffstudio[link]'`): never a dependency of the MIT app. Joining a session, we wait a
moment for peers; with none, one line says so and asks for a number instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.errors import InvalidInputError

WAIT_S = 1.5
_NO_PEERS = ("no Ableton Link peers answered within {wait:g} s: start Link in your DAW (same network), "
             "or give the tempo as a number, e.g. --bpm 120")


def session_tempo(wait_s: float = WAIT_S, *, link_factory: Callable[[float], Any] | None = None) -> float:
    """The Link session's tempo in bpm. `link_factory(bpm)` makes the Link object (aalink.Link by default:
    anything with `enabled`, `num_peers` and `tempo`); InvalidInputError when Link is missing or alone."""
    if link_factory is None:
        try:
            from aalink import Link
        except ImportError:
            raise InvalidInputError("--bpm link needs Ableton Link support: pip install 'riffstudio[link]' (aalink, "
                                    "GPLv3), or give the tempo as a number, e.g. --bpm 120") from None
        link_factory = Link
    import asyncio

    return asyncio.run(_ask(link_factory, wait_s))


async def _ask(link_factory: Callable[[float], Any], wait_s: float) -> float:
    """aalink's Link lives on a running asyncio loop."""
    import asyncio

    link = link_factory(120.0)
    link.enabled = True
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if link.num_peers > 0:
                await asyncio.sleep(0.1)  # the session's tempo arrives with the peer
                return float(link.tempo)
            await asyncio.sleep(0.05)
        raise InvalidInputError(_NO_PEERS.format(wait=wait_s))
    finally:
        link.enabled = False
