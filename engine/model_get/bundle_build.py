"""A diffusers checkpoint folder -> a model bundle, with ONNX Runtime, numpy and onnx only.

The same bundle `model convert` writes (engine/bundle/build.py writes both), made another way: the
weights are poured into the architecture's templates (engine/model_get/template.py) instead of exported
by torch, and quantisation calibrates on real spectrograms through the forward process
(engine/model_get/calibration.py) instead of guided denoising runs. Everything a producer can get wrong
is checked before the first weight is written: the folder's pieces, the architecture, every weight's
name and shape, the output folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.bundle.build import (
    StagedProgress,
    build_component,
    check_bundle_out,
    check_qnn_width,
    write_manifest,
)
from engine.bundle.manifest import COMPONENTS, PRECISIONS, TOKENIZER_NAME, Manifest
from engine.bundle.quantize import DEFAULT_INT8_SCHEMES, DYNAMIC_OP_TYPES, dynamic_int8_record
from engine.errors import InvalidInputError, ModelBundleError
from engine.model_get.architecture import CONFIG_FOLDERS, complete
from engine.model_get.calibration import CalibrationPlan, calibration_feeds, check_calibration_images
from engine.model_get.clip_tokenizer import write_clip_tokenizer
from engine.model_get.template import WEIGHT_FOLDER, TemplateSet, WeightSource, check_fits, fill
from engine.model_get.template_store import templates_for, variant_for
from engine.model_get.weights import FolderWeights, SingleFileModel, WeightFiles, read_json, weight_files

Progress = Callable[[str, float], None]
# CPU bundles take any width: they calibrate and are scored on 256 px (2.56 s) of each spectrogram, which
# quarters the full-size VAE decoder's and UNet's runs against 512 px (the VAE decoder's calibration was
# most of an int8 build) for ranges of the same music; qnn bundles calibrate at their one width.
CPU_CALIBRATION_WIDTH = 256
# The static VAE decoder ranges (int8's and qnn's) also see the ends of two guided runs of the default sampler
# (28 UNet calls at the calibration width; see CalibrationPlan.guided_runs): spectrogram latents alone left the
# full-size int8 decoder 5.6 dB below model convert's on Gaussian latents (random weights; with them: 3.0 dB,
# and 1.1 dB below on held-out spectrogram latents: tests/benchmarks/results/model-get-full.md).
GUIDED_RUNS = 2
# Share of the build each stage takes (measured at full size, int8): pouring (fp32, then the dynamic models as
# int8) and the static VAE decoder's calibration and scoring dominate; the UNet is only scored.
STAGES = {"templates": 0.01, "tokenizer": 0.01, "pour": 0.22, "calibration": 0.15, "text_encoder": 0.04,
          "unet": 0.22, "vae_decoder": 0.30, "vae_encoder": 0.01, "manifest": 0.04}
LABELS = {"templates": "finding the model graphs", "tokenizer": "writing the tokenizer",
          "pour": "pouring the weights into the graphs", "calibration": "calibrating on spectrograms",
          "manifest": "hashing files"}


@dataclass(frozen=True)
class BuildSettings:
    folder: Path  # a diffusers Stable Diffusion folder (configs, tokenizer, and weights unless weights_file)
    out: Path
    precision: str = "int8"
    qnn_width: int = 512
    source: str = ""  # where it came from, for the manifest (a Hub id, a folder)
    revision: str = ""  # the Hub commit, or a content id of the folder
    # An original-layout single checkpoint file holding the weights (then `folder` has configs and tokenizer).
    weights_file: Path | None = None
    # How many of the shipped spectrograms calibrate int8/qnn (fewer: faster, ranges from less music).
    calibration_images: int = CalibrationPlan.images

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        check_qnn_width(self.qnn_width)
        check_calibration_images(self.calibration_images)
        check_bundle_out(Path(self.out))


def build_bundle(settings: BuildSettings, progress: Progress | None = None,
                 say: Callable[[str], None] = print) -> Manifest:
    """Build the bundle `settings` describe; returns its manifest. `say` gets one-off notes (a template build)."""
    settings.validate()
    folder = Path(settings.folder)
    stages = StagedProgress(progress, STAGES, LABELS)
    stages.report("templates", 0.0)
    scheduler_config = read_json(folder / "scheduler" / "scheduler_config.json")
    raw_configs = {name: read_json(folder / name / "config.json") for name in CONFIG_FOLDERS}
    architecture = complete(raw_configs)  # read_architecture's, from the configs read once here
    if settings.weights_file is not None:
        single = SingleFileModel(settings.weights_file, raw_configs)
        weights, opened = {name: single.view(name) for name in CONFIG_FOLDERS}, [single]
    else:
        files = _weight_files(folder)
        weights = {name: FolderWeights(folder / name, files[name]) for name in files}
        opened = list(weights.values())
    try:
        templates = templates_for(architecture, raw_configs, variant_for(settings.precision, settings.qnn_width),
                                  say)
        for component in COMPONENTS:
            check_fits(templates.components[component], weights[WEIGHT_FOLDER[component]], f"{folder}/"
                       f"{WEIGHT_FOLDER[component]}")
        stages.finish("templates")
        return _build(settings, templates, weights, raw_configs, scheduler_config, stages,
                      release_sources=lambda: [source.close() for source in opened])
    finally:
        for source in opened:
            source.close()


def _build(settings: BuildSettings, templates: TemplateSet, weights: dict[str, WeightSource],
           configs: dict[str, dict], scheduler_config: dict, stages: StagedProgress,
           release_sources: Callable[[], object]) -> Manifest:
    """The bundle from the checked sources; `release_sources()` releases the checkpoint once its weights are in the
    graphs (its memory map would otherwise stay resident, 4 GB at full size, through the whole build)."""
    from engine.tokenizer import PromptTokenizer

    out, folder = Path(settings.out), Path(settings.folder)
    vae = configs["vae"]
    # The spectrogram's height is the VAE's sample size (512 for riffusion).
    latent_scale, image_height = float(vae.get("scaling_factor", 0.18215)), int(vae.get("sample_size", 512))
    with atomic_path(out, directory=True) as bundle, tempfile.TemporaryDirectory(
            prefix=".riffstudio-get-", dir=out.parent) as work:
        stages.report("tokenizer", 0.0)
        write_clip_tokenizer(folder / "tokenizer", bundle / TOKENIZER_NAME)
        stages.finish("tokenizer")
        fp32_folder = bundle if settings.precision == "fp32" else Path(work)
        fp32: dict[str, Path] = {}
        sizes = {c: sum(int(np.prod(w.shape)) for w in templates.components[c].weights)
                 for c in COMPONENTS}
        # int8's dynamic models are quantised as they are poured (a second pass over those weights): ONNX
        # Runtime's quantize_dynamic would hold the fp32 UNet several times over in memory.
        dynamic = dynamic_int8_schemes() if settings.precision == "int8" else {}
        passes = [(c, "fp32") for c in COMPONENTS] + [(c, "int8") for c in COMPONENTS if c in dynamic]
        total, done = sum(sizes[c] for c, _ in passes) or 1, 0
        for component, kind in passes:
            def poured(fraction: float, component: str = component, done: int = done, kind: str = kind) -> None:
                stages.report("pour", (done + fraction * sizes[component]) / total,
                              f"pouring the {component} weights" + (" (int8)" if kind == "int8" else ""))

            source = weights[WEIGHT_FOLDER[component]]
            if kind == "fp32":
                fp32[component] = fill(templates, component, source, fp32_folder / f"{component}.onnx", poured)
            else:
                fill(templates, component, source, bundle / f"{component}.onnx", poured,
                     int8_op_types=DYNAMIC_OP_TYPES[dynamic[component]])
            done += sizes[component]
        release_sources()
        stages.finish("pour")
        samples: dict[str, list] = {c: [] for c in COMPONENTS}
        kept_fp32 = {c for c, scheme in DEFAULT_INT8_SCHEMES.items() if scheme == "fp32"}  # by int8
        if settings.precision != "fp32":
            stages.report("calibration", 0.0)
            plan = CalibrationPlan(images=settings.calibration_images,
                                   width=templates.fixed_width or CPU_CALIBRATION_WIDTH,
                                   timesteps=CalibrationPlan.timesteps if settings.precision == "qnn" else 1,
                                   guided_runs=GUIDED_RUNS,
                                   decode_run_ends=settings.precision == "qnn" or "vae_encoder" not in kept_fp32)
            # The guided runs use the int8 UNet where it is already poured: a third of the fp32 one's memory,
            # faster, and what makes the latents the decoder meets in use.
            samples = calibration_feeds(fp32, PromptTokenizer(bundle / TOKENIZER_NAME), scheduler_config,
                                        latent_scale_factor=latent_scale, plan=plan,
                                        progress=lambda f: stages.report("calibration", f),
                                        guide_unet=bundle / "unet.onnx" if "unet" in dynamic else None)
        stages.finish("calibration")
        components = {}
        for component in COMPONENTS:
            template = templates.components[component]
            if settings.precision != "fp32":
                stages.report(component, 0.0, f"scoring the int8 {component} against fp32" if component in dynamic
                              else f"quantising the {component}")
            components[component] = build_component(
                fp32[component], component, settings.precision, bundle, samples[component],
                inputs=template.inputs, outputs=template.outputs,
                validation={"template": f"{templates.variant} {templates.signature} {templates.export_key}"},
                quantized=dynamic_int8_record(component, dynamic[component]) if component in dynamic else None)
            stages.finish(component)
        stages.report("manifest", 0.0)
        manifest = write_manifest(
            bundle, precision=settings.precision, source=settings.source or str(folder.resolve()),
            revision=settings.revision, scheduler_config=scheduler_config, components=components,
            latent_scale_factor=latent_scale, image_height=image_height,
            text_hidden_size=int(configs["text_encoder"]["hidden_size"]), qnn_width=settings.qnn_width)
        stages.finish("manifest")
    return manifest


def dynamic_int8_schemes() -> dict[str, str]:
    """The components whose int8 scheme is dynamic (quantised while pouring), and that scheme."""
    return {c: scheme for c, scheme in DEFAULT_INT8_SCHEMES.items() if scheme in DYNAMIC_OP_TYPES}


def _weight_files(folder: Path) -> dict[str, WeightFiles]:
    found = {}
    for name in ("text_encoder", "unet", "vae"):
        files = weight_files(folder / name)
        if files is None:
            raise ModelBundleError(f"{folder}/{name} has no weights (.safetensors or .bin): the download is "
                                   "incomplete, fetch the whole model folder again")
        found[name] = files
    return found
