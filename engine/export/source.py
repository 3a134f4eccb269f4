"""Where a checkpoint comes from: a diffusers folder, a single original-layout file, or a Hugging Face id.

Export time only (torch, diffusers, transformers are imported inside the functions). Everything is
checked before the heavy loading starts, so a half-downloaded folder fails in a second with a message
that names what is missing, not minutes later with a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelBundleError, reason

REQUIRED_FOLDERS = ("text_encoder", "tokenizer", "unet", "vae", "scheduler")
CONFIG_FILES = {
    "text_encoder": ("config.json",),
    "tokenizer": ("vocab.json", "merges.txt"),
    "unet": ("config.json",),
    "vae": ("config.json",),
    "scheduler": ("scheduler_config.json",),
}
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")


@dataclass
class Checkpoint:
    """A loaded torch checkpoint, ready to export (export time only)."""

    text_encoder: Any
    tokenizer: Any
    unet: Any
    vae: Any
    scheduler_config: dict[str, Any]
    source: str
    revision: str


def load_checkpoint(source: str) -> Checkpoint:
    """Resolve `source` (folder, single file or hub id) and load its components in eval mode, fp32."""
    path = Path(source).expanduser()
    if path.is_dir():
        check_diffusers_folder(path)
        return _load_folder(path, source=str(path.resolve()), revision=folder_revision(path))
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise ModelBundleError(f"{source} is not a model: give a diffusers folder, a .ckpt or "
                                   ".safetensors checkpoint, or a Hugging Face id like riffusion/riffusion-model-v1")
        return _load_single_file(path)
    if HUB_ID.match(source) and not source.startswith((".", "/", "~")):
        folder, revision = download_from_hub(source)
        return _load_folder(folder, source=source, revision=revision)
    raise ModelBundleError(f"{source} does not exist: give a diffusers folder, a .ckpt or .safetensors file, "
                           "or a Hugging Face id like riffusion/riffusion-model-v1")


def check_diffusers_folder(folder: Path) -> None:
    """Fail fast, naming the first missing piece of a diffusers Stable Diffusion folder."""
    if not any(folder.iterdir()):
        raise ModelBundleError(f"{folder} is empty: download the whole model folder (model_index.json, "
                               f"{', '.join(REQUIRED_FOLDERS)})")
    if not (folder / "model_index.json").is_file():
        raise ModelBundleError(f"{folder} is not a diffusers model folder (no model_index.json): download "
                               "the whole model, or give the .ckpt file instead")
    for name in REQUIRED_FOLDERS:
        sub = folder / name
        if not sub.is_dir():
            raise ModelBundleError(f"{folder} is missing {name}/: the download is incomplete, fetch the "
                                   "whole model folder again")
        for config in CONFIG_FILES[name]:
            if not (sub / config).is_file():
                raise ModelBundleError(f"{folder} is missing {name}/{config}: the download is incomplete, "
                                       "fetch the whole model folder again")
        if name in ("text_encoder", "unet", "vae") and not _weight_files(sub):
            raise ModelBundleError(f"{folder}/{name} has no weights (.safetensors or .bin): the download is "
                                   "incomplete, fetch the whole model folder again")


def _weight_files(folder: Path) -> list[Path]:
    return [p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern)]


def folder_revision(folder: Path) -> str:
    """A content id for a local folder: every config's bytes and every weight file's name and size."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        digest.update(relative.encode())
        if path.suffix in (".json", ".txt"):
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    return "local-" + digest.hexdigest()[:16]


def _load_folder(folder: Path, *, source: str, revision: str) -> Checkpoint:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    def load(name: str, loader):
        try:
            return loader(folder / name)
        except Exception as error:  # diffusers/transformers/safetensors raise many types
            raise ModelBundleError(f"cannot load {name}/ from {folder} ({reason(error, 160)}): the file is damaged or "
                                   "incomplete, download the model again") from None

    text_encoder = load("text_encoder", lambda p: CLIPTextModel.from_pretrained(
        p, local_files_only=True, attn_implementation="eager"))
    tokenizer = load("tokenizer", lambda p: CLIPTokenizer.from_pretrained(p, local_files_only=True))
    unet = load("unet", lambda p: UNet2DConditionModel.from_pretrained(p, local_files_only=True))
    vae = load("vae", lambda p: AutoencoderKL.from_pretrained(p, local_files_only=True))
    try:
        scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelBundleError(f"{folder}/scheduler/scheduler_config.json is unreadable ({error}): "
                               "download the model again") from None
    for module in (text_encoder, unet, vae):
        module.float().eval()
    return Checkpoint(text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, vae=vae,
                      scheduler_config=scheduler_config, source=source, revision=revision)


def _load_single_file(path: Path) -> Checkpoint:
    """An original-layout checkpoint (riffusion ships riffusion-model-v1.ckpt): SD 1.5 configs are ours."""
    from diffusers import StableDiffusionPipeline

    config = Path(__file__).parent / "sd15_config"
    try:
        pipeline = StableDiffusionPipeline.from_single_file(
            str(path), config=str(config), local_files_only=True, safety_checker=None,
            requires_safety_checker=False)
    except Exception as error:
        raise ModelBundleError(f"cannot read {path} as a Stable Diffusion 1.x checkpoint ({reason(error, 160)}): "
                               "the file is damaged, incomplete or another kind of model") from None
    pipeline.text_encoder.set_attn_implementation("eager")
    for module in (pipeline.text_encoder, pipeline.unet, pipeline.vae):
        module.float().eval()
    digest = hashlib.sha256(f"{path.name}-{path.stat().st_size}".encode()).hexdigest()[:16]
    return Checkpoint(text_encoder=pipeline.text_encoder, tokenizer=pipeline.tokenizer, unet=pipeline.unet,
                      vae=pipeline.vae, scheduler_config=dict(pipeline.scheduler.config),
                      source=str(path.resolve()), revision="file-" + digest)


def download_from_hub(repo_id: str) -> tuple[Path, str]:
    """Fetch the parts of a hub repository we convert (safetensors preferred); (folder, commit)."""
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise ModelBundleError("downloading from Hugging Face needs the export extra: "
                               "pip install 'riffstudio[export]'") from None
    with _hub_errors(repo_id):
        remote = HfApi().list_repo_files(repo_id)
    patterns = ["model_index.json", "*/config.json", "*/scheduler_config.json", "tokenizer/*"]
    for name in ("text_encoder", "unet", "vae"):
        # Full-precision weights only; safetensors where the repository has them, else the .bin files.
        kind = "safetensors" if any(f.startswith(f"{name}/") and f.endswith(".safetensors") for f in remote) else "bin"
        patterns += [f for f in remote if f.startswith(f"{name}/") and f.endswith(f".{kind}")
                     and ".fp16." not in f and "non_ema" not in f]
    with _hub_errors(repo_id):
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns))
    check_diffusers_folder(folder)
    return folder, folder.name


@contextlib.contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """Hub failures as one line: offline, unknown id or no access."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        yield
    except HfHubHTTPError as error:  # before OSError, which it may subclass
        raise ModelBundleError(f"cannot download {repo_id} ({reason(error, 120)}): check the "
                               "model id and your access to it") from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, OSError):
        raise ModelBundleError(f"cannot download {repo_id}: no connection to Hugging Face; download the model "
                               "folder on a connected machine and convert that folder") from None
