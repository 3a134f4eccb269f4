"""The bundle manifest: what a bundle holds, how it was made, and how to check it.

`manifest.json` is the contract between conversion (torch side) and the engine (ONNX Runtime side):
file hashes and sizes, every model's inputs and outputs, the scheduler config and the image geometry.
A schema version guards against bundles from another riffstudio.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.choices import PRECISIONS
from engine.errors import ModelBundleError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
TOKENIZER_NAME = "tokenizer.json"
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")


def bundle_identity(folder: str | os.PathLike[str]) -> str:
    """A short hash that names this exact bundle: of its manifest, which lists every file's SHA-256. For
    sidecars and caches, and for a cluster's workers to prove they run the driver's very bundle."""
    return manifest_identity((Path(folder) / MANIFEST_NAME).read_bytes())


def manifest_identity(manifest: bytes) -> str:
    """bundle_identity of a manifest's bytes (one fetched before its bundle is on disk)."""
    return hashlib.sha256(manifest).hexdigest()[:16]


# The sessions the engine opens when it loads a bundle (engine.generation.pipeline); the VAE encoder's waits for
# the first image-to-image job.
OPENED_AT_LOAD = ("text_encoder", "unet", "vae_decoder")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output; a str dimension is dynamic (e.g. "batch")."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], dtype=data["dtype"], shape=tuple(data["shape"]))


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ComponentSpec:
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    quantization: str = "none"
    # How the export checked itself: max_abs_error_vs_torch (fp32), snr_db_vs_fp32 (quantised), and
    # reference_snr_db: the SNR on the stored reference inputs where it was converted.
    validation: dict[str, float | str] = field(default_factory=dict)  # `int8_refused` is a sentence
    # Quantised models: the bundle file with reference inputs and fp32 outputs (engine/bundle/reference.py).
    reference: str = ""


@dataclass(frozen=True)
class Manifest:
    precision: str
    source: str
    source_revision: str
    opset: int
    onnxruntime_version: str
    riffstudio_version: str
    created: str
    scheduler: dict[str, Any]
    components: dict[str, ComponentSpec]
    files: tuple[FileEntry, ...]
    latent_scale_factor: float = 0.18215
    image_height: int = 512
    image_width: int = 512
    # True where every model has fixed shapes (QNN): then only image_width is possible.
    fixed_shapes: bool = False
    max_image_width: int = 2048
    min_image_width: int = 64
    # Width granularity in pixels: one latent column is 8 px.
    width_step: int = 8
    text_hidden_size: int = 768
    # Where it was converted ("converted_on"); SessionSettings options under "cpu" per CPU platform
    # ("x86_64", "arm64": what suits this bundle's schemes on that CPU, e.g. bf16 GEMMs on ARM64) and
    # under "qnn" for the NPU (HTP performance mode, context cache). The user's own options win.
    runtime: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def session_options(self, provider: str, machine: str | None = None) -> dict[str, Any]:
        """The SessionSettings options this bundle asks for on the NPU ("qnn"), or on the CPU platform
        `machine` (default: this one)."""
        section = self.runtime.get("qnn" if provider == "qnn" else "cpu", {})
        if provider != "qnn" and isinstance(section, dict):
            section = section.get(cpu_platform(machine), {})
        return dict(section) if isinstance(section, dict) else {}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            newer = isinstance(version, int) and version > SCHEMA_VERSION
            hint = "update riffstudio" if newer else "re-convert it with `riffstudio model convert`"
            raise ModelBundleError(f"bundle manifest has schema version {version!r}, this riffstudio "
                                   f"reads {SCHEMA_VERSION}: {hint}")
        try:
            components = {
                name: ComponentSpec(
                    file=spec["file"],
                    inputs=tuple(TensorSpec.from_dict(t) for t in spec["inputs"]),
                    outputs=tuple(TensorSpec.from_dict(t) for t in spec["outputs"]),
                    quantization=spec.get("quantization", "none"),
                    validation=dict(spec.get("validation", {})),
                    reference=spec.get("reference", ""),
                )
                for name, spec in data["components"].items()
            }
            files = tuple(FileEntry(**entry) for entry in data["files"])
            fields = {k: v for k, v in data.items() if k not in ("components", "files")}
            manifest = cls(components=components, files=files, **fields)
        except (KeyError, TypeError) as error:
            raise ModelBundleError(f"bundle manifest is incomplete ({error}): re-convert the model") from None
        if manifest.precision not in PRECISIONS:
            raise ModelBundleError(f"bundle manifest names an unknown precision {manifest.precision!r}: "
                                   "re-convert the model")
        missing = [name for name in COMPONENTS if name not in components]
        if missing:
            raise ModelBundleError(f"bundle manifest lacks {', '.join(missing)}: re-convert the model")
        return manifest

    @classmethod
    def read(cls, bundle_dir: Path) -> Manifest:
        path = bundle_dir / MANIFEST_NAME
        if not bundle_dir.is_dir():
            raise ModelBundleError(f"no model bundle at {bundle_dir}: convert one with "
                                   "`riffstudio model convert SRC --out BUNDLE`")
        if not path.is_file():
            raise ModelBundleError(f"{bundle_dir} is not a model bundle (no {MANIFEST_NAME}): convert one "
                                   "with `riffstudio model convert SRC --out BUNDLE`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelBundleError(f"{path} is unreadable ({error}): re-convert the model") from None
        if not isinstance(data, dict):
            raise ModelBundleError(f"{path} is not a bundle manifest: re-convert the model")
        return cls.from_dict(data)


def cpu_platform(machine: str | None = None) -> str:
    """platform.machine() in one spelling per CPU family: Windows says AMD64/ARM64, Linux x86_64/aarch64."""
    import platform

    name = (machine or platform.machine()).lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "armv8": "arm64"}.get(name, name)
