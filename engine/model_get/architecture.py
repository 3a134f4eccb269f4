"""Which graph a checkpoint needs: its models' configs reduced to what shapes the ONNX graphs.

A template (engine/model_get/template.py) is the exported graph of one architecture with its weights
taken out. Whether a checkpoint can be poured into SD 1.5's shipped templates, or needs templates of its
own, is decided here from its `config.json` files alone (no torch): each config is completed with the
values today's diffusers/transformers write for keys an older file lacks (riffusion-model-v1's were
written by diffusers 0.6), stripped of entries that do not shape the graph, and compared. Two checkpoints with
the same signature fit the same templates; the weights' names and shapes are checked again when poured.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The folders of a diffusers Stable Diffusion model whose configs shape a graph.
CONFIG_FOLDERS = ("text_encoder", "unet", "vae")
# SD 1.5's architecture (riffusion-model-v1's), as today's libraries write it: every key they know.
SD15_CONFIGS = Path(__file__).with_name("sd15_config")
# Entries that do not shape the graph: who wrote the file, how to load it, training-only settings
# (dropout, initialisation), token ids the graph never sees, and the VAE's latent scale and image size
# (the engine's, kept in the bundle manifest).
IGNORED_KEYS = frozenset({
    "_class_name", "_diffusers_version", "_name_or_path", "_commit_hash", "_use_default_values",
    "transformers_version", "architectures", "torch_dtype", "dtype",
    "dropout", "attention_dropout", "initializer_range", "initializer_factor",
    "bos_token_id", "eos_token_id", "pad_token_id", "projection_dim",
    "sample_size", "scaling_factor", "shift_factor", "force_upcast", "latents_mean", "latents_std"})


@dataclass(frozen=True)
class Architecture:
    """The configs of a checkpoint's three models, completed and cleaned; `signature` names them."""

    configs: dict[str, dict[str, Any]]

    @property
    def signature(self) -> str:
        text = json.dumps(self.configs, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def is_sd15(self) -> bool:
        return self.signature == sd15().signature


def read_architecture(folder: Path) -> Architecture:
    """The architecture of the diffusers model in `folder` (its text_encoder, unet and vae configs)."""
    from engine.model_get.weights import read_json

    return complete({name: read_json(Path(folder) / name / "config.json") for name in CONFIG_FOLDERS})


def complete(configs: dict[str, dict[str, Any]]) -> Architecture:
    """`configs` with SD 1.5's values for the keys they lack, without the IGNORED_KEYS.

    A key a config lacks has its library's default, and for every key an SD 1.5 file may lack (keys
    added by later diffusers/transformers) SD 1.5's own value is that default."""
    defaults = _sd15_raw()
    return Architecture({name: {key: value for key, value in {**defaults[name], **configs[name]}.items()
                                if key not in IGNORED_KEYS}
                         for name in CONFIG_FOLDERS})


def sd15() -> Architecture:
    return complete(_sd15_raw())


def _sd15_raw() -> dict[str, dict[str, Any]]:
    return {name: json.loads((SD15_CONFIGS / name / "config.json").read_text(encoding="utf-8"))
            for name in CONFIG_FOLDERS}
