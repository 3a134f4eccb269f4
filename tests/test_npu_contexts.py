"""The app's question before an NPU load, "is this QNN bundle already compiled here?", answered from the
bundle's files alone (engine.bundle.npu_contexts), without ONNX Runtime."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.bundle.bundle import Bundle
from engine.bundle.manifest import COMPONENTS, OPENED_AT_LOAD, ComponentSpec, FileEntry, Manifest
from engine.bundle.npu_contexts import holds_npu_contexts
from engine.qnn import CONTEXT_KEY_NAME, CONTEXT_MODEL_NAME, context_folder


@pytest.fixture
def bundle(tmp_path, monkeypatch) -> Bundle:
    """A QNN bundle's manifest and model files (a few bytes each: nothing here runs them); the user cache
    in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    folder = tmp_path / "bundle"
    folder.mkdir()
    files = []
    for name in COMPONENTS:
        (folder / f"{name}.onnx").write_bytes(name.encode())
        files.append(FileEntry(f"{name}.onnx", hashlib.sha256(name.encode()).hexdigest(), len(name)))
    manifest = Manifest(precision="qnn", source="test", source_revision="", opset=17, onnxruntime_version="",
                        riffstudio_version="", created="", scheduler={},
                        components={name: ComponentSpec(f"{name}.onnx", (), ()) for name in COMPONENTS},
                        files=tuple(files))
    (folder / "manifest.json").write_text(manifest.to_json())
    return Bundle(folder, Manifest.read(folder))


def compile_context(cache: Path, component: str, model_digest: str, *, whole: bool = True) -> Path:
    """A context folder as engine.sessions leaves it (`whole=False`: its model not written yet)."""
    folder = context_folder(cache, component, hashlib.sha256(model_digest.encode()).hexdigest())
    folder.mkdir(parents=True)
    (folder / CONTEXT_KEY_NAME).write_text(f'{{"model": "{model_digest}"}}')
    if whole:
        (folder / CONTEXT_MODEL_NAME).write_bytes(b"context")
    return folder


def digest(bundle: Bundle, component: str) -> str:
    return next(e.sha256 for e in bundle.manifest.files if e.path == f"{component}.onnx")


def test_a_bundle_never_loaded_on_the_npu_holds_no_contexts(bundle):
    assert not holds_npu_contexts(bundle.path)
    (bundle.path / "cache").mkdir()
    (bundle.path / "cache" / "notes.txt").write_text("not a context")
    assert not holds_npu_contexts(bundle.path)


@pytest.mark.parametrize("where", ["bundle", "user cache"])
def test_contexts_of_every_model_opened_at_load_count_in_either_cache_folder(bundle, where):
    cache = bundle.cache_dirs()[0 if where == "bundle" else 1]
    for component in OPENED_AT_LOAD:
        assert not holds_npu_contexts(bundle.path)
        compile_context(cache, component, digest(bundle, component))
    assert holds_npu_contexts(bundle.path)


def test_a_half_written_context_or_one_of_another_model_file_does_not_count(bundle):
    cache = bundle.cache_dirs()[0]
    for component in OPENED_AT_LOAD[1:]:
        compile_context(cache, component, digest(bundle, component))
    compile_context(cache, OPENED_AT_LOAD[0], digest(bundle, OPENED_AT_LOAD[0]), whole=False)
    compile_context(cache, OPENED_AT_LOAD[0], "0" * 64)
    assert not holds_npu_contexts(bundle.path)


def test_a_folder_that_is_no_bundle_holds_no_contexts(tmp_path):
    assert not holds_npu_contexts(tmp_path / "missing")
    assert not holds_npu_contexts(tmp_path)
