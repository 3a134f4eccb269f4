"""Opening a bundle: the manifest read, the files checked, the paths the engine needs."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from engine.atomic import can_write_in, recover_replaced
from engine.bundle.manifest import TOKENIZER_NAME, FileEntry, Manifest, bundle_identity
from engine.errors import InvalidInputError, ModelBundleError
from engine.file_hash import file_sha256

if TYPE_CHECKING:
    from engine.sessions import SessionSettings

CACHE_FOLDER = "cache"


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest

    @property
    def precision(self) -> str:
        return self.manifest.precision

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_NAME

    def component_path(self, component: str) -> Path:
        return self.path / self.manifest.components[component].file

    def session_settings(self, base: SessionSettings,
                         explicit: Mapping[str, Any] | None = None) -> SessionSettings:
        """`base` with this bundle's options for its provider (and this CPU) applied, then the user's own."""
        from engine.sessions import SessionSettings

        options = self.manifest.session_options(base.provider)
        if not options and not explicit:
            return base
        try:
            settings = SessionSettings.from_dict({**base.to_dict(), **options})
        except InvalidInputError as error:
            raise ModelBundleError(f"{self.path} asks for session options this riffstudio does not know "
                                   f"({error}): update riffstudio or re-convert the bundle") from None
        return SessionSettings.from_dict({**settings.to_dict(), **explicit}) if explicit else settings

    @property
    def identity(self) -> str:
        """A short hash that names this exact bundle (its manifest), for sidecars and caches."""
        return bundle_identity(self.path)

    def summary(self) -> dict[str, str]:
        """Which bundle made a loop, for sidecars: enough to find it again and to know it is the same one."""
        m = self.manifest
        return {"path": str(self.path.resolve()), "identity": self.identity, "precision": m.precision,
                "source": m.source, "source_revision": m.source_revision}

    def cache_dir(self) -> Path:
        """Where compiled NPU contexts go: inside the bundle, or the user cache if the bundle is read-only."""
        inside, outside = self.cache_dirs()
        try:
            inside.mkdir(exist_ok=True)
        except OSError:
            pass
        else:
            if can_write_in(inside):  # a probe, not os.access: Windows' ignores the folder's ACL
                return inside
        outside.mkdir(parents=True, exist_ok=True)
        return outside

    def cache_dirs(self) -> tuple[Path, Path]:
        """The two places `cache_dir` may choose, the bundle's own first; neither is created (for readers)."""
        from platformdirs import user_cache_dir

        return self.path / CACHE_FOLDER, Path(user_cache_dir("riffstudio")) / "bundles" / self.identity

    def checked_file(self, relative: str) -> Path:
        """The bundle file `relative` (and the files named after it: a model's `.onnx.data`), their hashes
        checked against the manifest: what sessions and the tokenizer open. Hashed once per process while a
        file's size, mtime and inode stay the same, so a warm engine does not hash its 3.4 GB UNet again."""
        entries = [e for e in self.manifest.files if e.path == relative or e.path.startswith(relative + ".")]
        if not any(entry.path == relative for entry in entries):
            raise ModelBundleError(f"{self.path}: the manifest lists no file {relative}: re-convert the model")
        for entry in entries:
            _check_content(confined(self.path, entry.path), entry)
        return self.path / relative

    def verify(self, *, hashes: bool = True, progress: Callable[[str, float], None] | None = None) -> None:
        """Check every file the manifest lists: inside the bundle (no `..`, no links), present, the right size
        and (if `hashes`) content."""
        total = sum(entry.size for entry in self.manifest.files) or 1
        done = 0
        for relative in {spec.file for spec in self.manifest.components.values()} | {TOKENIZER_NAME}:
            if not any(entry.path == relative for entry in self.manifest.files):
                raise ModelBundleError(f"{self.path}: the manifest names {relative} but does not list it among "
                                       "its files: the bundle is damaged, re-convert the model")
        for entry in self.manifest.files:
            path = confined(self.path, entry.path)
            if not path.is_file():
                raise ModelBundleError(f"bundle file {entry.path} is missing from {self.path}: "
                                       "re-convert the model or copy the whole bundle folder again")
            if path.stat().st_size != entry.size:
                raise ModelBundleError(f"bundle file {entry.path} has {path.stat().st_size} bytes, the manifest "
                                       f"says {entry.size}: the copy is damaged, re-convert or copy it again")
            if hashes:
                _check_content(path, entry)
            done += entry.size
            if progress:
                progress(f"checking {entry.path}", done / total)


# Bundle files whose hash matched in this process, by (resolved path, size, mtime_ns, inode) -> sha256.
_VERIFIED: dict[tuple[str, int, int, int], str] = {}


def _check_content(path: Path, entry: FileEntry) -> None:
    """`path` holds the bytes `entry` names (its size and SHA-256), or ModelBundleError; a file already
    checked in this process and unchanged since (size, mtime, inode) is not hashed again."""
    stat = path.stat()
    seen = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if _VERIFIED.get(seen) == entry.sha256:
        return
    if stat.st_size != entry.size or file_sha256(path) != entry.sha256:
        raise ModelBundleError(f"bundle file {entry.path} was altered (sha256 differs from the manifest): "
                               "re-convert the model or copy the bundle again")
    _VERIFIED[seen] = entry.sha256


def confined(root: Path, relative: str) -> Path:
    """`root / relative`, refused unless it stays inside the bundle: a relative path without `..`, and no
    symbolic link on the way (a manifest naming `../evil_unet.onnx`, or a link to a file elsewhere, would
    make us load what the bundle's hashes never covered)."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative or ":" in relative:
        raise ModelBundleError(f"{root}: the manifest names {relative!r}, outside the bundle: the bundle is not "
                               "trustworthy, get it again")
    path = root
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise ModelBundleError(f"{root}: {relative} is a symbolic link; a bundle holds its own files: copy "
                                   "the bundle folder without links")
    return path


def open_bundle(path: str | os.PathLike[str], *, precision: str | None = None, hashes: bool = False) -> Bundle:
    """Open and check a bundle. Sizes are always checked; full hashes when `hashes` (slow on big UNets)."""
    recover_replaced(path)  # a replacement killed half-way: the old bundle comes back
    bundle = Bundle(Path(path), Manifest.read(Path(path)))
    if precision is not None and bundle.precision != precision:
        raise ModelBundleError(f"{path} is a {bundle.precision} bundle, but {precision} was asked for: use a "
                               f"bundle made with `riffstudio model convert --precision {precision}`")
    bundle.verify(hashes=hashes)
    return bundle
