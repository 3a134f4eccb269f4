"""The bundles in the models folder, as the app lists them: each folder holding a `manifest.json`, read as plain
JSON. The desktop app's window imports this, so it needs neither ONNX Runtime nor the engine's bundle code
(`engine.bundle` opens and verifies bundles; listing only reads what each says it is).

`models_folder()` and `bundle_name()` say where `riffstudio model get` puts a bundle and how it names it when
no --out is given (engine.model_get.get uses them; that module imports the whole build, for the child process
only).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidInputError, reason

MANIFEST_NAME = "manifest.json"  # engine.bundle.manifest's name; not imported (see the docstring)
PRECISIONS = ("fp32", "int8", "qnn")


@dataclass(frozen=True)
class InstalledBundle:
    path: Path
    precision: str  # "" when the manifest cannot be read
    source: str  # a Hub id or the folder it was made from
    created: str  # ISO 8601 (UTC), as the manifest has it
    size_bytes: int  # every file of the folder

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def usable(self) -> bool:
        """Its manifest names a known precision (whether its files are whole is the engine's check)."""
        return self.precision in PRECISIONS


def models_folder() -> Path:
    """Where bundles live by default: the user data folder's `models/`."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("riffstudio", appauthor=False)) / "models"


def bundle_name(source: str, precision: str) -> str:
    """`model get`'s folder name for `source` at `precision`."""
    name = source.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or "model"
    return f"{name}-{precision}"


def list_bundles(folder: Path) -> list[InstalledBundle]:
    """Every bundle directly inside `folder`, newest first. Hidden folders (a bundle being written, see
    engine/atomic.py) are left out; a folder whose manifest cannot be read is listed with precision ""."""
    folder = Path(folder)
    try:
        children = [child for child in folder.iterdir() if not child.name.startswith(".")]
    except OSError:
        return []
    found = []
    for child in children:
        manifest = child / MANIFEST_NAME
        if child.is_symlink() or not child.is_dir() or not manifest.is_file():
            continue
        data = _read_manifest(manifest)
        found.append((manifest.stat().st_mtime, InstalledBundle(
            path=child, precision=_text(data, "precision"), source=_text(data, "source"),
            created=_text(data, "created"), size_bytes=folder_size(child))))
    found.sort(key=lambda item: (item[1].created, item[0]), reverse=True)
    return [bundle for _, bundle in found]


def newest_bundle(folder: Path) -> InstalledBundle | None:
    """The newest usable bundle of `folder` (what the app runs when no bundle is chosen), or None."""
    return next((bundle for bundle in list_bundles(folder) if bundle.usable), None)


def remove_bundle(path: Path, folder: Path) -> None:
    """Delete the bundle at `path`: only a folder directly inside `folder` that holds a manifest.json."""
    path, folder = Path(path), Path(folder)
    if (path.is_symlink() or not path.is_dir() or path.resolve().parent != folder.resolve()
            or not (path / MANIFEST_NAME).is_file()):
        raise InvalidInputError(f"{path} is not a model bundle in {folder}: nothing was removed")
    try:
        shutil.rmtree(path)
    except OSError as error:
        raise InvalidInputError(f"could not remove all of {path} ({reason(error, 80)}): is the model in use? "
                                "Close riffstudio and delete the folder") from None


def folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def size_text(size: int) -> str:
    """A size as producers read it: 1.2 GB, 340 MB, 12 KB."""
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    if size >= 1e6:
        return f"{size / 1e6:.0f} MB"
    return f"{max(size, 0) / 1e3:.0f} KB"


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(data: dict, key: str) -> str:
    value = data.get(key, "")
    return value if isinstance(value, str) else ""
