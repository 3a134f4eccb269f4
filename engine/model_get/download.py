"""The Hugging Face Hub download: only the files a bundle needs, resumable across restarts, every file checked.

Through huggingface_hub, the field's client, so Hub tokens (`hf auth login`, HF_TOKEN), mirrors
(HF_ENDPOINT) and HF_HUB_OFFLINE work as producers expect. Two of its gaps are closed here:

- Since 1.18 it downloads to a process-unique temporary and deletes it on failure, so a download killed
  mid-file (kill -9, a closed laptop, a dropped connection) starts over. We keep our own partial file
  (`.NAME.riffstudio-partial` beside where the file goes) and continue it with an HTTP Range.
- It checks a plain-HTTP download's size, never its content. We check every file before it is used:
  an LFS file against the sha256 the Hub reports, a small one against its git blob id. A damaged file is
  deleted and fetched once more; damaged again, it is one line.

Files go into a folder per repository and commit in the user cache; the bundle is built from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.atomic import replace
from engine.errors import CancelledError, InvalidInputError, ModelBundleError, reason

DEFAULT_REPO = "riffusion/riffusion-model-v1"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PARTIAL_SUFFIX = ".riffstudio-partial"
CHUNK = 1 << 20
# The configs and tokenizer of a diffusers Stable Diffusion folder (the tokenizer in either form).
CONFIG_FILES = ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                "unet/config.json", "vae/config.json")
TOKENIZER_FILES = ("tokenizer/tokenizer.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
                   "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json")
WEIGHT_FOLDERS = ("text_encoder", "unet", "vae")
WEIGHT_NAME = re.compile(r"^(model|diffusion_pytorch_model|pytorch_model)(\.fp16)?(-\d{5}-of-\d{5})?"
                         r"\.(safetensors|bin)(\.index\.json)?$")
# How the Hub fetches must look for a human doing it by hand (offline).
BY_HAND = ("model_index.json, scheduler/, text_encoder/, tokenizer/, unet/ and vae/ (each folder's configs "
           "and one weights file)")

DownloadProgress = Callable[[int, int, str], None]  # (bytes done, bytes in all, file being fetched)


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # git's blob id (sha1), for files kept in git itself


@dataclass(frozen=True)
class DownloadPlan:
    repo_id: str
    commit: str
    files: tuple[RemoteFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def weight_bytes(self) -> int:
        return sum(f.size for f in self.files if WEIGHT_NAME.match(f.path.rsplit("/", 1)[-1]))

    def remaining_bytes(self, folder: Path) -> int:
        """Bytes still to fetch into `folder` (complete files and partial ones count as fetched)."""
        left = 0
        for remote in self.files:
            final = Path(folder) / remote.path
            if final.is_file() and final.stat().st_size == remote.size:
                continue
            partial = partial_path(final)
            left += remote.size - (min(partial.stat().st_size, remote.size) if partial.is_file() else 0)
        return left


def is_hub_id(source: str) -> bool:
    return bool(HUB_ID.match(source)) and not source.startswith((".", "/", "~"))


def partial_path(final: Path) -> Path:
    """Where `final` grows until it is complete and checked: hidden, named after it, marked as ours."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


def plan_download(repo_id: str, revision: str = "main", *, prefer_fp16: bool = True, info=None) -> DownloadPlan:
    """The files of `repo_id` a bundle is made from: configs, tokenizer, one set of weights per model
    (safetensors before torch files; the fp16 variant where `prefer_fp16` and the repo has one: half the bytes,
    and int8/qnn models are quantised below fp16's precision anyway). `info`: the repository's listing
    (huggingface_hub's ModelInfo with files metadata) when the caller has it already."""
    from huggingface_hub import HfApi

    if info is None:
        with hub_errors(repo_id):
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    remote = {s.rfilename: s for s in info.siblings or ()}
    chosen = [name for name in (*CONFIG_FILES, *TOKENIZER_FILES) if name in remote]
    missing = [name for name in CONFIG_FILES if name not in remote]
    if not any(name in remote for name in ("tokenizer/tokenizer.json", "tokenizer/vocab.json")):
        missing.append("tokenizer/vocab.json")
    for folder in WEIGHT_FOLDERS:
        weights = _weights_of(folder, remote, prefer_fp16)
        if not weights:
            missing.append(f"{folder}/ weights")
        chosen += weights
    if missing:
        raise ModelBundleError(f"{repo_id} is not a Stable Diffusion model in the diffusers layout (it has no "
                               f"{missing[0]}): give a repository like {DEFAULT_REPO}")
    files = []
    for name in chosen:
        sibling = remote[name]
        lfs = getattr(sibling, "lfs", None)
        files.append(RemoteFile(path=name, size=int(sibling.size or 0), sha256=getattr(lfs, "sha256", None),
                                blob_id=getattr(sibling, "blob_id", None)))
    return DownloadPlan(repo_id=repo_id, commit=str(info.sha), files=tuple(files))


def _weights_of(folder: str, remote: dict, prefer_fp16: bool) -> list[str]:
    """One model folder's weight files in the plan's preference order, with a sharded set's index."""
    names = [n for n in remote if n.startswith(f"{folder}/") and WEIGHT_NAME.match(n[len(folder) + 1:])]
    variants = ("fp16", "") if prefer_fp16 else ("", "fp16")
    for kind in ("safetensors", "bin"):
        for variant in variants:
            picked = [n for n in names if (m := WEIGHT_NAME.match(n[len(folder) + 1:])) and m.group(4) == kind
                      and (m.group(2) or "") == (f".{variant}" if variant else "")]
            if any(not n.endswith(".index.json") for n in picked):
                return sorted(picked)
    return []


def download(plan: DownloadPlan, folder: Path, progress: DownloadProgress | None = None,
             cancelled: Callable[[], bool] | None = None) -> Path:
    """Fetch every file of `plan` into `folder` (kept across runs: partial files continue), each checked."""
    folder = Path(folder)
    done = plan.total_bytes - plan.remaining_bytes(folder)
    for remote in plan.files:
        final = folder / remote.path
        if final.is_file() and final.stat().st_size == remote.size:
            continue  # complete files were checked before they got their name
        final.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            before = done
            try:
                done = _fetch(plan, remote, final, done, progress, cancelled)
                break
            except _Damaged as damaged:
                done = before - damaged.had
                if attempt == 2:
                    raise ModelBundleError(f"{remote.path} from {plan.repo_id} arrived damaged twice ({damaged}): "
                                           "it was deleted; check your connection or mirror (HF_ENDPOINT) and "
                                           "run model get again") from None
    return folder


class _Damaged(Exception):
    def __init__(self, message: str, had: int) -> None:
        super().__init__(message)
        self.had = had


def _fetch(plan: DownloadPlan, remote: RemoteFile, final: Path, done: int, progress: DownloadProgress | None,
           cancelled: Callable[[], bool] | None) -> int:
    """One file into its partial (continued from where it stopped), checked, then renamed into place."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    partial = partial_path(final)
    have = partial.stat().st_size if partial.is_file() else 0
    if have > remote.size:
        partial.unlink()
        done, have = done - have, 0
    digest = _hasher(remote)
    if have:
        with partial.open("rb") as existing:  # the checked hash covers the bytes fetched before, too
            for block in iter(lambda: existing.read(8 * CHUNK), b""):
                digest.update(block)
    if have < remote.size:
        headers = build_hf_headers()
        headers["Accept-Encoding"] = "identity"
        if have:
            headers["Range"] = f"bytes={have}-"
        url = hf_hub_url(plan.repo_id, remote.path, revision=plan.commit)
        with hub_errors(plan.repo_id), get_session().stream("GET", url, headers=headers, follow_redirects=True,
                                                            timeout=30) as response:
            if response.status_code == 416:
                raise _Damaged("the server has fewer bytes than the Hub reported", have)
            hf_raise_for_status(response)
            if have and response.status_code != 206:  # the server ignored the Range: start again
                digest, done, have = _hasher(remote), done - have, 0
            with partial.open("ab" if have else "wb") as out, _cut_off(remote, have):
                for block in response.iter_bytes(CHUNK):
                    if cancelled is not None and cancelled():
                        raise CancelledError(f"download stopped; {partial.name} is kept, run model get again "
                                             "to continue it")
                    out.write(block)
                    digest.update(block)
                    have += len(block)
                    done += len(block)
                    if progress:
                        progress(done, plan.total_bytes, remote.path)
    if have != remote.size or not _matches(remote, digest):
        partial.unlink(missing_ok=True)
        raise _Damaged("size" if have != remote.size else "sha256" if remote.sha256 else "git blob id", have)
    replace(partial, final)
    return done


@contextlib.contextmanager
def _cut_off(remote: RemoteFile, had: int) -> Iterator[None]:
    """A transfer that breaks mid-file (a dropped connection, a closed laptop) as one line: what was kept."""
    try:
        yield
    except Exception as error:
        if isinstance(error, CancelledError) or not is_transport_error(error):
            raise
        raise ModelBundleError(f"downloading {remote.path} stopped ({reason(error, 80)}): run model get again, "
                               "it continues where it stopped") from None


def is_transport_error(error: BaseException) -> bool:
    return isinstance(error, OSError) or type(error).__module__.split(".")[0] in (
        "httpx2", "httpx", "httpcore2", "httpcore")


def _hasher(remote: RemoteFile):
    """sha256 for LFS files; git's blob id (sha1 of a "blob SIZE\\0" header and the bytes) for the others."""
    if remote.sha256:
        return hashlib.sha256()
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {remote.size}\0".encode())
    return digest


def _matches(remote: RemoteFile, digest) -> bool:
    expected = remote.sha256 or remote.blob_id
    return expected is None or digest.hexdigest() == expected


def required_space(plan: DownloadPlan, folder: Path, bundle_bytes: int, scratch_bytes: int) -> int:
    """Free bytes the whole get needs: what is left to fetch, the bundle, and the fp32 models it is made from."""
    return plan.remaining_bytes(folder) + bundle_bytes + scratch_bytes


def check_space(needed: int, folder: Path, what: str) -> int:
    """Refuse, in one line and before the first byte, when `folder`'s disk has less than `needed` free."""
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise InvalidInputError(f"{what} needs {gigabytes(needed)} free on {probe}, which has {gigabytes(free)}: free "
                                "some space, or choose another folder (--out)")
    return free


def gigabytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


def leftovers(folder: Path) -> Iterator[Path]:
    """Our partial files below `folder` (found by our own marker, never by a substring a user's file can have)."""
    for path in Path(folder).rglob(f".*{PARTIAL_SUFFIX}"):
        if path.is_file():
            yield path


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """The Hub's failures as one line each: offline, unknown repository or revision, no access, no connection."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = (f"fetch {BY_HAND} from https://huggingface.co/{repo_id} on a connected machine into one folder, then "
               "run `riffstudio model get FOLDER`")
    try:
        yield
    except OfflineModeIsEnabled:
        raise ModelBundleError(f"cannot download {repo_id}: HF_HUB_OFFLINE is set; unset it, or {offline}") from None
    except GatedRepoError:
        raise ModelBundleError(f"{repo_id} is gated: accept its terms on the Hub and log in (`hf auth login`), "
                               "then run model get again") from None
    except RepositoryNotFoundError:
        raise ModelBundleError(f"there is no model {repo_id} on Hugging Face (or it is private: log in with "
                               f"`hf auth login`): check the id, e.g. {DEFAULT_REPO}") from None
    except RevisionNotFoundError:
        raise ModelBundleError(f"{repo_id} has no such revision: leave out --revision for the latest") from None
    except HfHubHTTPError as error:
        raise ModelBundleError(f"cannot download {repo_id} ({reason(error, 120)}): try again later") from None
    except (LocalEntryNotFoundError, OSError) as error:
        if isinstance(error, CancelledError | InvalidInputError):
            raise
        raise ModelBundleError(f"cannot download {repo_id}: no connection to Hugging Face ({reason(error, 80)}); "
                               f"{offline}") from None
    except Exception as error:  # httpx2's transport errors are not OSErrors
        if is_transport_error(error):
            raise ModelBundleError(f"cannot download {repo_id}: no connection to Hugging Face "
                                   f"({reason(error, 80)}); {offline}") from None
        raise
