"""`riffstudio model get`: from a source to a bundle the engine runs, in one step and without torch.

SOURCE is a Hugging Face repository in the diffusers layout (riffusion's own by default) or a local
diffusers folder. A Hub source is planned first (which files, how many bytes), its disk space checked
against what the whole get will use, then downloaded (resumable, every file checked) into the user
cache and built into the bundle there; the download is removed once the bundle is in place unless
asked to keep it. The bundle goes into the models folder unless `out` says otherwise.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.bundle.build import check_bundle_out, check_qnn_width
from engine.bundle.manifest import PRECISIONS
from engine.errors import InvalidInputError
from engine.model_get.architecture import SD15_CONFIGS
from engine.model_get.bundle_build import BuildSettings, build_bundle
from engine.model_get.calibration import CalibrationPlan, check_calibration_images
from engine.model_get.download import (
    DEFAULT_REPO,
    DownloadPlan,
    check_space,
    download,
    gigabytes,
    is_hub_id,
    plan_download,
)
from engine.model_get.installed import bundle_name, models_folder

PRECISION_CHOICES = ("auto", *PRECISIONS)
SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")
# A bundle's size per byte of fp32 weights (SD 1.5: 4.3 GB fp32 -> int8 1.2 GB, qnn 1.1 GB), to check the
# disk before the first byte: the fp32 models are also written once as the quantiser's input.
BUNDLE_BYTES_PER_FP32_BYTE = {"fp32": 1.0, "int8": 0.3, "qnn": 0.3}

# Seconds to build a bundle here per GB of fp32 weights, measured at full SD 1.5 size on a 2-core EPYC
# (tests/benchmarks/results/model-get-full.md); shown before a get starts, so a rough figure.
BUILD_SECONDS_PER_FP32_GB = {"fp32": 10.0, "int8": 45.0, "qnn": 300.0}

# A single checkpoint file's content id reads its size and first and last 8 MiB, not gigabytes.
FINGERPRINT_BYTES = 8 << 20

# (stage label, overall fraction, detail): detail carries bytes for the download stage.
Progress = Callable[[str, float, dict], None]
DOWNLOAD_SHARE = 0.7  # of the bar, when downloading (at 50 MB/s a 2 GB download and the build take alike)


@dataclass(frozen=True)
class GetSettings:
    source: str = DEFAULT_REPO
    precision: str = "auto"
    out: Path | None = None  # default: the models folder
    revision: str = "main"
    keep_download: bool = False
    qnn_width: int = 512
    # A single checkpoint file's architecture: a diffusers folder's configs and tokenizer (default: SD 1.5's).
    config: Path | None = None
    calibration_images: int = CalibrationPlan.images


def downloads_folder() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("riffstudio", appauthor=False)) / "downloads"


def resolve_precision(precision: str) -> str:
    """`auto`: qnn where the QNN provider sees a Snapdragon NPU, int8 elsewhere."""
    if precision not in PRECISION_CHOICES:
        raise InvalidInputError(f"unknown precision {precision!r}: use one of {', '.join(PRECISION_CHOICES)}")
    if precision != "auto":
        return precision
    from engine.sessions import npu_present

    return "qnn" if npu_present() else "int8"


def checked_precision(settings: GetSettings) -> str:
    """The precision `settings` ask for (auto resolved), once their numbers are checked."""
    check_qnn_width(settings.qnn_width)
    check_calibration_images(settings.calibration_images)
    return resolve_precision(settings.precision)


@dataclass(frozen=True)
class GetPlan:
    """What a get from the Hub will take, known before the first byte (the app's "Get Riffusion (N GB)")."""

    source: str
    precision: str
    out: Path
    download: DownloadPlan
    folder: Path  # where the download goes
    remaining_bytes: int
    needed_bytes: int  # free disk the whole get uses
    free_bytes: int
    estimated_build_seconds: float

    def to_dict(self) -> dict:
        return {"source": self.source, "precision": self.precision, "out": str(self.out),
                "commit": self.download.commit, "total_bytes": self.download.total_bytes,
                "remaining_bytes": self.remaining_bytes, "needed_bytes": self.needed_bytes,
                "free_bytes": self.free_bytes, "estimated_build_seconds": round(self.estimated_build_seconds)}

    def describe(self) -> str:
        total = self.download.total_bytes
        resumed = f" ({gigabytes(self.remaining_bytes)} left)" if self.remaining_bytes < total else ""
        return (f"{self.source} ({self.download.commit[:8]}): {gigabytes(total)} to download"
                f"{resumed}, about {gigabytes(self.needed_bytes)} of disk needed, {gigabytes(self.free_bytes)} free; "
                f"the {self.precision} bundle then takes about {max(1, round(self.estimated_build_seconds / 60))} "
                "min to build here")


def plan_get(settings: GetSettings) -> GetPlan:
    """Plan a get from the Hub: the files, the bytes left, the disk it needs (refused in one line when it is
    not there) and the build's duration."""
    precision = checked_precision(settings)
    source = settings.source
    if not is_hub_id(source):
        raise InvalidInputError(f"{source} is neither a folder nor a Hugging Face id (like {DEFAULT_REPO}): check it")
    out = Path(settings.out) if settings.out else models_folder() / bundle_name(source, precision)
    check_bundle_out(out)
    # A published bundle (manifest.json at the repository's root, as `model publish` makes) is taken as it is.
    from engine.model_get.published import is_published_bundle, plan_published_get, repo_listing

    info = repo_listing(source, settings.revision)
    if is_published_bundle(info.siblings):
        return plan_published_get(settings, info)
    plan = plan_download(source, settings.revision, prefer_fp16=precision != "fp32", info=info)
    folder = downloads_folder() / source.replace("/", "--") / plan.commit
    fp32_bytes = _fp32_bytes(plan)
    bundle_bytes = int(fp32_bytes * BUNDLE_BYTES_PER_FP32_BYTE[precision])
    scratch = fp32_bytes if precision != "fp32" else 0
    left = plan.remaining_bytes(folder)
    needed = left + bundle_bytes + scratch
    # One disk check when the download and the bundle share a disk, else one each.
    if same_disk(folder, out):
        free = check_space(needed, folder, f"getting {source}")
    else:
        free = check_space(left, folder, f"downloading {source}")
        check_space(bundle_bytes + scratch, out.parent, f"building the {precision} bundle")
    return GetPlan(source=source, precision=precision, out=out, download=plan, folder=folder, remaining_bytes=left,
                   needed_bytes=needed, free_bytes=free,
                   estimated_build_seconds=BUILD_SECONDS_PER_FP32_GB[precision] * fp32_bytes / 1e9)


def get_model(settings: GetSettings, progress: Progress | None = None,
              say: Callable[[str], None] = print, cancelled: Callable[[], bool] | None = None) -> Path:
    """Make the bundle `settings` describe; returns its folder. Every check comes before the first byte."""
    local = Path(settings.source).expanduser()
    if settings.config is not None and not local.is_file():
        raise InvalidInputError("--config only applies to a single .ckpt or .safetensors file: a diffusers folder or "
                                "a Hugging Face id carries its own configs")
    if local.is_dir():
        precision = checked_precision(settings)
        out = Path(settings.out) if settings.out else models_folder() / bundle_name(settings.source,
                                                                                             precision)
        check_bundle_out(out)
        return _build(local, out, precision, settings, source=str(local.resolve()),
                      revision=folder_revision(local), progress=progress, say=say, start=0.0)
    if local.is_file():
        if local.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise InvalidInputError(f"{settings.source} is not a model: give a diffusers folder, a .ckpt or "
                                    f".safetensors checkpoint, or a Hugging Face id like {DEFAULT_REPO}")
        precision = checked_precision(settings)
        out = Path(settings.out) if settings.out else models_folder() / bundle_name(local.stem, precision)
        check_bundle_out(out)
        # A single file holds weights only: the architecture, configs and tokenizer are SD 1.5's (riffusion's)
        # unless a diffusers folder says otherwise.
        config = Path(settings.config) if settings.config else SD15_CONFIGS
        return _build(config, out, precision, settings, source=str(local.resolve()),
                      revision=file_revision(local, config), progress=progress, say=say, start=0.0,
                      weights_file=local)
    plan = plan_get(settings)
    say(plan.describe())
    from engine.model_get.published import PublishedPlan, get_published

    if isinstance(plan, PublishedPlan):  # fetched and checked against its manifest; nothing to build
        return get_published(plan, progress, cancelled, keep_download=settings.keep_download)

    def fetched(done: int, total: int, name: str) -> None:
        if progress:
            progress(f"downloading {name}", DOWNLOAD_SHARE * done / max(total, 1), {"bytes": done, "total": total})

    download(plan.download, plan.folder, fetched, cancelled)
    bundle = _build(plan.folder, plan.out, plan.precision, settings, source=plan.source, revision=plan.download.commit,
                    progress=progress, say=say, start=DOWNLOAD_SHARE)
    if not settings.keep_download:
        shutil.rmtree(plan.folder, ignore_errors=True)  # ours: made by download() above
    return bundle


def discard_download(source: str) -> list[Path]:
    """Remove what earlier gets of `source` downloaded (complete and partial files): the app's Cancel."""
    folder = downloads_folder() / source.replace("/", "--")
    removed = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    shutil.rmtree(folder, ignore_errors=True)  # ours: only download() writes below downloads_folder()
    return removed


def _build(folder: Path, out: Path, precision: str, settings: GetSettings, *, source: str, revision: str,
           progress: Progress | None, say: Callable[[str], None], start: float,
           weights_file: Path | None = None) -> Path:
    def built(label: str, fraction: float) -> None:
        if progress:
            progress(label, start + (1 - start) * fraction, {})

    build_bundle(BuildSettings(folder=folder, out=out, precision=precision, qnn_width=settings.qnn_width,
                               source=source, revision=revision, weights_file=weights_file,
                               calibration_images=settings.calibration_images), progress=built, say=say)
    return out


def _fp32_bytes(plan: DownloadPlan) -> int:
    """The weights' size as fp32 (an fp16 download doubles)."""
    return sum(f.size * (2 if ".fp16." in f.path else 1) for f in plan.files
               if f.path.endswith((".safetensors", ".bin")))


def same_disk(a: Path, b: Path) -> bool:
    def device(path: Path) -> int:
        while not path.exists():
            path = path.parent
        return path.stat().st_dev

    return device(Path(a)) == device(Path(b))


def folder_revision(folder: Path) -> str:
    """A content id for a local folder: every file's path and size, the configs' bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes() if path.suffix in (".json", ".txt") else str(path.stat().st_size).encode())
    return "local-" + digest.hexdigest()[:16]


def file_revision(path: Path, config: Path) -> str:
    """A content id for a single checkpoint file and its architecture, cheap on a 4-15 GB file.

    Size plus the first and last 8 MiB (the header or pickle index and the last tensors) tell two
    checkpoints apart in practice without reading gigabytes; the configs' bytes are hashed in full.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as file:
        digest.update(file.read(FINGERPRINT_BYTES))
        file.seek(max(0, size - FINGERPRINT_BYTES))
        digest.update(file.read(FINGERPRINT_BYTES))
    digest.update(folder_revision(config).encode())
    return "file-" + digest.hexdigest()[:16]
