"""File names for loops, safe on Windows, macOS and Linux, and never two results on one name.

    loop_name("funky slap bass", bpm=100, bars=2, seed=7)  -> "funky-slap-bass_100bpm_2bars_seed7"
    loop_name("funky slap bass", bpm=100, bars=2, key="Am", seed=7)  -> "..._100bpm_2bars_Amin_seed7"
    unique_path(folder, stem, ".wav", taken=set())          -> a path no file (and no earlier pick) has

The BPM goes into the name (Ableton Live, and sample packs, read it from there), and the key as sample packs
write it ("Amin", "F#maj": plugin/musical_key's spelling), given only when the detector found one. Names are Unicode
NFC (macOS stores NFD; the same prompt must give the same name everywhere), hold letters, digits
and `-_.` only (no path separators, Windows' forbidden `<>:"/\\|?*`, controls or bidirectional marks
that make a name display reversed), never a Windows reserved device name (CON, NUL, COM1, LPT1...),
never start or end with a dot or a space, and stay well under every file system's 255-byte limit
(with room for the atomic writer's temporary name). Uniqueness is case-insensitive, as on Windows
and macOS.
"""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from plugin.musical_key import MusicalKey

MAX_STEM_BYTES = 120  # UTF-8 bytes of the prompt part: the whole name stays far below 255
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
             *(f"COM{d}" for d in "0123456789¹²³"), *(f"LPT{d}" for d in "0123456789¹²³")}
_SEPARATORS = re.compile(r"[\s\-_.]+")


def slug(text: str, *, fallback: str = "loop", max_bytes: int = MAX_STEM_BYTES) -> str:
    """A safe, readable file-name part from free text (a prompt, a preset name)."""
    # Linear in the text and stopping early: a name keeps at most max_bytes bytes, so once twice that many
    # characters are kept (separators collapsed; NFC and lower() change lengths a little) the rest cannot
    # show. (An 18 MB prompt took minutes when the cut went one character at a time.)
    limit = 2 * max_bytes + 16
    kept: list[str] = []
    for chunk_start in range(0, len(text := str(text)), 4096):
        for char in unicodedata.normalize("NFKC", text[chunk_start:chunk_start + 4096]):
            category = unicodedata.category(char)
            if category[0] in "LN" or char in "-_.":
                kept.append(char)
            elif kept and kept[-1] != " ":  # spaces, punctuation, symbols (emoji), controls, format marks
                kept.append(" ")
        if len(kept) > limit:
            break
    words = [word for word in _SEPARATORS.split("".join(kept[:limit])) if word]
    result = "-".join(words).strip(". -_").lower()
    result = unicodedata.normalize("NFC", result)
    result = result.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")  # whole characters only
    result = result.strip(". -_")
    if not result:
        result = fallback
    if result.split(".")[0].upper() in _RESERVED:
        result = f"{result}-"
    return result


def loop_name(prompt: str, *, bpm: float | None = None, bars: float | None = None, seed: int | None = None,
              beats: float | None = None, key: str | None = None) -> str:
    """The file stem for a loop: prompt, tempo, length, key and seed.

    key: any spelling MusicalKey.parse reads ("Am", "A minor", "Amin"), written "Amin"; None leaves it out
    (pass a key only when the detector is confident: KeyEstimate.has_key, a fit record's non-empty key)."""
    parts = [slug(prompt)]
    if bpm is not None:
        parts.append(f"{_number(bpm)}bpm")
    if bars is not None:
        parts.append(f"{_number(bars)}bar" + ("" if float(bars) == 1 else "s"))
    elif beats is not None:
        parts.append(f"{_number(beats)}beat" + ("" if float(beats) == 1 else "s"))
    if key is not None:
        parts.append(MusicalKey.parse(key).name)
    if seed is not None:
        parts.append(f"seed{int(seed)}")
    return "_".join(parts)


def unique_path(folder: str | os.PathLike[str], stem: str, suffix: str, *, taken: set[str] | None = None,
                extra_suffixes: tuple[str, ...] = (".json",)) -> Path:
    """folder/stem+suffix, or stem-2, stem-3... when that name (or its sidecar's, compared without case)
    is already on disk or in `taken`; the name chosen is added to `taken`."""
    folder = Path(folder)
    taken = taken if taken is not None else set()
    existing = {name.casefold() for name in os.listdir(folder)} if folder.is_dir() else set()
    number = 1
    while True:
        candidate = stem if number == 1 else f"{stem}-{number}"
        names = [f"{candidate}{ext}".casefold() for ext in (suffix, *extra_suffixes)]
        if not any(name in existing or name in taken for name in names):
            taken.update(names)
            return folder / f"{candidate}{suffix}"
        number += 1


RESERVED_MARKER = ".riffstudio-reserved"


@contextlib.contextmanager
def reserved_path(folder: str | os.PathLike[str], stem: str, suffix: str, *,
                  extra_suffixes: tuple[str, ...] = (".json",)) -> Iterator[Path]:
    """`unique_path`, held while the block writes it: two writers at once (the app's exports run on threads,
    two apps may share an export folder) never pick one name, as checking and later renaming alone allowed.

    The name's stem is reserved by a hidden marker file created exclusively (`.STEM.riffstudio-reserved`);
    stems with a marker count as taken; the marker goes when the block ends (a killed writer's marker only
    keeps its stem unused)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    while True:
        for marker in folder.glob(f".*{RESERVED_MARKER}"):
            held = marker.name[1:-len(RESERVED_MARKER)]
            taken.update(f"{held}{ext}".casefold() for ext in (suffix, *extra_suffixes))
        path = unique_path(folder, stem, suffix, taken=taken, extra_suffixes=extra_suffixes)
        marker = folder / f".{path.stem}{RESERVED_MARKER}"
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue  # another writer took it between our look and our claim
        if any((folder / f"{path.stem}{ext}").exists() for ext in (suffix, *extra_suffixes)):
            marker.unlink(missing_ok=True)  # written (and released) by another meanwhile: look again
            continue
        try:
            yield path
        finally:
            marker.unlink(missing_ok=True)
        return


def is_safe_name(name: str) -> bool:
    """What every name made here satisfies (used by the tests and by batch before writing)."""
    if not name or name != unicodedata.normalize("NFC", name) or len(name.encode("utf-8")) > 200:
        return False
    if name[0] in ". " or name[-1] in ". ":
        return False
    if any(char in '<>:"/\\|?*' or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in name):
        return False
    return name.split(".")[0].upper() not in _RESERVED


def _number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}".replace(".", "p")
