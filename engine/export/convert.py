"""`riffstudio model convert`: a diffusers checkpoint becomes a model bundle the engine loads with no torch.

Stages, each reported to `progress(stage, fraction)`: load the checkpoint, write the tokenizer, export
and check each model, quantise where asked, hash everything into the manifest. The bundle folder is
written under a temporary name and renamed at the end, so it appears complete or not at all.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path, check_writable_folder
from engine.bundle.build import (
    SNR_SAMPLES,
    StagedProgress,
    build_component,
    check_bundle_out,
    check_qnn_width,
    write_manifest,
)
from engine.bundle.manifest import COMPONENTS, PRECISIONS, TOKENIZER_NAME, ComponentSpec, Manifest
from engine.cpu_features import usable_cpus
from engine.errors import InvalidInputError, ModelBundleError
from engine.export.export_cache import export_with_cache
from engine.export.onnx_export import COMPONENT_OWNER, ExportedModel
from engine.export.source import check_config_folder, load_checkpoint

Progress = Callable[[str, float], None]

# Rough share of the whole conversion each stage takes, for one honest progress bar: exporting (the
# UNet's dominates), then per model its quantisation and scoring (nothing left to do for fp32).
STAGE_WEIGHTS = {"load": 0.04, "calibration": 0.20, "tokenizer": 0.01, "export": 0.45, "text_encoder": 0.03,
                 "unet": 0.12, "vae_decoder": 0.05, "vae_encoder": 0.05, "manifest": 0.05}
# Each model's share of the export stage (time on the tiny test model and at full size alike).
EXPORT_WEIGHTS = {"text_encoder": 0.08, "unet": 0.68, "vae_decoder": 0.12, "vae_encoder": 0.12}
# Peak memory of one export child per byte of the torch module it exports (module, its saved copy, the
# exporter's graphs and the ONNX model it writes), a rough upper bound.
EXPORT_PEAK_PER_MODULE_BYTE = 4
STAGE_LABELS = {"load": "loading the checkpoint", "calibration": "calibrating on music prompts",
                "tokenizer": "writing the tokenizer", "export": "exporting the models", "manifest": "hashing files"}


@dataclass(frozen=True)
class ConvertSettings:
    source: str
    out: Path
    precision: str = "fp32"
    calibration_prompts: Path | None = None
    # QNN bundles have fixed shapes: the one image width they generate (pixels).
    qnn_width: int = 512
    # Reuse ONNX exports of the same checkpoint across conversions (fp32 and int8 share theirs).
    export_cache: Path | None = None
    # A single .ckpt/.safetensors file's architecture: a diffusers config folder (default: SD 1.5's).
    config: Path | None = None

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        check_qnn_width(self.qnn_width)
        if self.calibration_prompts is not None and self.precision != "qnn":
            raise InvalidInputError("--calibration-prompts only applies to --precision qnn")
        if self.calibration_prompts is not None:
            read_prompts(self.calibration_prompts)
        if self.config is not None:
            check_config_folder(self.source, Path(self.config))
        # Last: the cheap checks above fail first; these touch the disk. Minutes of export come after.
        check_bundle_out(Path(self.out))
        if self.export_cache is not None:
            check_writable_folder(self.export_cache)


def read_prompts(path: Path) -> tuple[str, ...]:
    """One prompt per non-empty line of a UTF-8 text file."""
    try:
        prompts = tuple(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"cannot read calibration prompts from {path} ({error}): give a UTF-8 text "
                                "file with one prompt per line") from None
    if not prompts:
        raise InvalidInputError(f"{path} has no prompts: write one music prompt per line")
    return prompts


def convert(settings: ConvertSettings, progress: Progress | None = None) -> Manifest:
    """Build the bundle described by `settings`; returns its manifest."""
    settings.validate()
    stages = StagedProgress(progress, STAGE_WEIGHTS, STAGE_LABELS)
    stages.report("load", 0.0)
    checkpoint = load_checkpoint(settings.source, settings.config)
    stages.finish("load")
    calibration = _calibrate(checkpoint, settings, stages) if settings.precision != "fp32" else None
    stages.finish("calibration")
    out = Path(settings.out)
    with atomic_path(out, directory=True) as bundle, tempfile.TemporaryDirectory(
            prefix=".riffstudio-convert-", dir=out.parent) as work:
        stages.report("tokenizer", 0.0)
        write_tokenizer(checkpoint.tokenizer, bundle / TOKENIZER_NAME)
        stages.finish("tokenizer")
        # fp32 exports are the bundle's files; the others are quantised from exports in `work`.
        exports = export_all(checkpoint, settings, bundle if settings.precision == "fp32" else Path(work), stages)
        stages.finish("export")
        components: dict[str, ComponentSpec] = {}
        for component in COMPONENTS:
            if settings.precision != "fp32":
                stages.report(component, 0.0, f"quantising {component}")
            components[component] = _build_component(exports[component], component, settings, bundle,
                                                     calibration)
            stages.finish(component)
        stages.report("manifest", 0.0)
        manifest = write_manifest(
            bundle, precision=settings.precision, source=checkpoint.source, revision=checkpoint.revision,
            scheduler_config=checkpoint.scheduler_config, components=components,
            latent_scale_factor=checkpoint.vae.config.scaling_factor, image_height=checkpoint.vae.config.sample_size,
            text_hidden_size=checkpoint.text_encoder.config.hidden_size, qnn_width=settings.qnn_width)
        stages.finish("manifest")
    return manifest


def _calibrate(checkpoint: Any, settings: ConvertSettings, stages: StagedProgress) -> Any:
    """Inputs of every model along real guided denoising runs of the checkpoint (torch side)."""
    from engine.export.calibration import MUSIC_PROMPTS, CalibrationSettings, capture_calibration_set

    if settings.precision == "qnn":
        prompts = read_prompts(settings.calibration_prompts) if settings.calibration_prompts else MUSIC_PROMPTS
        options = CalibrationSettings(prompts=prompts, width=settings.qnn_width)
    else:
        # int8: only the VAE is calibrated (the UNet's activations are quantised at run time).
        options = CalibrationSettings(prompts=MUSIC_PROMPTS[:SNR_SAMPLES], captures=1, vae_samples=SNR_SAMPLES)
    return capture_calibration_set(
        checkpoint, options,
        progress=lambda done, total: stages.report("calibration", done / total))


def export_all(checkpoint: Any, settings: ConvertSettings, folder: Path,
               stages: StagedProgress) -> dict[str, ExportedModel]:
    """Every model exported to `folder`, each in its own child interpreter (see isolated_export).

    The UNet's export takes about two thirds of the time; with a second core and memory for both, the
    small models export one after another beside it, which takes their share off the wall time."""
    fixed_width = settings.qnn_width if settings.precision == "qnn" else None
    module_bytes = {c: _module_bytes(getattr(checkpoint, COMPONENT_OWNER[c])) for c in COMPONENTS}
    workers = export_workers(module_bytes, available_memory(), usable_cpus())
    pending = list(COMPONENTS)
    done = 0.0

    def export(component: str) -> ExportedModel:
        return export_with_cache(checkpoint, component, folder / f"{component}.onnx", fixed_width=fixed_width,
                                 cache=settings.export_cache)

    stages.report("export", 0.0, f"exporting {', '.join(pending)}")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
        # The UNet first, so it never waits behind the small ones.
        order = sorted(COMPONENTS, key=lambda c: c != "unet")
        futures = {pool.submit(export, component): component for component in order}
        results: dict[str, ExportedModel] = {}
        failure: BaseException | None = None
        for future in as_completed(futures):
            component = futures[future]
            try:
                results[component] = future.result()
            except BaseException as error:  # the others run on (they are child processes): report the first
                failure = failure or error
            pending.remove(component)
            done += EXPORT_WEIGHTS[component]
            stages.report("export", done, f"exporting {', '.join(pending)}" if pending else "exported")
    if failure is not None:
        raise failure
    return results


def export_workers(module_bytes: dict[str, int], available: int | None, cpus: int) -> int:
    """2 when the small models can export beside the UNet (a second core, memory for both), else 1."""
    if cpus < 2 or available is None:
        return 1
    beside = max(size for component, size in module_bytes.items() if component != "unet")
    return 2 if available >= EXPORT_PEAK_PER_MODULE_BYTE * (module_bytes["unet"] + beside) else 1


def available_memory() -> int | None:
    """Bytes of memory available to new processes (None where it cannot be read)."""
    try:
        import psutil  # accelerate's dependency, so there wherever the export extra is

        return int(psutil.virtual_memory().available)
    except (ImportError, OSError):
        return None


def _module_bytes(module: Any) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _build_component(exported: ExportedModel, component: str, settings: ConvertSettings, bundle: Path,
                     calibration: Any) -> ComponentSpec:
    samples = calibration.for_component(component) if calibration is not None else []
    return build_component(exported.path, component, settings.precision, bundle, samples, inputs=exported.inputs,
                           outputs=exported.outputs,
                           validation={"max_abs_error_vs_torch": exported.max_abs_error_vs_torch})


def write_tokenizer(tokenizer: Any, path: Path) -> None:
    """The checkpoint's CLIP tokenizer as one `tokenizers` file, with CLIP's 77-token padding built in."""
    from engine.tokenizer import CONTEXT_LENGTH

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelBundleError("the checkpoint's tokenizer has no fast (tokenizers) form: update transformers")
    backend = type(backend).from_str(backend.to_str())  # a copy: leave the caller's tokenizer as it was
    pad_id = backend.token_to_id(tokenizer.pad_token)
    backend.enable_truncation(CONTEXT_LENGTH)
    backend.enable_padding(length=CONTEXT_LENGTH, pad_id=pad_id, pad_token=tokenizer.pad_token)
    backend.save(str(path))
