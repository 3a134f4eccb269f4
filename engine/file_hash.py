"""The one SHA-256 of a file: bundles' manifests, QNN context keys and loops' sidecars all name files by it.

Streamed by `hashlib.file_digest` (Python 3.11), so a 3.4 GB UNet never sits in memory.
"""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
