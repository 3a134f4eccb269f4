"""Quantized variants of the fp32 ONNX components: `int8` for ONNX Runtime's CPU provider, `qnn` for
the Hexagon NPU (static QDQ, w8a16), and the SNR that says how much each one lost.

Export time only: imports onnx and onnxruntime.quantization lazily.

`qnn` uses onnxruntime's own QNN helpers (`qnn_preprocess_model`, `get_qnn_qdq_config`,
`quantize_static`) rather than AIMET-ONNX: they come with the onnxruntime we already ship, they
know the QNN execution provider's operator constraints (16-bit MatMul/LayerNorm/Sigmoid overrides),
and the result runs on the same provider they are tested against. AIMET's extra tools (AdaRound,
sequential MSE) cost hours and a CUDA machine; w8a16 MinMax measured above 30 dB here already.
Calibration is ours (`engine/bundle/ranges.py`): streaming min/max, so the full UNet fits in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import replace
from engine.bundle.ranges import collect_ranges, write_calibration_cache
from engine.bundle.reference import Reference, crop_feeds, run_feeds, snr_db
from engine.errors import InvalidInputError, ModelBundleError

COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
# Models above this size keep their weights in an external file (protobuf's limit is 2 GB).
EXTERNAL_DATA_THRESHOLD = 1 << 30

# int8 schemes for ONNX Runtime's CPU provider, by name:
#   fp32: no quantization (the model is copied). For the text encoder: one call per prompt, cheap.
#   dynamic_u8_per_channel: MatMul/Conv weights QUInt8 per channel, activations quantized at run
#       time. u8 weights avoid the u8 x s8 saturation (and slow path) of CPUs without VNNI.
#   dynamic_u8_matmul: the same for MatMul/Gemm only; Conv stays fp32. ONNX Runtime has no fast
#       ConvInteger on x86 (it runs im2col + an integer GEMM) while its fp32 Conv uses the blocked NCHWc
#       layout, so Conv may be cheaper left in fp32 (measured: tests/benchmarks/bench_unet_calls.py).
#   static_qdq_u8s7: QDQ with calibrated QUInt8 activations and QInt8 per-channel weights kept within
#       -64..64 (7 bits, onnxruntime's reduce_range). Without VNNI (AVX2-only x86: Intel before Ice Lake,
#       AMD Zen 2/3) ONNX Runtime multiplies u8 x s8 with VPMADDUBSW, which adds pairs of products in
#       saturating 16 bits: 2 x 255 x 127 overflows, 2 x 255 x 64 = 32640 cannot. Full-range weights
#       scored 4-7 dB there against 13-20 dB with VNNI (the tiny and the full VAE decoder); the reduced
#       range gives the same numbers on every CPU for 0.1-0.3 dB less where VNNI is present, at the same
#       speed (docs/qnn-notes.md). u8 x u8 avoids saturation too, but ran slower than fp32.
#   static_qdq_u8s8: full-range QInt8 weights; exact only with VNNI (or on ARM64). Kept to measure it.
INT8_SCHEMES = ("fp32", "dynamic_u8_per_channel", "dynamic_u8_matmul", "static_qdq_u8s7", "static_qdq_u8s8")
# The op types each dynamic scheme quantises.
DYNAMIC_OP_TYPES = {"dynamic_u8_per_channel": ("MatMul", "Conv"), "dynamic_u8_matmul": ("MatMul", "Gemm")}
# Chosen from measurements on full SD 1.5 sizes (docs/qnn-notes.md, results/bundle-full.md): the UNet
# gains 12-31% with dynamic u8 (27 dB), the VAE decoder 36-64% with static QDQ; the VAE encoder is not
# worth it.
DEFAULT_INT8_SCHEMES = {
    # Not for speed (one call per prompt) but memory: the fp32 CLIP text encoder holds 702 MiB resident
    # in a session, its MatMul-only u8 form 289 MiB (the token table stays fp32) for 31 dB at full size
    # (random weights, session 8): the difference is what brings a loop's peak RSS under 2.5 GB.
    "text_encoder": "dynamic_u8_matmul",
    "unet": "dynamic_u8_per_channel",
    "vae_decoder": "static_qdq_u8s7",
    # Measured at full size (tests/benchmarks/results/bundle-full.md): dynamic u8 made the encoder slower
    # than fp32 (6.07 s vs 5.63 s per 512 px image) for 21.7 dB. Audio-to-audio runs it once per job.
    "vae_encoder": "fp32",
}

# A quantised model below its floor (SNR against fp32 on the converter's samples) is not kept: the
# bundle gets the fp32 model and its manifest says why. The text encoder's is there because random
# weights cannot show it: CLIP's real activations have outlier channels that per-tensor dynamic
# activations may not survive, and an embedding 25 dB off would add more error than the int8 UNet's own.
INT8_SNR_FLOORS_DB = {"text_encoder": 25.0}


@dataclass(frozen=True)
class QuantizationRecord:
    """What was done to one component, for the bundle manifest."""

    component: str
    target: str  # "int8" or "qnn"
    scheme: str
    weight_type: str
    activation_type: str
    per_channel: bool
    calibration_samples: int
    snr_db: float | None = None  # against fp32 on the samples it was scored on, if any
    refused: str = ""  # why the quantised model was replaced by the fp32 one

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Feeds = Mapping[str, np.ndarray]


def quantize_qnn(fp32_static_path: str | Path, out_path: str | Path, component: str,
                 calibration: Iterable[Feeds], *, activation_type: str = "uint16",
                 weight_type: str = "uint8", progress: Callable[[int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> QuantizationRecord:
    """Static QDQ model of `fp32_static_path` (fixed shapes) for QNN's HTP back end, at `out_path`.

    Weights 8-bit symmetric (per channel for Conv, as HTP requires signed symmetric per-channel
    weights), activations 16-bit, calibrated by min/max over `calibration` (feeds by input name,
    streamed: any number of samples in constant memory).
    """
    from onnxruntime.quantization import QuantType, quantize_static
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    _check_component(component)
    fp32_static_path, out_path = Path(fp32_static_path), Path(out_path)
    _check_static(fp32_static_path)
    qtypes = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16, "int8": QuantType.QInt8,
              "int16": QuantType.QInt16}
    if activation_type not in qtypes or weight_type not in qtypes:
        raise InvalidInputError(f"quantization types must be among {', '.join(qtypes)}, "
                                f"not {activation_type}/{weight_type}")
    with _workdir(out_path) as work:
        preprocessed = work / "preprocessed.onnx"
        large = _is_large(fp32_static_path)
        if not qnn_preprocess_model(fp32_static_path, preprocessed, save_as_external_data=large,
                                    all_tensors_to_one_file=True,
                                    external_data_location="preprocessed.onnx.data"):
            preprocessed = fp32_static_path
        # 16-bit Q/DQ needs opset 21; quantize_static would convert the whole model (weights and
        # all, through protobuf: impossible above 2 GB, and the converted graph's tensor names
        # need not match our ranges). Convert the weightless graph once, here, instead.
        prepared = _prepare(preprocessed, _sibling(preprocessed, work.name + ".opset21"), opset21=True)
        try:
            count = _Counter(calibration)
            ranges = collect_ranges(prepared, count, progress=progress, cancelled=cancelled)
            cache = work / "ranges.json"
            write_calibration_cache(ranges, cache)
            config = get_qnn_qdq_config(prepared, None, activation_type=qtypes[activation_type],
                                        weight_type=qtypes[weight_type], per_channel=True)
            staged = work / "out" / out_path.name
            staged.parent.mkdir()
            with _quiet_quantization_logs():
                quantize_static(prepared, staged, None, calibration_cache_path=cache,
                                quant_format=config.quant_format, activation_type=config.activation_type,
                                weight_type=config.weight_type,
                                op_types_to_quantize=config.op_types_to_quantize,
                                nodes_to_exclude=config.nodes_to_exclude, per_channel=config.per_channel,
                                reduce_range=config.reduce_range, use_external_data_format=large,
                                extra_options=config.extra_options)
            _publish(staged, out_path)
        finally:
            prepared.unlink(missing_ok=True)
    return QuantizationRecord(component, "qnn", f"qdq_w{_bits(weight_type)}a{_bits(activation_type)}",
                              weight_type, activation_type, True, count.count)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, component: str, *,
                  scheme: str | None = None, calibration: Iterable[Feeds] | None = None,
                  progress: Callable[[int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None, scored_on: Sequence[Feeds] = (),
                  min_snr_db: float | None = None) -> QuantizationRecord:
    """An int8 variant of `fp32_path` for ONNX Runtime's CPU provider (dynamic shapes kept).

    `scheme` defaults to `DEFAULT_INT8_SCHEMES[component]`; the static schemes need `calibration`.
    With `scored_on` samples the record carries the SNR against fp32 on them (on this CPU); a model
    below `min_snr_db` there is replaced by the fp32 copy, and the record's `refused` says why.
    """
    expected: list[np.ndarray] = []  # fp32 outputs a static calibration computes anyway, for the scored samples
    record = _quantize_int8(fp32_path, out_path, component, scheme=scheme, calibration=calibration,
                            progress=progress, cancelled=cancelled,
                            on_output=lambda out: expected.append(out) if len(expected) < len(scored_on) else None)
    return score_int8(fp32_path, out_path, record, scored_on=scored_on, min_snr_db=min_snr_db,
                      expected=expected if len(expected) == len(scored_on) else None)


def score_int8(fp32_path: str | Path, out_path: str | Path, record: QuantizationRecord, *,
               scored_on: Sequence[Feeds] = (), min_snr_db: float | None = None,
               expected: Sequence[np.ndarray] | None = None) -> QuantizationRecord:
    """`record` (of the int8 model at `out_path`, however it was made) with its SNR against fp32 on
    `scored_on` (whose fp32 outputs are `expected`, if already known); below `min_snr_db` the model is
    replaced by the fp32 copy and the record says why."""
    if not scored_on or record.scheme == "fp32":
        return record
    snr = round(component_snr_db(fp32_path, out_path, scored_on, expected=expected), 2)
    if min_snr_db is None or snr >= min_snr_db:
        return dataclasses.replace(record, snr_db=snr)
    kept = _quantize_int8(fp32_path, out_path, record.component, scheme="fp32")
    return dataclasses.replace(kept, refused=f"{record.scheme} reached {snr:g} dB against fp32 here, "
                                             f"below the {min_snr_db:g} dB a {record.component} needs")


def dynamic_int8_record(component: str, scheme: str) -> QuantizationRecord:
    """What a dynamic scheme's model is, for the manifest (made here by ONNX Runtime's `quantize_dynamic`,
    or while pouring by engine/model_get/dynamic_int8.py: the same model)."""
    if scheme not in DYNAMIC_OP_TYPES:
        raise InvalidInputError(f"{scheme} is not a dynamic int8 scheme; use one of {', '.join(DYNAMIC_OP_TYPES)}")
    return QuantizationRecord(component, "int8", scheme, "uint8", "uint8 (dynamic)", True, 0)


def _quantize_int8(fp32_path: str | Path, out_path: str | Path, component: str, *, scheme: str | None,
                   calibration: Iterable[Feeds] | None = None, progress: Callable[[int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None,
                   on_output: Callable[[np.ndarray], None] | None = None) -> QuantizationRecord:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    _check_component(component)
    scheme = scheme or DEFAULT_INT8_SCHEMES[component]
    if scheme not in INT8_SCHEMES:
        raise InvalidInputError(f"unknown int8 scheme {scheme!r}; use one of {', '.join(INT8_SCHEMES)}")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise ModelBundleError(f"fp32 model {fp32_path} is missing; export it first")
    large = _is_large(fp32_path)
    samples = 0
    with _workdir(out_path) as work:
        staged = work / "out" / out_path.name
        staged.parent.mkdir()
        if scheme == "fp32":
            import onnx

            onnx.save(onnx.load(str(fp32_path)), str(staged), save_as_external_data=large,
                      location=f"{out_path.name}.data")
            record = ("float32", "float32", False)
        elif scheme in DYNAMIC_OP_TYPES:
            with _quiet_quantization_logs():
                quantize_dynamic(fp32_path, staged, weight_type=QuantType.QUInt8, per_channel=True,
                                 op_types_to_quantize=list(DYNAMIC_OP_TYPES[scheme]),
                                 use_external_data_format=large)
            _publish(staged, out_path)
            return dynamic_int8_record(component, scheme)
        else:
            if calibration is None:
                raise InvalidInputError(f"int8 scheme {scheme} for {component} needs calibration samples")
            count = _Counter(calibration)
            prepared = _prepare(fp32_path, _sibling(fp32_path, work.name + ".prepared"), opset21=False)
            try:
                ranges = collect_ranges(prepared, count, progress=progress, cancelled=cancelled, on_output=on_output)
                samples = count.count
                cache = work / "ranges.json"
                write_calibration_cache(ranges, cache)
                with _quiet_quantization_logs():
                    quantize_static(prepared, staged, None, calibration_cache_path=cache,
                                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                                    weight_type=QuantType.QInt8, per_channel=True,
                                    reduce_range=scheme == "static_qdq_u8s7", use_external_data_format=large)
            finally:
                prepared.unlink(missing_ok=True)
            record = ("int8 (-64..64)" if scheme == "static_qdq_u8s7" else "int8", "uint8", True)
        _publish(staged, out_path)
    return QuantizationRecord(component, "int8", scheme, record[0], record[1], record[2], samples)


def component_snr_db(fp32_path: str | Path, quantized_path: str | Path, samples: Sequence[Feeds], *,
                     quantized_settings: Any = None, cache_dir: str | Path | None = None,
                     expected: Sequence[np.ndarray] | None = None) -> float:
    """SNR (dB) of the quantized component's first output against fp32, over all `samples` at once.

    The fp32 model runs on the CPU; the quantized one on `quantized_settings` (an
    `engine.sessions.SessionSettings`, CPU by default: ONNX Runtime's CPU kernels emulate QDQ
    faithfully enough to judge the calibration; pass provider="qnn" to measure the NPU itself).
    """
    from engine.sessions import SessionSettings, create_session

    if not samples:
        raise InvalidInputError("component_snr_db needs at least one sample")
    if expected is None:
        # One session at a time: the fp32 UNet's and the quantised one's together were most of a build's memory.
        reference = create_session(fp32_path, SessionSettings())
        expected = [reference.run(None, dict(feeds))[0] for feeds in samples]
        del reference
    quantized = create_session(quantized_path, quantized_settings or SessionSettings(), cache_dir)
    actual = np.concatenate([quantized.run(None, dict(feeds))[0] for feeds in samples])
    return snr_db(np.concatenate(list(expected)), actual)


def build_reference(fp32_path: str | Path, quantized_path: str | Path, samples: Sequence[Feeds],
                    specs: tuple[Any, ...]) -> tuple[Reference, float]:
    """`model check`'s reference for a quantised model: `samples` (cropped to a narrow width), the fp32
    model's outputs for them, and the SNR the quantised model reaches on them here, on the CPU.

    The SNR is taken against the outputs as stored (float16), so a check elsewhere compares like with like.
    """
    from engine.sessions import SessionSettings, create_session

    if not samples:
        raise InvalidInputError("build_reference needs at least one sample")
    feeds = tuple(crop_feeds(dict(sample), specs) for sample in samples)
    expected = run_feeds(create_session(fp32_path, SessionSettings()), feeds)
    reference = Reference(feeds=feeds, expected=expected.astype(np.float16).astype(np.float32))
    actual = run_feeds(create_session(quantized_path, SessionSettings()), feeds)
    return reference, snr_db(reference.expected, actual)


class _Counter:
    """Passes samples through, counting them (the manifest records how many calibrated a model)."""

    def __init__(self, samples: Iterable[Feeds]) -> None:
        self.samples = samples
        self.count = 0

    def __iter__(self) -> Iterator[Feeds]:
        for sample in self.samples:
            self.count += 1
            yield sample


def _prepare(model_path: Path, out_path: Path, *, opset21: bool) -> Path:
    """The graph of `model_path` made safe for `quantize_static`, without loading its weights: shared
    biases unshared (`unshare_biases`) and, for 16-bit Q/DQ, the opset raised to 21.

    The new graph is written beside `model_path` (it references the same external data file; onnx
    refuses hard links to it), under `out_path`'s name; the caller removes it.
    """
    import onnx
    from onnx import version_converter

    model = onnx.load(str(model_path), load_external_data=False)
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    if opset21 and opset < 21:
        model = version_converter.convert_version(model, 21)
    unshare_biases(model)
    onnx.save(model, str(out_path))
    return out_path


# Ops whose third input onnxruntime's QDQ quantizer turns into an int32 bias (scale = input x weight).
BIAS_OPS = ("Conv", "ConvTranspose", "Gemm", "InstanceNormalization", "LayerNormalization", "BatchNormalization")


def unshare_biases(model: Any) -> int:
    """Give every node its own copy of a bias initializer that several nodes share, in place.

    onnxruntime's QDQ quantizer copies a shared bias itself, naming the copy `<name><n>` with n one more
    than the largest numeric suffix among *initializers* only: torch's exporter names initializers and
    activations alike `val_<k>`, so the InstanceNormalization bias `val_11` shared by 22 GroupNorms got
    a copy `val_119`, which is also a Sigmoid's output. The quantized model then feeds that [16]
    initializer where the activation belonged (the VAE encoder's "Mul: Incompatible dimensions" at
    load; the dynamic UNet's "duplicate tensor name"; "shared mode is not supported for weight" when a
    copy takes the name of a Reshape's input). Unshared, the quantizer copies nothing. Works on a graph
    loaded without its external data (copies keep the reference). Returns how many copies were made.
    """
    initializers = {init.name: init for init in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    taken = set(initializers) | {name for node in model.graph.node for name in (*node.input, *node.output)}
    taken |= {value.name for value in (*model.graph.input, *model.graph.output)}
    copies = 0
    for index, node in enumerate(model.graph.node):
        if node.op_type not in BIAS_OPS or len(node.input) < 3 or node.input[2] not in initializers:
            continue
        name = node.input[2]
        if uses[name] < 2:
            continue
        uses[name] -= 1  # the last user keeps the original
        new_name = f"{name}.bias_of.{node.name or index}"
        while new_name in taken:
            new_name += "_"
        taken.add(new_name)
        copy = model.graph.initializer.add()
        copy.CopyFrom(initializers[name])
        copy.name = new_name
        node.input[2] = new_name
        copies += 1
    return copies


def _check_static(model_path: Path) -> None:
    """QNN compiles fixed shapes only: refuse a model with symbolic input or output dimensions."""
    import onnx

    if not model_path.is_file():
        raise ModelBundleError(f"fp32 model {model_path} is missing; export it first")
    graph = onnx.load(str(model_path), load_external_data=False).graph
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if any(not dim.HasField("dim_value") for dim in dims):
            raise ModelBundleError(f"{model_path.name} has a dynamic shape at {value.name}; "
                                   f"export it with fixed shapes (batch 1, width 512) for qnn")


def _sibling(model_path: Path, tag: str) -> Path:
    """A hidden file name beside `model_path` (for graphs that must share its external data)."""
    return model_path.with_name(f".{model_path.stem}.{tag.strip('.')}.onnx")


def _check_component(component: str) -> None:
    if component not in COMPONENTS:
        raise InvalidInputError(f"unknown component {component!r}; use one of {', '.join(COMPONENTS)}")


def _is_large(model_path: Path) -> bool:
    total = model_path.stat().st_size
    data = model_path.with_name(model_path.name + ".data")
    if data.exists():
        total += data.stat().st_size
    return total >= EXTERNAL_DATA_THRESHOLD


def _bits(qtype: str) -> int:
    return int("".join(ch for ch in qtype if ch.isdigit()))


@contextlib.contextmanager
def _workdir(out_path: Path) -> Iterator[Path]:
    """A scratch folder beside the output (same file system: links work, the final move is a rename)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", suffix=".work", dir=out_path.parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(staged: Path, out_path: Path) -> None:
    """Move the staged model (and its external data) into place; the .onnx file moves last, so a
    model under its final name always has its weights beside it."""
    for file in sorted(staged.parent.iterdir(), key=lambda path: path == staged):
        replace(file, out_path.parent / (out_path.name if file == staged else file.name))


@contextlib.contextmanager
def _quiet_quantization_logs() -> Iterator[None]:
    """onnxruntime.quantization warns on the root logger about harmless things (per-channel axes of
    rank-1 norm weights, pre-processing hints): keep them out of the user's console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
