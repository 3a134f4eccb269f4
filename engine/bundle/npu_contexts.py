"""Whether a QNN bundle's models are already compiled for the NPU on this machine: plain file checks.

The first QNN session of a model compiles its graph for the NPU (minutes on real hardware); engine.sessions keeps
the result in the bundle's cache folder (`Bundle.cache_dir`: its own cache/, or the user cache when the bundle is
read-only). The app asks this before it loads a QNN bundle, to say that the first load will take minutes; it must
not import ONNX Runtime to ask, so this reads the cache's layout (engine.qnn) and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from engine.bundle.bundle import Bundle
from engine.bundle.manifest import OPENED_AT_LOAD, Manifest
from engine.errors import ModelBundleError
from engine.qnn import CONTEXT_MODEL_NAME, context_folders, read_context_key


def holds_npu_contexts(path: str | os.PathLike[str]) -> bool:
    """Whether every model the engine opens at load has a compiled context of its current file in the bundle's
    cache folders, written here (the cache is per machine: `riffstudio model publish` leaves it out).

    A context compiled by another onnxruntime-qnn, QNN SDK or device still counts: telling those apart needs ONNX
    Runtime. The sessions rebuild such a context when they load; the app's "compiling" note is then missing once.
    An unreadable bundle holds none (the bundle check reports why)."""
    try:
        bundle = Bundle(Path(path), Manifest.read(Path(path)))
        caches = bundle.cache_dirs()
    except (ModelBundleError, OSError):
        return False
    digests = {entry.path: entry.sha256 for entry in bundle.manifest.files}
    for component in OPENED_AT_LOAD:
        spec = bundle.manifest.components.get(component)
        if spec is None:
            continue
        stem = PurePosixPath(spec.file).stem
        if not any(_is_context_of(folder, digests.get(spec.file)) for cache in caches
                   for folder in context_folders(cache, stem)):
            return False
    return True


def _is_context_of(folder: Path, model_digest: str | None) -> bool:
    """A whole context (its model written, its key readable) of the model file whose sha256 is `model_digest`."""
    key = read_context_key(folder)
    return key is not None and key.get("model") == model_digest and (folder / CONTEXT_MODEL_NAME).is_file()
