"""What the app, the bundle code and the sessions share about the QNN execution provider, as plain data.

`engine.sessions` imports ONNX Runtime; the window's process never does (it only draws and asks the engine
process), yet its settings list the NPU's performance modes and it says when a bundle's first NPU load will
compile for minutes. So the modes and the compiled-context cache's layout live here, once, with no ONNX Runtime:
the sessions write the cache by this layout and `engine.bundle.npu_contexts` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

# The QNN HTP back end's performance modes (its `htp_performance_mode` option).
HTP_PERFORMANCE_MODES = ("burst", "balanced", "default", "high_performance", "high_power_saver",
                         "low_balanced", "low_power_saver", "power_saver", "sustained_high_performance",
                         "extreme_power_saver")

# A compiled context is a folder `<model stem>-<key digest[:16]>` in a cache folder, holding the EP context
# model and the key it was compiled under (engine.sessions.context_key).
CONTEXT_MODEL_NAME = "model_ctx.onnx"
CONTEXT_KEY_NAME = "key.json"


def context_folder(cache_dir: Path, model_stem: str, key_digest: str) -> Path:
    """Where the context of the model `model_stem` compiled under the key `key_digest` goes."""
    return cache_dir / f"{model_stem}-{key_digest[:16]}"


def context_folders(cache_dir: Path, model_stem: str) -> Iterator[Path]:
    """The compiled contexts of `model_stem` in `cache_dir`, current or stale: folders with a key."""
    if not cache_dir.is_dir():
        return
    for folder in cache_dir.glob(f"{model_stem}-*"):
        if folder.is_dir() and (folder / CONTEXT_KEY_NAME).exists():
            yield folder


def read_context_key(folder: Path) -> dict[str, str] | None:
    """The key a context folder was compiled under, or None if it is missing or unreadable."""
    try:
        key = json.loads((folder / CONTEXT_KEY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return key if isinstance(key, dict) else None
