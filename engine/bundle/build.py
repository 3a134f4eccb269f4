"""A bundle's models and manifest from fp32 ONNX files: the part `model convert` (torch export) and
`model get` (templates, no torch) share, so both write the same bundle format the same way.

Per model: fp32 is the file itself; int8 and qnn quantise it (engine/bundle/quantize.py), score the
result against fp32 on this CPU and store reference inputs and outputs for `model check` elsewhere.
Then one manifest with every file's hash. Imports ONNX Runtime and onnx only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.atomic import check_writable
from engine.bundle.files import file_entries
from engine.bundle.manifest import MANIFEST_NAME, ComponentSpec, Manifest, TensorSpec, cpu_platform
from engine.cpu_features import cpu_info
from engine.errors import InvalidInputError
from engine.version import __version__

# GroupNorm exports as InstanceNormalization at opset 18, which the QNN HTP back end quantises cleanly.
OPSET = 18
MAX_LATENT_WIDTH = 256  # 2048 px (20 s of audio)
# Below this the w8a16 UNet loses its accuracy on the HTP back end (0 dB at 64 px, 41 dB from 256 px).
MIN_QNN_WIDTH = 256
# How many calibration samples each quantised model is scored on (SNR against fp32).
SNR_SAMPLES = 8
# SessionSettings options per CPU platform, by precision. int8 on ARM64 (the Snapdragon X Elite's CPU has
# bf16 dot products): the GEMMs left in fp32 (attention, the text encoder) run with bf16 products and fp32
# sums. fp32 is the reference and stays exact; qnn bundles run on the NPU.
CPU_SESSION_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "fp32": {}, "int8": {"arm64": {"arm64_bf16_fastmath": True}}, "qnn": {}}
# qnn bundles on the NPU: burst suits one loop at a time (the user picks sustained or power-saving modes
# for long batches or battery); the compiled graph is cached (minutes -> seconds at start-up).
NPU_SESSION_OPTIONS: dict[str, Any] = {"htp_performance_mode": "burst", "context_cache": True}

if TYPE_CHECKING:
    from engine.bundle.quantize import QuantizationRecord

Feeds = Mapping[str, np.ndarray]


class StagedProgress:
    """One honest bar over a build's stages: `report(stage, fraction)` maps a stage's own fraction onto the
    whole by each stage's share (`weights`), labelled from `labels` unless a label is given."""

    def __init__(self, progress: Callable[[str, float], None] | None, weights: Mapping[str, float],
                 labels: Mapping[str, str]) -> None:
        self._progress, self._weights, self._labels = progress, weights, labels
        self._done = 0.0

    def report(self, stage: str, fraction: float, label: str | None = None) -> None:
        if self._progress:
            self._progress(label or self._labels.get(stage, stage),
                           min(1.0, self._done + self._weights[stage] * fraction))

    def finish(self, stage: str) -> None:
        self._done += self._weights[stage]


def check_qnn_width(width: int) -> None:
    if width % 8 or not MIN_QNN_WIDTH <= width <= 8 * MAX_LATENT_WIDTH:
        raise InvalidInputError(f"width {width} px is not possible for the NPU: use a multiple of 8 "
                                f"from {MIN_QNN_WIDTH} to {8 * MAX_LATENT_WIDTH}")


def check_bundle_out(out: Path) -> None:
    """`out` may become a bundle: absent, empty, or a bundle (replaced); and writable."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).exists())):
        raise InvalidInputError(f"{out} exists and is not a model bundle: choose another --out "
                                "(an existing bundle there is replaced)")
    check_writable(out, directory=True)


def build_component(fp32: Path, component: str, precision: str, bundle: Path, samples: Sequence[Feeds], *,
                    inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                    validation: Mapping[str, Any], quantized: QuantizationRecord | None = None) -> ComponentSpec:
    """`component`'s model in `bundle` at `precision`, from the fp32 model at `fp32` (already the bundle's
    file for fp32). `samples` calibrate (qnn: all; int8: the static schemes) and score it (the first
    SNR_SAMPLES); `validation` is what the fp32 model's maker checked (kept in the manifest). With
    `quantized`, the int8 model is already in the bundle (quantised while pouring): it is scored, not made."""
    name = f"{component}.onnx"
    checked = dict(validation)
    if precision == "fp32":
        return ComponentSpec(file=name, inputs=inputs, outputs=outputs, validation=checked)
    from engine.bundle.quantize import (
        INT8_SNR_FLOORS_DB,
        build_reference,
        component_snr_db,
        quantize_int8,
        quantize_qnn,
        score_int8,
    )
    from engine.bundle.reference import REFERENCE_SAMPLES, reference_file, write_reference

    scored = list(samples[:SNR_SAMPLES])
    if precision == "qnn":
        record = quantize_qnn(fp32, bundle / name, component, samples)
        snr = round(component_snr_db(fp32, bundle / name, scored), 2)
    elif quantized is not None:
        record = score_int8(fp32, bundle / name, quantized, scored_on=scored,
                            min_snr_db=INT8_SNR_FLOORS_DB.get(component))
        snr = record.snr_db
    else:
        record = quantize_int8(fp32, bundle / name, component, calibration=samples, scored_on=scored,
                               min_snr_db=INT8_SNR_FLOORS_DB.get(component))
        snr = record.snr_db
    inputs, outputs = describe_onnx(bundle / name)
    if record.refused:
        checked["int8_refused"] = record.refused
    reference = ""
    if record.scheme != "fp32":  # a copy of the fp32 model has no quantisation error to score
        checked["snr_db_vs_fp32"] = snr
        # What `model check` compares against on another CPU (ONNX Runtime's int8 kernels differ by CPU).
        stored, reference_snr = build_reference(fp32, bundle / name, list(samples[:REFERENCE_SAMPLES]), inputs)
        reference = reference_file(component)
        write_reference(bundle / reference, stored)
        checked["reference_snr_db"] = round(reference_snr, 2)
    return ComponentSpec(file=name, inputs=inputs, outputs=outputs, quantization=record.scheme,
                         validation=checked, reference=reference)


def write_manifest(bundle: Path, *, precision: str, source: str, revision: str, scheduler_config: Mapping[str, Any],
                   components: dict[str, ComponentSpec], latent_scale_factor: float, image_height: int,
                   text_hidden_size: int, qnn_width: int) -> Manifest:
    """Hash every file of `bundle` and write its manifest (last: a bundle without one is no bundle)."""
    import onnxruntime

    manifest = Manifest(
        precision=precision, source=source, source_revision=revision, opset=OPSET,
        onnxruntime_version=onnxruntime.__version__, riffstudio_version=__version__,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        scheduler=clean_scheduler_config(scheduler_config), components=components, files=file_entries(bundle),
        latent_scale_factor=float(latent_scale_factor), image_height=int(image_height),
        image_width=qnn_width if precision == "qnn" else 512, fixed_shapes=precision == "qnn",
        max_image_width=qnn_width if precision == "qnn" else 8 * MAX_LATENT_WIDTH,
        text_hidden_size=int(text_hidden_size),
        runtime={"converted_on": cpu_platform(), "converted_on_cpu": cpu_info().describe(),
                 "cpu": CPU_SESSION_OPTIONS[precision], **({"qnn": NPU_SESSION_OPTIONS} if precision == "qnn" else {})})
    (bundle / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def clean_scheduler_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduler config as plain JSON (diffusers' FrozenDict and private keys dropped)."""
    return {k: v for k, v in json.loads(json.dumps(dict(config), default=list)).items()
            if not k.startswith("_") or k == "_class_name"}


def describe_onnx(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output specs as ONNX Runtime sees them (str dims are dynamic)."""
    from engine.sessions import SessionSettings, create_session

    session = create_session(path, SessionSettings())

    def spec(arg: Any) -> TensorSpec:
        dtype = arg.type.removeprefix("tensor(").removesuffix(")")
        dtype = {"float": "float32", "double": "float64"}.get(dtype, dtype)
        return TensorSpec(arg.name, dtype, tuple(d if isinstance(d, int) else str(d) for d in arg.shape))

    return tuple(map(spec, session.get_inputs())), tuple(map(spec, session.get_outputs()))
