"""Atomic writes: a file or folder appears complete under its final name, or not at all.

Writes go to a hidden temporary name in the destination folder (same file system, so the final
`os.replace` is atomic) and are renamed on success; on any exception the temporary is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to `final` (replacing it)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}."
    if directory:
        temp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".partial" + final.suffix, dir=final.parent)
        os.close(fd)
        temp = Path(name)
    # mkstemp/mkdtemp make private (0600/0700) entries; give the result the permissions a plain write would.
    os.chmod(temp, (0o777 if directory else 0o666) & ~_umask())
    try:
        yield temp
        if directory and final.exists():
            # A folder cannot be replaced atomically on every OS: move the old one aside first.
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(temp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temp, final)
    except BaseException:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(final: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(final) as temp:
        temp.write_bytes(data)
