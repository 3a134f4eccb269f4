"""File hashing for bundles: streamed, so a 3.4 GB UNet never sits in memory twice."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.bundle.manifest import FileEntry

CHUNK = 8 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(root: Path) -> tuple[FileEntry, ...]:
    """An entry for every file below `root` (sorted, paths relative with forward slashes)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return tuple(FileEntry(path=p.relative_to(root).as_posix(), sha256=sha256_file(p), size=p.stat().st_size)
                 for p in files)
