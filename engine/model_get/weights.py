"""A checkpoint's weights by model, under the names today's libraries give them (no torch).

A diffusers folder keeps each model's weights in its own folder (`text_encoder/`, `unet/`, `vae/`), in
safetensors or torch zip files, whole or in shards with an index, full precision or as an fp16 variant.
`FolderWeights` finds one model's files and answers for its tensors by name; the template's map asks
by today's names, and older checkpoints spell some differently:

- transformers 4 prefixes the CLIP text encoder's tensors with `text_model.` (5 does not);
- diffusers before 0.14 named the VAE's attention `query`, `key`, `value`, `proj_attn`
  (today `to_q`, `to_k`, `to_v`, `to_out.0`): riffusion-model-v1 was saved by diffusers 0.6.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ModelBundleError
from engine.model_get.weight_file import WeightFile, open_weight_file

# Weight files of one model folder, most preferred first within each kind: full precision before the
# fp16 variant (both hold the same model; fp16 is what a download prefers, being half the size).
SAFETENSORS = re.compile(r"^(model|diffusion_pytorch_model)(\.fp16)?(-\d{5}-of-\d{5})?\.safetensors$")
TORCH_FILES = re.compile(r"^(pytorch_model|diffusion_pytorch_model)(\.fp16)?(-\d{5}-of-\d{5})?\.bin$")
LEGACY_VAE_ATTENTION = (("to_q.", "query."), ("to_k.", "key."), ("to_v.", "value."), ("to_out.0.", "proj_attn."))


@dataclass(frozen=True)
class WeightFiles:
    """The files holding one model's weights, all of one kind and precision."""

    files: tuple[Path, ...]
    variant: str  # "" or "fp16"


def weight_files(folder: Path) -> WeightFiles | None:
    """The weight files of one model folder: safetensors before torch files, full precision before fp16,
    a sharded set as a whole (its index names the shards). None when the folder has none."""
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    for pattern in (SAFETENSORS, TORCH_FILES):
        for variant in ("", "fp16"):
            chosen = [n for n in names if (m := pattern.match(n)) and (m.group(2) or "") == (f".{variant}" if variant
                                                                                         else "")]
            if chosen:
                return WeightFiles(tuple(folder / n for n in chosen), variant)
    return None


class FolderWeights:
    """One model's tensors from its folder of a diffusers checkpoint, looked up by today's names."""

    def __init__(self, folder: Path, files: WeightFiles | None = None) -> None:
        self.folder = Path(folder)
        chosen = files or weight_files(self.folder)
        if chosen is None:
            raise ModelBundleError(f"{self.folder} has no weights (.safetensors or .bin): download the whole "
                                   "model folder again")
        self._files: list[WeightFile] = []
        self._where: dict[str, WeightFile] = {}
        try:
            for path in chosen.files:
                weight_file = open_weight_file(path)
                self._files.append(weight_file)
                for name in weight_file.names():
                    self._where.setdefault(name, weight_file)
        except BaseException:
            self.close()
            raise

    def _find(self, name: str) -> tuple[WeightFile, str]:
        for candidate in _spellings(name):
            if candidate in self._where:
                return self._where[candidate], candidate
        raise ModelBundleError(f"{self.folder} has no tensor {name}: the checkpoint is not of this architecture or "
                               "is incomplete, download the model again")

    def shape(self, name: str) -> tuple[int, ...]:
        weight_file, stored = self._find(name)
        return tuple(weight_file.shape(stored))

    def read(self, name: str) -> np.ndarray:
        weight_file, stored = self._find(name)
        return weight_file.read(stored)

    def close(self) -> None:
        for weight_file in self._files:
            weight_file.close()

    def __enter__(self) -> FolderWeights:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SingleFileModel:
    """An original-layout (LDM) single checkpoint file (`.ckpt`, `.safetensors`): all three models in one
    state dict under CompVis' names. `view(folder)` answers for one model by today's diffusers names."""

    def __init__(self, path: Path, configs: dict[str, dict]) -> None:
        self.path = Path(path)
        self._file = open_weight_file(self.path)
        self._names = set(self._file.names())
        self._configs = configs

    def view(self, folder: str) -> _ModelView:
        return _ModelView(self, folder)

    def _find(self, folder: str, name: str) -> str:
        from engine.model_get.ldm_names import ldm_names

        for candidate in ldm_names(folder, name, self._configs):
            if candidate in self._names:
                return candidate
        raise ModelBundleError(f"{self.path} has no tensor for {folder} {name}: it is not a Stable Diffusion 1.x "
                               "checkpoint in the original layout, or is incomplete; give a diffusers folder instead")

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class _ModelView:
    model: SingleFileModel
    folder: str

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.model._file.shape(self.model._find(self.folder, name)))

    def read(self, name: str) -> np.ndarray:
        return self.model._file.read(self.model._find(self.folder, name))

    def close(self) -> None:
        pass


def _spellings(name: str) -> list[str]:
    """`name` as today's libraries write it, then as older ones did."""
    spellings = [name, f"text_model.{name}"]
    for today, legacy in LEGACY_VAE_ATTENTION:
        if ".attentions." in name and today in name:
            spellings.append(name.replace(today, legacy))
    return spellings


def read_json(path: Path) -> dict:
    """A config file of the checkpoint, or one line on what to do."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelBundleError(f"{path} is missing: download the whole model folder again") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelBundleError(f"{path} is unreadable ({error}): download the model again") from None
    if not isinstance(data, dict):
        raise ModelBundleError(f"{path} is not a config file: download the model again")
    return data
