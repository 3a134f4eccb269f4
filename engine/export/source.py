"""Where a checkpoint comes from: a diffusers folder, a single original-layout file, or a Hugging Face id.

Export time only (torch, diffusers, transformers are imported inside the functions). Everything is
checked before the heavy loading starts, so a half-downloaded folder fails in a second with a message
that names what is missing, not minutes later with a traceback.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InvalidInputError, ModelBundleError, reason
from engine.model_get.get import file_revision, folder_revision

REQUIRED_FOLDERS = ("text_encoder", "tokenizer", "unet", "vae", "scheduler")
CONFIG_FILES = {
    "text_encoder": ("config.json",),
    "unet": ("config.json",),
    "vae": ("config.json",),
    "scheduler": ("scheduler_config.json",),
}
# A CLIP tokenizer folder holds either form: tokenizer.json alone (what save_pretrained writes with
# transformers 5) or vocab.json + merges.txt (riffusion-model-v1, transformers 4). The fast tokenizer reads both.
TOKENIZER_FORMS = (("tokenizer.json",), ("vocab.json", "merges.txt"))
TOKENIZER_MISSING = "tokenizer/tokenizer.json (or tokenizer/vocab.json and merges.txt)"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")
# SD 1.5's architecture (riffusion-model-v1's): configs and CLIP tokenizer, no weights.
SD15_CONFIG = Path(__file__).parents[1] / "model_get" / "sd15_config"


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


def load_checkpoint(source: str, config: Path | None = None) -> Checkpoint:
    """Resolve `source` (folder, single file or hub id) and load its components in eval mode, fp32.

    `config` only applies to a single file: the diffusers folder whose configs and tokenizer describe its
    architecture (a single file holds weights only). Default: SD 1.5's, which riffusion-model-v1 is.
    """
    path = Path(source).expanduser()
    config = Path(config).expanduser() if config is not None else None
    if config is not None:
        check_config_folder(source, config)
    if path.is_dir():
        check_diffusers_folder(path)
        return _load_folder(path, source=str(path.resolve()), revision=folder_revision(path))
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise ModelBundleError(f"{source} is not a model: give a diffusers folder, a .ckpt or "
                                   ".safetensors checkpoint, or a Hugging Face id like riffusion/riffusion-model-v1")
        return _load_single_file(path, config or SD15_CONFIG)
    if HUB_ID.match(source) and not source.startswith((".", "/", "~")):
        folder, revision = download_from_hub(source)
        return _load_folder(folder, source=source, revision=revision)
    raise ModelBundleError(f"{source} does not exist: give a diffusers folder, a .ckpt or .safetensors file, "
                           "or a Hugging Face id like riffusion/riffusion-model-v1")


def check_config_folder(source: str, folder: Path) -> None:
    """A single file's architecture folder: a diffusers folder's configs and tokenizer, weights not needed."""
    path = Path(source).expanduser()
    if not (path.is_file() and path.suffix.lower() in SINGLE_FILE_SUFFIXES):
        raise InvalidInputError("--config only applies to a single .ckpt or .safetensors file: a diffusers folder "
                                "or a Hugging Face id carries its own configs")
    missing = ["model_index.json"] if not (folder / "model_index.json").is_file() else _missing_configs(folder)
    if missing:
        raise InvalidInputError(f"{folder} is missing {missing[0]}: give --config the folder of a diffusers "
                                "model with the checkpoint's architecture (its weights are not needed)")


def check_diffusers_folder(folder: Path) -> None:
    """Fail fast, naming the first missing piece of a diffusers Stable Diffusion folder."""
    if not any(folder.iterdir()):
        raise ModelBundleError(f"{folder} is empty: download the whole model folder (model_index.json, "
                               f"{', '.join(REQUIRED_FOLDERS)})")
    if not (folder / "model_index.json").is_file():
        raise ModelBundleError(f"{folder} is not a diffusers model folder (no model_index.json): download "
                               "the whole model, or give the .ckpt file instead")
    incomplete = "the download is incomplete, fetch the whole model folder again"
    for name in REQUIRED_FOLDERS:
        if not (folder / name).is_dir():
            raise ModelBundleError(f"{folder} is missing {name}/: {incomplete}")
    missing = _missing_configs(folder)
    if missing:
        raise ModelBundleError(f"{folder} is missing {missing[0]}: {incomplete}")
    for name in ("text_encoder", "unet", "vae"):
        if not _weight_files(folder / name):
            raise ModelBundleError(f"{folder}/{name} has no weights (.safetensors or .bin): {incomplete}")


def _missing_configs(folder: Path) -> list[str]:
    """The config files `folder` lacks, in REQUIRED_FOLDERS order; a tokenizer in neither form is one entry."""
    missing: list[str] = []
    for name in REQUIRED_FOLDERS:
        if name == "tokenizer" and not _has_tokenizer(folder / name):
            missing.append(TOKENIZER_MISSING)
        missing += [f"{name}/{config}" for config in CONFIG_FILES.get(name, ())
                    if not (folder / name / config).is_file()]
    return missing


def _has_tokenizer(folder: Path) -> bool:
    """Whether `folder` holds every file of at least one of the TOKENIZER_FORMS."""
    return any(all((folder / file).is_file() for file in form) for form in TOKENIZER_FORMS)


def _weight_files(folder: Path) -> list[Path]:
    return [p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern)]


def _load_folder(folder: Path, *, source: str, revision: str) -> Checkpoint:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizerFast

    def load(name: str, loader):
        try:
            return loader(folder / name)
        except Exception as error:  # diffusers/transformers/safetensors raise many types
            raise ModelBundleError(f"cannot load {name}/ from {folder} ({reason(error, 160)}): the file is damaged or "
                                   "incomplete, download the model again") from None

    text_encoder = load("text_encoder", lambda p: CLIPTextModel.from_pretrained(
        p, local_files_only=True, attn_implementation="eager"))
    # The fast form: it reads tokenizer.json or vocab.json + merges.txt alike (transformers 4's slow
    # CLIPTokenizer needs the latter), and write_tokenizer needs its `tokenizers` backend anyway.
    tokenizer = load("tokenizer", lambda p: CLIPTokenizerFast.from_pretrained(p, local_files_only=True))
    unet = load("unet", lambda p: UNet2DConditionModel.from_pretrained(p, local_files_only=True))
    vae = load("vae", lambda p: AutoencoderKL.from_pretrained(p, local_files_only=True))
    for module in (text_encoder, unet, vae):
        module.float().eval()
    return Checkpoint(text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, vae=vae,
                      scheduler_config=read_scheduler_config(folder), source=source, revision=revision)


def read_scheduler_config(folder: Path) -> dict[str, Any]:
    """The file as written (not diffusers' view of it, which adds defaults of its own version)."""
    path = folder / "scheduler" / "scheduler_config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelBundleError(f"{path} is unreadable ({reason(error, 120)}): download the model again") from None


def _load_single_file(path: Path, config: Path) -> Checkpoint:
    """An original-layout (LDM) checkpoint, as riffusion ships riffusion-model-v1.ckpt.

    The weights come from the file, the architecture from `config`: diffusers maps the LDM names onto
    its own, and a checkpoint that does not fit the architecture fails here with one line.
    """
    from diffusers import StableDiffusionPipeline

    try:
        pipeline = StableDiffusionPipeline.from_single_file(
            str(path), config=str(config), local_files_only=True, safety_checker=None,
            requires_safety_checker=False)
    except Exception as error:  # torch, safetensors and diffusers raise many types
        raise ModelBundleError(f"cannot read {path} as a Stable Diffusion 1.x checkpoint ({reason(error, 160)}): "
                               "the file is damaged or incomplete, or another architecture (give its diffusers "
                               "config folder with --config)") from None
    pipeline.text_encoder.set_attn_implementation("eager")
    for module in (pipeline.text_encoder, pipeline.unet, pipeline.vae):
        module.float().eval()
    return Checkpoint(text_encoder=pipeline.text_encoder, tokenizer=pipeline.tokenizer, unet=pipeline.unet,
                      vae=pipeline.vae, scheduler_config=read_scheduler_config(config),
                      source=str(path.resolve()), revision=file_revision(path, config))


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
