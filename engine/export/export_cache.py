"""Reuse ONNX exports across conversions of one checkpoint (`riffstudio model convert --export-cache DIR`).

Exporting the UNet is the slowest part of a conversion (minutes at full size), and an fp32 and an int8
bundle start from the same export. An entry is keyed by everything that shapes the export: the torch
module itself (its class, its architecture config and the bytes of every parameter and buffer), fixed
or dynamic shapes, the exporter's own code and torch's version; so a stale entry is never used, only
left behind. Keying by content rather than by where the weights came from means the same weights hit
the same entry however they arrived: a Hugging Face folder, the same folder re-saved by newer
diffusers/transformers (another layout, another revision id) or riffusion's single .ckpt file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path
from engine.bundle.manifest import TensorSpec
from engine.export import attention_fusion, onnx_export, qnn_export_fixes
from engine.export.isolated_export import export_isolated
from engine.export.onnx_export import ExportedModel

RECORD = "export.json"


def export_with_cache(checkpoint: Any, component: str, destination: Path, *, fixed_width: int | None,
                      cache: Path | None) -> ExportedModel:
    """Export `component` to `destination` (a .onnx path, external data beside it), from `cache` if there.

    A fresh export runs in a child interpreter (`export_isolated`): see there for why."""
    if cache is None:
        return export_isolated(checkpoint, component, destination, fixed_width=fixed_width)
    entry = Path(cache) / f"{component}-{_key(checkpoint, component, fixed_width)}"
    if not (entry / RECORD).is_file():
        from filelock import FileLock  # in the export extra (and torch's own dependency)

        # Conversions sharing a cache (an fp32 and an int8 one started together) export each entry once:
        # the second waits for the first's export instead of repeating it and losing the final rename.
        entry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{entry}.lock"):
            if not (entry / RECORD).is_file():
                _export_entry(checkpoint, component, entry, destination.name, fixed_width)
    record = json.loads((entry / RECORD).read_text(encoding="utf-8"))
    for file in entry.iterdir():
        if file.name != RECORD:
            shutil.copyfile(file, destination.parent / file.name.replace(record["file"], destination.name, 1))
    return ExportedModel(path=destination, inputs=tuple(TensorSpec.from_dict(t) for t in record["inputs"]),
                         outputs=tuple(TensorSpec.from_dict(t) for t in record["outputs"]),
                         max_abs_error_vs_torch=record["max_abs_error_vs_torch"])


def _export_entry(checkpoint: Any, component: str, entry: Path, name: str, fixed_width: int | None) -> None:
    with atomic_path(entry, directory=True) as temp:
        exported = export_isolated(checkpoint, component, temp / name, fixed_width=fixed_width)
        record = {"file": name, "inputs": [t.to_dict() for t in exported.inputs],
                  "outputs": [t.to_dict() for t in exported.outputs],
                  "max_abs_error_vs_torch": exported.max_abs_error_vs_torch}
        (temp / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")


def _key(checkpoint: Any, component: str, fixed_width: int | None) -> str:
    import torch

    # The text encoder has no width: one fixed-shape export serves every QNN width.
    shape = ("fixed" if fixed_width else "dynamic") if component == "text_encoder" else fixed_width
    digest = hashlib.sha256(f"{component}|{shape}|{torch.__version__}".encode())
    digest.update(module_fingerprint(getattr(checkpoint, onnx_export.COMPONENT_OWNER[component])).encode())
    for module in (onnx_export, qnn_export_fixes, attention_fusion):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


# Config entries that say who wrote a file, not what the model computes.
_PROVENANCE_KEYS = {"transformers_version", "architectures", "torch_dtype", "dtype"}


def module_fingerprint(module: Any) -> str:
    """A content id of a torch module: its class, architecture config, attention implementation and
    the bytes of every parameter and buffer (non-persistent ones too: they become graph constants).

    Hashing SD 1.5's 3.4 GB UNet takes seconds; exporting it takes minutes."""
    import torch

    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    config = getattr(module, "config", None)
    if config is not None:
        settings = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        kept = {k: v for k, v in settings.items() if not k.startswith("_") and k not in _PROVENANCE_KEYS}
        digest.update(json.dumps(kept, sort_keys=True, default=repr).encode())
        digest.update(str(getattr(config, "_attn_implementation", None)).encode())
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    for name, tensor in sorted(named, key=lambda item: item[0]):
        data = tensor.detach().contiguous().cpu()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()) if data.numel() else b"")
    return digest.hexdigest()


