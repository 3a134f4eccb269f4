"""Where every benchmark's Markdown table goes: a committed file under results/, and the terminal."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def publish(lines: list[str], out: Path) -> Path:
    """Write the table to `out` (folders made as needed) and print it."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text, end="")
    return out
