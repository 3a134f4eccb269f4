"""A bundle's file list for its manifest: each file's path, size and SHA-256 (engine/file_hash.py)."""

from __future__ import annotations

from pathlib import Path

from engine.bundle.manifest import FileEntry
from engine.file_hash import file_sha256


def file_entries(root: Path) -> tuple[FileEntry, ...]:
    """An entry for every file below `root` (sorted, paths relative with forward slashes)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return tuple(FileEntry(path=p.relative_to(root).as_posix(), sha256=file_sha256(p), size=p.stat().st_size)
                 for p in files)
