"""The app icon, drawn with Pillow at build time (no binary in the repository): spectrogram bars rising
like a loop's energy over a dark tile. `python packaging/icon.py OUT.ico` writes it; build.py calls it."""

from __future__ import annotations

import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256)
BARS = (0.35, 0.6, 0.9, 0.55, 0.75, 0.4, 0.65)


def draw(size: int = 256):
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 5, fill=(24, 26, 33, 255))
    margin, gap = size * 0.16, size * 0.03
    width = (size - 2 * margin - gap * (len(BARS) - 1)) / len(BARS)
    for index, height in enumerate(BARS):
        left = margin + index * (width + gap)
        top = size - margin - height * (size - 2 * margin)
        pen.rounded_rectangle((left, top, left + width, size - margin), radius=max(1, int(width / 3)),
                              fill=(255, 140 + 12 * index, 60, 255))
    return image


def write_icon(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw().save(path, format="ICO", sizes=[(s, s) for s in SIZES])
    return path


if __name__ == "__main__":
    write_icon(Path(sys.argv[1]))
