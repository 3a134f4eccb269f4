"""ONNX Runtime sessions for the CPU and the Snapdragon NPU (QNN execution provider, HTP back end).

Run time only: onnxruntime (+ onnxruntime-qnn where it exists) and the standard library.

The QNN execution provider is a plugin: its library is registered with ONNX Runtime once per
process, then sessions pick its device. The first QNN session of a model compiles the graph for the
NPU (minutes on real hardware), so we keep the compiled "EP context" model in a cache folder, keyed
by everything that makes it stale (onnxruntime(-qnn) and QNN SDK versions, the device, the model's
bytes). A cache that is stale, half-written or corrupt is rebuilt; it is never fatal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from engine.atomic import atomic_path
from engine.cpu_features import usable_cpus
from engine.errors import InvalidInputError, ModelBundleError, ProviderError, reason
from engine.file_hash import file_sha256
from engine.qnn import (
    CONTEXT_KEY_NAME,
    CONTEXT_MODEL_NAME,
    HTP_PERFORMANCE_MODES,
    context_folder,
    context_folders,
    read_context_key,
)
from engine.serialise import from_dict

QNN_EP = "QNNExecutionProvider"
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class SessionSettings:
    """How to run one model: which provider and its options. Serialises to a JSON-able dict.

    `intra_op_threads=0` lets ONNX Runtime choose, which is the number of physical cores (what we
    want: hyper-threads only add contention in GEMM-bound models), or, where this process may run on
    fewer CPUs than the machine has (taskset, a container's cpuset, a batch worker given one core),
    that many: see `default_intra_op_threads`. Execution is sequential: the diffusion graphs are long
    chains, parallel execution only adds threads.

    `cpu_mem_arena=False` keeps the CPU allocator from rounding allocations up into arena chunks
    that it never returns; with large models the arena is what makes creation peak at about twice
    the weights (see docs/qnn-notes.md for the measurements).
    """

    provider: Literal["cpu", "qnn"] = "cpu"
    intra_op_threads: int = 0
    graph_optimization: str = "all"
    cpu_mem_arena: bool = False
    # ARM64 only (Snapdragon X Elite CPU): let MLAS run fp32 GEMMs with bf16 dot products.
    arm64_bf16_fastmath: bool = False
    htp_performance_mode: str = "burst"
    context_cache: bool = True
    # False lets nodes QNN cannot take run on the CPU (slow, but it works); True proves every node
    # landed on the NPU, or fails at session creation.
    disable_cpu_fallback: bool = False
    log_severity: int = 3
    # "priority" runs each node as soon as its inputs exist (ONNX Runtime's priority-based order): for graphs
    # with many side outputs (calibration's min/max of every activation) it frees each activation at once,
    # where the default order kept the VAE decoder's all alive (6.5 GB against 0.95 GB at 256 px).
    execution_order: Literal["default", "priority"] = "default"

    def __post_init__(self) -> None:
        if self.provider not in ("cpu", "qnn"):
            raise InvalidInputError(f"unknown provider {self.provider!r}; use 'cpu' or 'qnn'")
        if self.intra_op_threads < 0:
            raise InvalidInputError(f"intra_op_threads must be >= 0 (0 = physical cores), "
                                    f"not {self.intra_op_threads}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise InvalidInputError(f"unknown graph_optimization {self.graph_optimization!r}; use one of "
                                    f"{', '.join(GRAPH_OPTIMIZATION_LEVELS)}")
        if self.htp_performance_mode not in HTP_PERFORMANCE_MODES:
            raise InvalidInputError(f"unknown htp_performance_mode {self.htp_performance_mode!r}; use one of "
                                    f"{', '.join(HTP_PERFORMANCE_MODES)}")
        if self.execution_order not in ("default", "priority"):
            raise InvalidInputError(f"unknown execution_order {self.execution_order!r}; use 'default' or 'priority'")
        if not 0 <= self.log_severity <= 4:
            raise InvalidInputError(f"log_severity must be 0..4, not {self.log_severity}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionSettings:
        """Inverse of `to_dict`; missing keys take the defaults, unknown keys are an error."""
        return from_dict(cls, data, "session setting")


def create_session(model_path: str | Path, settings: SessionSettings = SessionSettings(),
                   cache_dir: str | Path | None = None, *,
                   model_digest: str | None = None) -> ort.InferenceSession:
    """An inference session for `model_path` on the provider `settings` asks for.

    For QNN with `settings.context_cache` and a `cache_dir`, the compiled context is loaded from (or
    written to) a sub-folder of `cache_dir`. `model_digest` (e.g. the bundle manifest's sha256)
    saves hashing the model file at every start.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelBundleError(f"model file {model_path} does not exist; convert the model bundle again")
    if settings.provider == "cpu":
        return _cpu_session(model_path, settings)
    device = _qnn_device()
    if not (settings.context_cache and cache_dir is not None):
        return _qnn_session(model_path, settings, device)
    key = context_key(model_path, device, model_digest)
    folder = context_folder(Path(cache_dir), model_path.stem, key["digest"])
    context_model = folder / CONTEXT_MODEL_NAME
    if context_model.is_file() and read_context_key(folder) == key:
        # A corrupt cache is rebuilt, whatever ONNX Runtime says about it (quietly: severity 4).
        with contextlib.suppress(Exception):
            quiet = dataclasses.replace(settings, log_severity=4)
            return _qnn_session(context_model, quiet, device, raw_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    _remove_stale_contexts(Path(cache_dir), model_path.stem, keep=folder)
    try:
        with atomic_path(folder, directory=True) as temp:
            session = _qnn_session(model_path, settings, device, context_file=temp / CONTEXT_MODEL_NAME)
            if not (temp / CONTEXT_MODEL_NAME).is_file():
                raise OSError("the QNN provider wrote no context model")
            (temp / CONTEXT_KEY_NAME).write_text(json.dumps(key, indent=1, sort_keys=True), encoding="utf-8")
    except OSError:
        # A read-only or full cache folder costs start-up time, never the session.
        return _qnn_session(model_path, settings, device)
    return session


def qnn_available() -> tuple[bool, str]:
    """Whether QNN sessions can be created here, and why not (for `--provider auto`)."""
    try:
        device = _qnn_device()
    except ProviderError as error:
        return False, str(error)
    return True, f"QNN HTP on {_device_label(device)}"


def npu_present() -> bool:
    """Whether the QNN provider sees a real NPU (not the HTP simulator of the x86_64 Linux wheel, which it lists
    as a CPU device): where `model get --precision auto` makes a qnn bundle."""
    try:
        return _qnn_device().device.type == ort.OrtHardwareDeviceType.NPU
    except ProviderError:
        return False


def session_providers(session: ort.InferenceSession) -> list[str]:
    """The providers a session uses, most preferred first (the CPU is listed when it may take nodes)."""
    return list(session.get_providers())


def context_key(model_path: Path, device: Any, model_digest: str | None = None) -> dict[str, str]:
    """What a compiled QNN context depends on; any change means the cache is stale."""
    import onnxruntime_qnn

    info = onnxruntime_qnn.build_and_package_info
    key = {
        "onnxruntime": ort.__version__,
        "onnxruntime_qnn": getattr(info, "__version__", "unknown"),
        "qnn_sdk": getattr(info, "qnn_version", "unknown"),
        "device": _device_label(device),
        "model": model_digest or file_sha256(model_path),
        "model_size": str(model_path.stat().st_size),
    }
    key["digest"] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return key


def _cpu_session(model_path: Path, settings: SessionSettings) -> ort.InferenceSession:
    options = _common_options(settings)
    if settings.arm64_bf16_fastmath:
        options.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "1")
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise _model_error(model_path, error) from error


def _qnn_session(model_path: Path, settings: SessionSettings, device: Any, *,
                 context_file: Path | None = None, raw_errors: bool = False) -> ort.InferenceSession:

    options = _common_options(settings)
    if settings.disable_cpu_fallback:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if context_file is not None:
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_file_path", str(context_file))
        # Embed mode 0: the compiled binary sits next to the context model (a UNet context is about
        # 1 GB: embedding it would bring the model near protobuf's 2 GB limit and double its load).
        options.add_session_config_entry("ep.context_embed_mode", "0")
    # `backend_type`, not an absolute `backend_path`: the provider finds its HTP library beside itself, where a
    # path would be handed to LoadLibraryExA in the ANSI code page on Windows and fail under a user name with
    # letters outside it (C:\Users\Zoë\AppData\Local\... for a per-user install).
    qnn_options = {
        "backend_type": "htp",
        "htp_performance_mode": settings.htp_performance_mode,
    }
    options.add_provider_for_devices([device], qnn_options)
    try:
        return ort.InferenceSession(str(model_path), options)
    except Exception as error:
        if raw_errors:
            raise
        message = reason(error, 300)
        raise ProviderError(f"the QNN provider cannot run {model_path.name} ({message}); "
                            f"use --provider cpu, or convert the bundle again") from error


def default_intra_op_threads() -> int:
    """0 (ONNX Runtime's own choice) where this process may run on every CPU, else how many it may.

    ONNX Runtime's default pool ignores the process's CPU set: it starts a thread per physical core and
    pins each to its core, so a process limited to CPU 0 gets a spinning pool thread on CPU 1, on top of
    whatever runs there (measured: a pinned worker's ORT-heavy tests took 2-4x longer). An explicit
    count starts that many threads and leaves them in the process's set."""
    allowed = usable_cpus()
    return 0 if allowed >= (os.cpu_count() or allowed) else allowed


def _common_options(settings: SessionSettings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads or default_intra_op_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = GRAPH_OPTIMIZATION_LEVELS[settings.graph_optimization]
    options.enable_cpu_mem_arena = settings.cpu_mem_arena
    options.log_severity_level = settings.log_severity
    if settings.execution_order == "priority":
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    return options


@functools.lru_cache(maxsize=1)
def _register_qnn() -> None:
    """Register the QNN plugin library with ONNX Runtime (once per process; ORT keeps the state)."""
    try:
        import onnxruntime_qnn
    except ImportError as error:
        raise ProviderError("the QNN provider is not installed (onnxruntime-qnn has wheels for Windows on "
                            "ARM64/x64 and Linux x86_64 only); use --provider cpu") from error
    library = Path(onnxruntime_qnn.get_library_path())
    if not library.is_file() or not Path(onnxruntime_qnn.get_qnn_htp_path()).is_file():
        raise ProviderError(f"the QNN provider's libraries are missing from {library.parent}; "
                            f"reinstall onnxruntime-qnn or use --provider cpu")
    # The HTP's DSP side loads its skeleton libraries from ADSP_LIBRARY_PATH; onnxruntime-qnn does not set it,
    # and from site-packages (not beside the executable) the NPU then fails with 0x80000406
    # (onnxruntime-qnn PR #593). A value the user set wins.
    os.environ.setdefault("ADSP_LIBRARY_PATH", str(library.parent))
    if any(device.ep_name == QNN_EP for device in ort.get_ep_devices()):
        return  # registered by someone else in this process: ORT refuses a second registration
    try:
        ort.register_execution_provider_library(QNN_EP, str(library))
    except Exception as error:
        if "already registered" in str(error):
            return
        raise ProviderError(f"ONNX Runtime {ort.__version__} cannot load the QNN provider "
                            f"({reason(error, 300)}); install a matching onnxruntime-qnn or use "
                            f"--provider cpu") from error


def _qnn_device() -> Any:
    """The QNN device to run on: the NPU, or (x86_64 Linux, the HTP simulator) whatever QNN lists."""
    _register_qnn()
    devices = [device for device in ort.get_ep_devices() if device.ep_name == QNN_EP]
    if not devices:
        raise ProviderError("the QNN provider found no Snapdragon NPU on this machine; use --provider cpu")
    npus = [device for device in devices if device.device.type == ort.OrtHardwareDeviceType.NPU]
    return (npus or devices)[0]


def _device_label(device: Any) -> str:
    hardware = device.device
    return (f"{hardware.type.name}:{hardware.vendor}:{hardware.vendor_id:04x}:"
            f"{hardware.device_id:04x}")


def _remove_stale_contexts(cache_dir: Path, stem: str, keep: Path) -> None:
    """Contexts of older versions of this model would only fill the disk."""
    for old in context_folders(cache_dir, stem):
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def _model_error(model_path: Path, error: Exception) -> ModelBundleError:
    return ModelBundleError(f"ONNX Runtime cannot load {model_path.name} ({reason(error, 300)}); "
                             f"convert the model bundle again")

