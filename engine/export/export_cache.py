"""Reuse ONNX exports across conversions of one checkpoint (`riffstudio model convert --export-cache DIR`).

Exporting the UNet is the slowest part of a conversion (minutes at full size), and an fp32 and an int8
bundle start from the same export. An entry is keyed by everything that shapes the export: the
checkpoint's revision, the component, fixed or dynamic shapes, the exporter's own code and torch's
version; so a stale entry is never used, only left behind.
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
        with atomic_path(entry, directory=True) as temp:
            exported = export_isolated(checkpoint, component, temp / destination.name, fixed_width=fixed_width)
            record = {"file": destination.name, "inputs": [t.to_dict() for t in exported.inputs],
                      "outputs": [t.to_dict() for t in exported.outputs],
                      "max_abs_error_vs_torch": exported.max_abs_error_vs_torch}
            (temp / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
    record = json.loads((entry / RECORD).read_text(encoding="utf-8"))
    for file in entry.iterdir():
        if file.name != RECORD:
            shutil.copyfile(file, destination.parent / file.name.replace(record["file"], destination.name, 1))
    return ExportedModel(path=destination, inputs=tuple(TensorSpec.from_dict(t) for t in record["inputs"]),
                         outputs=tuple(TensorSpec.from_dict(t) for t in record["outputs"]),
                         max_abs_error_vs_torch=record["max_abs_error_vs_torch"])


def _key(checkpoint: Any, component: str, fixed_width: int | None) -> str:
    import torch

    digest = hashlib.sha256(f"{checkpoint.revision}|{component}|{fixed_width}|{torch.__version__}".encode())
    for module in (onnx_export, qnn_export_fixes, attention_fusion):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


