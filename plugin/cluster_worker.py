"""What runs inside each Ray actor of `riffstudio batch --cluster`: the bundle opened once, many items rendered.

Plain Python, no Ray import at module level: plugin/cluster.py wraps `RenderWorker` with `ray.remote` at run
time, so this module (and its tests) load without the cluster extra.

A worker renders through `InProcessRenderer`, the local batch's own code, so a loop is the same bytes whichever
machine made it; its ONNX Runtime sessions get as many intra-op threads as the CPUs Ray gave the actor (and one
inter-op thread, engine/sessions.py), because ONNX Runtime ignores OMP_NUM_THREADS and would otherwise start a
thread per core of the node for every actor on it. Results go back as compact bytes (`RenderedBytes`), never
as Python objects of floats; the driver writes them (plugin/batch.py `write_item`), so a worker never touches
the output folder and an item Ray runs twice is still written once.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.bundle.manifest import MANIFEST_NAME, bundle_identity, manifest_identity
from engine.errors import ModelBundleError, RiffstudioError
from plugin.presets import BatchItem

# Test hook: a worker with this set to "1" acts as a node without the driver's bundle folder, so the suite's
# one-machine Ray can exercise the bundle's trip through Ray (engine/process/hooks.py lists the test hooks).
NODE_WITHOUT_BUNDLE_ENV = "RIFFSTUDIO_CLUSTER_TEST_NODE_WITHOUT_BUNDLE"
CHUNK_BYTES = 64 << 20  # a bundle file crosses the object store in pieces this big (a UNet is ~3.4 GB in fp32)


@dataclass(frozen=True)
class RenderedBytes:
    """A rendered item as bytes and shapes: the painted image (uint8) and its decode (float32), ~100 KB per
    second of audio, where a list of floats would be ten times that and slow to pickle."""

    image: bytes
    image_shape: tuple[int, ...]
    audio: bytes
    audio_shape: tuple[int, ...]
    sample_rate: int
    record: str  # the sidecar record, as JSON
    seconds: float
    worker: str

    @classmethod
    def pack(cls, image: np.ndarray, audio: np.ndarray, sample_rate: int, record: dict[str, Any], seconds: float,
             worker: str) -> RenderedBytes:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        return cls(image=image.tobytes(), image_shape=image.shape, audio=audio.tobytes(), audio_shape=audio.shape,
                   sample_rate=int(sample_rate), record=json.dumps(record), seconds=seconds, worker=worker)

    def image_array(self) -> np.ndarray:
        return np.frombuffer(self.image, dtype=np.uint8).reshape(self.image_shape).copy()

    def audio_array(self) -> np.ndarray:
        return np.frombuffer(self.audio, dtype=np.float32).reshape(self.audio_shape).copy()


@dataclass(frozen=True)
class ItemFailed:
    """An item that failed for its own reasons (a bad init audio, a wrong bundle): the driver retries it once,
    then records `message` in the summary, as a local run would have."""

    message: str
    kind: str  # the engine.errors class name, so the driver raises the same type (and exit code)
    worker: str


class BundleServer:
    """The driver's bundles, read out in pieces for a node that does not have them (a Ray actor on the driver's
    node; plain Python here). identities: {identity: the bundle folder on the driver}."""

    def __init__(self, identities: dict[str, str]) -> None:
        self.folders = {identity: Path(folder) for identity, folder in identities.items()}

    def manifest(self, identity: str) -> bytes:
        return (self.folders[identity] / MANIFEST_NAME).read_bytes()

    def piece(self, identity: str, relative: str, offset: int) -> bytes:
        with open(self.folders[identity] / relative, "rb") as file:
            file.seek(offset)
            return file.read(CHUNK_BYTES)


def fetch_bundle(identity: str, get_manifest, get_piece, cache: Path) -> Path:
    """The bundle `identity` in this node's cache, fetched once per node: under a file lock (the node's other
    workers wait, then use it), each file streamed piece by piece into a new folder, checked against the
    manifest's size and SHA-256, and the folder put in place whole (engine/atomic.py). A manifest whose hash is
    not `identity`, or a file that does not match it, is refused: the node renders nothing from a wrong model.

    get_manifest() -> bytes; get_piece(relative_path, offset) -> bytes (b"" at the end)."""
    from filelock import FileLock

    from engine.atomic import atomic_path
    from engine.bundle.manifest import Manifest

    final = cache / identity
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f".{identity}.lock")):
        if (final / MANIFEST_NAME).is_file() and bundle_identity(final) == identity:
            return final
        raw = get_manifest()
        if manifest_identity(raw) != identity:
            raise ModelBundleError(f"the driver's bundle changed during the run (manifest is not {identity}): "
                                   "run the batch again")
        manifest = Manifest.from_dict(json.loads(raw))
        with atomic_path(final, directory=True) as temporary:
            for entry in manifest.files:
                target = temporary / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, size = hashlib.sha256(), 0
                with open(target, "wb") as out:
                    while piece := get_piece(entry.path, size):
                        out.write(piece)
                        digest.update(piece)
                        size += len(piece)
                if size != entry.size or digest.hexdigest() != entry.sha256:
                    raise ModelBundleError(f"{entry.path} of bundle {identity} arrived damaged (size {size}, "
                                           f"expected {entry.size}): run the batch again")
            (temporary / MANIFEST_NAME).write_bytes(raw)
    return final


class RenderWorker:
    """One actor: opens each bundle once (on its first item) and renders items for the driver until stopped.
    bundles: the driver's BundleServer actor, for a node without the bundle folder (None: the path must exist)."""

    def __init__(self, name: str, cpus: float, bundles: Any = None) -> None:
        from engine.sessions import SessionSettings
        from plugin.batch import InProcessRenderer

        self.name = name
        self.threads = max(1, int(_assigned_cpus(cpus)))
        self.node = socket.gethostname()
        self.renderer = InProcessRenderer(sessions=SessionSettings(intra_op_threads=self.threads))
        self.identities: dict[str, str] = {}
        self.local: dict[str, str] = {}  # the driver's bundle path -> where this node has it
        self.bundles = bundles

    def where(self) -> dict[str, Any]:
        """Where this worker runs and with what: shown in the progress, checked by the tests."""
        import plugin

        return {"name": self.name, "node": self.node, "pid": os.getpid(), "threads": self.threads,
                "plugin": plugin.__file__}

    def render(self, item: BatchItem, identity: str) -> RenderedBytes | ItemFailed:
        """The item's painted image and audio, or why it failed. `identity`: the driver's bundle identity."""
        started = time.perf_counter()
        try:
            here = self._bundle_here(item.bundle, identity)
            rendered = self.renderer.render(replace(item, bundle=here), lambda stage, fraction: None)
        except RiffstudioError as error:
            return ItemFailed(message=str(error), kind=type(error).__name__, worker=self.name)
        record = {**rendered.record, "cluster": {"worker": self.name, "node": self.node, "threads": self.threads}}
        return RenderedBytes.pack(rendered.image, rendered.audio, rendered.sample_rate, record,
                                  time.perf_counter() - started, self.name)

    def _bundle_here(self, path: str, identity: str) -> str:
        """Where this node has the driver's bundle `path`: the same path (a shared file system or the image),
        checked to be the driver's very bundle; else fetched through Ray into this node's cache, once."""
        if path in self.local:
            return self.local[path]
        visible = os.environ.get(NODE_WITHOUT_BUNDLE_ENV) != "1" and (Path(path) / MANIFEST_NAME).is_file()
        if visible:
            here = bundle_identity(path)
            if here != identity:
                raise ModelBundleError(f"the bundle at {path} on node {self.node} is not the driver's (manifest "
                                       f"{here}, driver {identity}): give every node the same bundle "
                                       "(docs/cluster.md)")
            self.local[path] = path
            return path
        if self.bundles is None:
            raise ModelBundleError(f"node {self.node} has no model bundle at {path}: mount the bundle at the same "
                                   "path on every node (a shared file system or the image; docs/cluster.md)")
        import ray
        from platformdirs import user_cache_dir

        fetched = fetch_bundle(identity, lambda: ray.get(self.bundles.manifest.remote(identity)),
                               lambda relative, offset: ray.get(self.bundles.piece.remote(identity, relative, offset)),
                               Path(user_cache_dir("riffstudio", appauthor=False)) / "cluster-bundles")
        self.local[path] = str(fetched)
        return self.local[path]


def _assigned_cpus(asked: float) -> float:
    """The CPUs Ray reserved for this actor (what its sessions may use), or `asked` outside Ray."""
    try:
        import ray

        return float(ray.get_runtime_context().get_assigned_resources().get("CPU", asked))
    except Exception:  # outside an actor (tests of this module) or a Ray without the call
        return asked
