"""A tempo written in the prompt ("funky slap bass, 100 bpm", "100bpm", "100 BPM"): found, and taken out of
a file name. Pure text, no Qt.

Why the app reads it: the model hears "100 bpm" as words, but the loop is fitted to the Tempo box's grid;
when the two disagree the producer must choose before generating (the panel offers the choice), and the
exported name must carry one tempo, the one rendered (`funky-slap-bass-100-bpm_120bpm_...` let a DAW that
reads tempo from names pick either)."""

from __future__ import annotations

import re

MIN_PROMPT_BPM, MAX_PROMPT_BPM = 40.0, 240.0  # the Tempo box's range: a number outside it is not a tempo

# A number, then "bpm" (any case), with at most a space or a hyphen between: "100 bpm", "100bpm", "92.5-BPM".
TEMPO_PHRASE = re.compile(r"(?<![\w.])(\d{2,3}(?:\.\d+)?)[\s-]?bpm\b", re.IGNORECASE)


def tempo_in_prompt(prompt: str) -> float | None:
    """The first tempo the prompt names within the Tempo box's range, or None."""
    for match in TEMPO_PHRASE.finditer(prompt):
        bpm = float(match.group(1))
        if MIN_PROMPT_BPM <= bpm <= MAX_PROMPT_BPM:
            return bpm
    return None


def without_tempo(prompt: str) -> str:
    """The prompt with every tempo phrase taken out (for a file name that states the rendered tempo itself)."""
    return TEMPO_PHRASE.sub(" ", prompt)
