"""Where every benchmark's Markdown table goes: a committed file under results/, and the terminal."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_line() -> str:
    """Which machine a table was measured on: the CPU, its int8-relevant features and the load.

    Results differ by 2x and more between this project's machines (AVX2-only vs AVX-512 VNNI), so
    every table says which one it came from."""
    import os

    from engine.cpu_features import cpu_info

    return f"CPU: {cpu_info().describe()}; load average {os.getloadavg()[0]:.1f}"


def publish(lines: list[str], out: Path) -> Path:
    """Write the table to `out` (folders made as needed) and print it."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text, end="")
    return out
