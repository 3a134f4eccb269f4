"""Published bundles in `riffstudio model get`: a Hub repository holding a bundle (manifest.json at its root, as
`riffstudio model publish` makes) is taken as it is, with no conversion.

The manifest is the authority. It is fetched first (checked against the Hub's own hash) and read; every file it
lists must be in the repository with the size it gives and, for an LFS file, the sha256 it gives, before the
first byte of the rest is fetched: a repository that disagrees with its manifest is one line. The files come
through download.py (resumable, each checked against the Hub's hash) into the downloads folder, every one is
then hashed against the manifest (engine.bundle's verification), and the bundle moves into place in one step
(engine/atomic.py). Files of the repository the manifest does not list (its README.md) are not fetched.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from engine.atomic import atomic_path
from engine.bundle.build import check_bundle_out
from engine.bundle.bundle import Bundle
from engine.bundle.manifest import MANIFEST_NAME, Manifest
from engine.errors import InvalidInputError, ModelBundleError
from engine.model_get.download import DownloadPlan, RemoteFile, check_space, download, gigabytes, hub_errors
from engine.model_get.get import (
    GetPlan,
    GetSettings,
    Progress,
    downloads_folder,
    resolve_precision,
    same_disk,
)
from engine.model_get.installed import bundle_name, models_folder

# Of a published get's bar: the download, then hashing every file against the manifest, then the move.
FETCH_SHARE, CHECK_SHARE = 0.9, 0.09


class PublishedPlan(GetPlan):
    """A get of a published bundle: the download is the whole job (`precision` is the bundle's own)."""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "published": True}

    def describe(self) -> str:
        total = self.download.total_bytes
        resumed = f" ({gigabytes(self.remaining_bytes)} left)" if self.remaining_bytes < total else ""
        return (f"{self.source} ({self.download.commit[:8]}): a published {self.precision} bundle, {gigabytes(total)} "
                f"to download{resumed}, about {gigabytes(self.needed_bytes)} of disk needed, "
                f"{gigabytes(self.free_bytes)} free; no build: every file is checked against its manifest")


def repo_listing(repo_id: str, revision: str = "main"):
    """The repository's commit and files with their sizes and hashes (huggingface_hub's ModelInfo), in one request."""
    from huggingface_hub import HfApi

    with hub_errors(repo_id):
        return HfApi().model_info(repo_id, revision=revision, files_metadata=True)


def is_published_bundle(siblings) -> bool:
    """Whether a repository's files (ModelInfo.siblings) are a published bundle: manifest.json at the root."""
    return any(sibling.rfilename == MANIFEST_NAME for sibling in siblings or ())


def plan_published(repo_id: str, revision: str = "main", *, info=None) -> DownloadPlan:
    """The files of the published bundle `repo_id`: manifest.json and exactly the files it lists, each found in the
    repository with the manifest's size and (LFS files) sha256. Fetches manifest.json into the downloads folder."""
    return _plan(repo_id, revision, info)[0]


def _plan(repo_id: str, revision: str, info) -> tuple[DownloadPlan, Manifest]:
    info = info if info is not None else repo_listing(repo_id, revision)
    remote = {sibling.rfilename: sibling for sibling in info.siblings or ()}
    if MANIFEST_NAME not in remote:
        raise ModelBundleError(f"{repo_id} is not a published bundle (no {MANIFEST_NAME} at its root)")
    commit = str(info.sha)
    first = DownloadPlan(repo_id=repo_id, commit=commit, files=(_remote_file(remote[MANIFEST_NAME]),))
    folder = published_folder(first)
    download(first, folder)
    try:
        manifest = Manifest.read(folder)
    except ModelBundleError as error:
        raise ModelBundleError(f"the bundle published at {repo_id} cannot be used: {error}") from None
    files = [first.files[0]]
    for entry in manifest.files:
        _check_path(repo_id, entry.path)
        sibling = remote.get(entry.path)
        if sibling is None:
            raise ModelBundleError(f"the bundle published at {repo_id} is incomplete: its manifest lists {entry.path}, "
                                   "which the repository lacks; publish it again")
        file = _remote_file(sibling)
        if file.size != entry.size or (file.sha256 is not None and file.sha256 != entry.sha256):
            what = "size" if file.size != entry.size else "sha256"
            raise ModelBundleError(f"the bundle published at {repo_id} disagrees with its manifest: {entry.path} has "
                                   f"another {what} on the Hub; nothing was downloaded, publish it again")
        files.append(file)
    return DownloadPlan(repo_id=repo_id, commit=commit, files=tuple(files)), manifest


def _remote_file(sibling) -> RemoteFile:
    lfs = getattr(sibling, "lfs", None)
    return RemoteFile(path=sibling.rfilename, size=int(sibling.size or 0), sha256=getattr(lfs, "sha256", None),
                      blob_id=getattr(sibling, "blob_id", None))


def _check_path(repo_id: str, path: str) -> None:
    """A manifest's file stays inside the bundle: relative, no `..`, forward slashes, not the manifest itself."""
    parts = PurePosixPath(path).parts
    if (not parts or path.startswith("/") or "\\" in path or ":" in path or ".." in parts or "." in parts
            or path == MANIFEST_NAME):
        raise ModelBundleError(f"the bundle published at {repo_id} names a file outside itself ({path!r}) in its "
                               "manifest: it is refused")


def published_folder(plan: DownloadPlan) -> Path:
    """Where a published bundle's files are fetched to (kept across runs, like any download)."""
    return downloads_folder() / plan.repo_id.replace("/", "--") / plan.commit


def plan_published_get(settings: GetSettings, info=None) -> PublishedPlan:
    """Plan the get of the published bundle `settings.source`: --precision must be auto or the bundle's own; the
    disk must hold what is left to fetch (and the bundle, where it is not moved on the same disk)."""
    source = settings.source
    if settings.precision != "auto":
        resolve_precision(settings.precision)  # an unknown one is refused as for any get
    if settings.out:
        check_bundle_out(Path(settings.out))  # before any byte is fetched
    plan, manifest = _plan(source, settings.revision, info)
    if settings.precision not in ("auto", manifest.precision):
        raise InvalidInputError(f"{source} is a published {manifest.precision} bundle, but {settings.precision} was "
                                f"asked for: use --precision auto (or {manifest.precision}), or build a "
                                f"{settings.precision} bundle from a diffusers repository")
    out = Path(settings.out) if settings.out else models_folder() / bundle_name(source, manifest.precision)
    check_bundle_out(out)
    folder = published_folder(plan)
    left = plan.remaining_bytes(folder)
    kept = plan.total_bytes if settings.keep_download else 0  # the bundle is a copy then, not a move
    if same_disk(folder, out):
        needed = left + kept
        free = check_space(needed, folder, f"getting {source}")
    else:
        needed = left + plan.total_bytes
        free = check_space(left, folder, f"downloading {source}")
        check_space(plan.total_bytes, out.parent, "placing the bundle")
    return PublishedPlan(source=source, precision=manifest.precision, out=out, download=plan, folder=folder,
                         remaining_bytes=left, needed_bytes=needed, free_bytes=free, estimated_build_seconds=0.0)


def get_published(plan: PublishedPlan, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
                  *, keep_download: bool = False) -> Path:
    """Fetch the published bundle `plan` describes, check every file against its manifest, and move it into place
    as the bundle at `plan.out` (whole, or not at all); returns it."""
    def report(stage: str, fraction: float, detail: dict | None = None) -> None:
        if progress:
            progress(stage, fraction, detail or {})

    def fetched(done: int, total: int, name: str) -> None:
        report(f"downloading {name}", FETCH_SHARE * done / max(total, 1), {"bytes": done, "total": total})

    download(plan.download, plan.folder, fetched, cancelled)
    bundle = Bundle(plan.folder, Manifest.read(plan.folder))
    try:
        bundle.verify(hashes=True, progress=lambda stage, done: report(stage, FETCH_SHARE + CHECK_SHARE * done))
    except ModelBundleError as error:
        shutil.rmtree(plan.folder, ignore_errors=True)  # ours: made by download() above; fetched again next time
        raise ModelBundleError(f"the bundle published at {plan.source} does not match its own manifest ({error}); "
                               "nothing was installed") from None
    place = shutil.copy2 if keep_download else shutil.move
    with atomic_path(plan.out, directory=True) as temporary:
        for remote in plan.download.files:
            target = temporary / remote.path
            target.parent.mkdir(parents=True, exist_ok=True)
            place(plan.folder / remote.path, target)
    if not keep_download:
        shutil.rmtree(plan.folder, ignore_errors=True)
    report("bundle in place", 1.0)
    return plan.out
