"""`riffstudio model compile BUNDLE --device NAME [--profile]`: a qnn bundle's models compiled for one
Snapdragon device by Qualcomm AI Hub, written back into the bundle.

Every model is submitted first (AI Hub compiles them in parallel), then each is waited for and
downloaded. The bundle is rewritten as a new folder (engine/atomic.py): its files hard-linked (copied
where links are impossible), each compiled model in `<component>_qnn/`, the manifest pointing every
component at its compiled model, with every file's hash and the job ids. The source ONNX files stay
in the bundle, so it can be compiled again for another device. A failure at any point (no token,
refused, offline, rate-limited, a failed job) is one line and leaves the bundle as it was.

The compiled models are QNN EP-context ONNX files: the manifest's `runtime.qnn.context_cache = false`
makes the session code load them directly, as it loads its own context cache.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path, check_writable
from engine.bundle import open_bundle
from engine.bundle.check import concrete_shape
from engine.bundle.files import file_entries
from engine.bundle.manifest import COMPONENTS, MANIFEST_NAME, ComponentSpec, Manifest
from engine.errors import HubError, ModelBundleError
from engine.hub import service
from engine.hub.latency import latency_table, profile_latency_ms
from engine.hub.token import require_token

COMPILED_SUFFIX = "_qnn"
SKIPPED_FOLDERS = ("cache",)  # contexts compiled on this machine are stale for the compiled models


@dataclass(frozen=True)
class CompileResult:
    bundle: Path
    device: str
    jobs: dict[str, str]  # component -> compile job id
    latencies_ms: dict[str, float | None]  # component -> profiled latency (empty without --profile)

    def render(self) -> str:
        lines = [f"compiled {len(self.jobs)} models of {self.bundle} for {self.device} "
                 f"(jobs {', '.join(self.jobs.values())})"]
        if self.latencies_ms:
            lines += ["", latency_table(self.device, self.latencies_ms)]
        return "\n".join(lines)


def compile_bundle(path: str | Path, device: str, *, profile: bool = False,
                   report: Callable[[str], None] = print) -> CompileResult:
    bundle_dir = Path(path)
    require_token()
    bundle = open_bundle(bundle_dir, hashes=True)
    if bundle.precision != "qnn":
        raise ModelBundleError(f"{bundle_dir} is a {bundle.precision} bundle: AI Hub compiles qnn bundles; make "
                               "one with `riffstudio model convert SRC --out BUNDLE --precision qnn`")
    check_writable(bundle_dir, directory=True)
    manifest = bundle.manifest
    sources = {c: source_file(manifest, c) for c in COMPONENTS}
    with tempfile.TemporaryDirectory(prefix="riffstudio-hub-") as staging:
        uploads = {c: upload_path(bundle_dir, manifest, sources[c], Path(staging) / c) for c in COMPONENTS}
        jobs = {}
        for component in COMPONENTS:
            report(f"uploading {component} ({uploads[component].name}) to AI Hub")
            jobs[component] = service.submit_compile(uploads[component], device, component)
        for component, job in jobs.items():
            service.wait(job, f"compiling {component}", report)
        latencies = profile_models(manifest, jobs, device, report) if profile else {}
        with atomic_path(bundle_dir, directory=True) as temp:
            link_tree(bundle_dir, temp)
            components = dict(manifest.components)
            for component, job in jobs.items():
                report(f"downloading compiled {component} (job {job.job_id})")
                downloaded = service.download_target(job, Path(staging) / f"{component}-target", component)
                main = install_compiled(downloaded, temp / f"{component}{COMPILED_SUFFIX}")
                components[component] = dataclasses.replace(components[component],
                                                             file=main.relative_to(temp).as_posix())
            updated = compiled_manifest(manifest, components, temp, device, jobs, sources, latencies)
            (temp / MANIFEST_NAME).write_text(updated.to_json(), encoding="utf-8")
    return CompileResult(bundle_dir, device, {c: j.job_id for c, j in jobs.items()}, latencies)


def source_file(manifest: Manifest, component: str) -> str:
    """The ONNX file to upload: the bundle's own, or (compiled before) the source it was compiled from."""
    earlier = manifest.runtime.get("ai_hub", {}).get("components", {}).get(component, {})
    return earlier.get("source_file") or manifest.components[component].file


def upload_path(bundle_dir: Path, manifest: Manifest, file: str, staging: Path) -> Path:
    """The model as AI Hub takes it: the .onnx file, or with external weights a folder named *.onnx
    holding the model and its data files (hard links in `staging`)."""
    model = bundle_dir / file
    data = [e.path for e in manifest.files if e.path.startswith(f"{file}.")]  # unet.onnx.data
    if not data:
        return model
    folder = staging / model.name
    folder.mkdir(parents=True)
    for name in (file, *data):
        link_or_copy(bundle_dir / name, folder / Path(name).name)
    return folder


def profile_models(manifest: Manifest, jobs: dict, device: str,
                   report: Callable[[str], None]) -> dict[str, float | None]:
    """One inference job with profiling per compiled model, on random inputs of the model's fixed shapes."""
    rng = np.random.default_rng(0)
    latencies: dict[str, float | None] = {}
    for component, compile_job in jobs.items():
        spec: ComponentSpec = manifest.components[component]
        inputs = {t.name: [random_input(t, rng, manifest)] for t in spec.inputs}
        with service.hub_errors(f"reading the compiled {component}"):
            target = compile_job.get_target_model()
        job = service.submit_profile(target, device, component, inputs)
        service.wait(job, f"profiling {component}", report)
        latencies[component] = profile_latency_ms(service.download_profile(job, component))
    return latencies


def random_input(spec, rng: np.random.Generator, manifest: Manifest) -> np.ndarray:
    shape = concrete_shape(spec, manifest.image_width // 8)
    if spec.dtype.startswith("int"):
        return rng.integers(0, 49407, size=shape).astype(np.dtype(spec.dtype))
    return rng.standard_normal(shape).astype(np.float32)


def install_compiled(downloaded: Path, folder: Path) -> Path:
    """A downloaded target model (an .onnx file, a folder, or a zip of one) as `folder`; returns its
    main .onnx file. The EP-context model names its binary by a relative path: they stay together."""
    folder.mkdir(parents=True)
    if downloaded.is_dir():
        shutil.copytree(downloaded, folder, dirs_exist_ok=True)
    elif zipfile.is_zipfile(downloaded):
        with zipfile.ZipFile(downloaded) as archive:
            archive.extractall(folder)
    else:
        shutil.copy2(downloaded, folder / downloaded.name)
    models = sorted((p for p in folder.rglob("*.onnx") if p.is_file()), key=lambda p: (len(p.parts), p.name))
    if not models:
        raise HubError(f"the compiled model from AI Hub ({downloaded.name}) holds no .onnx file; compile again")
    return models[0]


def link_tree(source: Path, destination: Path) -> None:
    """Every file of the bundle into the new folder (hard links: no second copy of a 1 GB UNet)."""
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if relative.parts[0] in SKIPPED_FOLDERS or relative.parts[0].endswith(COMPILED_SUFFIX) or \
                relative.as_posix() == MANIFEST_NAME or not path.is_file():
            continue
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(path, destination / relative)


def link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def compiled_manifest(manifest: Manifest, components: dict[str, ComponentSpec], folder: Path, device: str,
                      jobs: dict, sources: dict[str, str], latencies: dict[str, float | None]) -> Manifest:
    files = tuple(e for e in file_entries(folder) if e.path != MANIFEST_NAME)
    hashes = {e.path: e.sha256 for e in files}
    hub = {"device": device, "qai_hub": service.version(), "options": service.COMPILE_OPTIONS,
           "compiled": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "components": {c: {"job_id": jobs[c].job_id, "file": components[c].file,
                              "sha256": hashes[components[c].file],
                              "source_file": sources[c], "source_sha256": hashes[sources[c]],
                              **({"latency_ms": latencies[c]} if c in latencies else {})}
                          for c in jobs}}
    qnn = {**manifest.runtime.get("qnn", {}), "context_cache": False}
    return dataclasses.replace(manifest, components=components, files=files,
                               runtime={**manifest.runtime, "qnn": qnn, "ai_hub": hub})
