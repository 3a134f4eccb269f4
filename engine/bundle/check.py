"""`riffstudio model check`: prove a bundle is whole and runs here, on the provider the user will use.

Every hash and size against the manifest, every session opened on the chosen provider, every model's
inputs and outputs against the manifest, one small forward pass each (the smallest width the bundle
allows, so a full-size check stays quick), outputs finite. Each quantised model also runs its stored
reference inputs (engine/bundle/reference.py) and must come within MAX_LOSS_DB of the SNR it reached
where it was converted: int8 kernels differ between CPUs, and a bundle must not quietly sound worse on
the producer's machine than on the one that made it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.bundle.bundle import Bundle, open_bundle
from engine.bundle.manifest import COMPONENTS, ComponentSpec, TensorSpec
from engine.bundle.reference import MAX_LOSS_DB, read_reference, snr_db
from engine.cpu_features import cpu_info
from engine.errors import InvalidInputError, ModelBundleError
from engine.tokenizer import PromptTokenizer

CHECK_PROMPT = "a jazz saxophone solo"
LABELS = {"text_encoder": "text encoder", "unet": "UNet", "vae_decoder": "VAE decoder", "vae_encoder": "VAE encoder"}


@dataclass(frozen=True)
class ComponentCheck:
    component: str
    file: str
    megabytes: float
    quantization: str
    session_seconds: float
    run_seconds: float
    output_shape: tuple[int, ...]
    output_range: tuple[float, float]
    validation: dict[str, float | str]  # numbers, and `int8_refused`: why a model stayed fp32
    # SNR against fp32 on the bundle's reference inputs, here (None: the bundle stores no reference).
    reference_snr_db: float | None = None


@dataclass(frozen=True)
class CheckReport:
    path: Path
    precision: str
    provider: str
    source: str
    source_revision: str
    onnxruntime_version: str
    components: tuple[ComponentCheck, ...]
    cpu: str = ""

    def render(self) -> str:
        lines = [f"bundle     {self.path}", f"precision  {self.precision}    provider {self.provider}",
                 f"source     {self.source} ({self.source_revision})",
                 f"made with  onnxruntime {self.onnxruntime_version}", f"this CPU   {self.cpu}", "",
                 f"{'model':<13}{'MB':>8}  {'quantisation':<26}{'open s':>7}{'run s':>7}  output      check"]
        for c in self.components:
            check = ", ".join(f"{k.replace('_vs_', ' vs ')} {v:.3g}" if isinstance(v, int | float)
                              else f"{k.replace('_', ' ')}: {v}" for k, v in c.validation.items())
            if c.reference_snr_db is not None:
                check += f", here {c.reference_snr_db:.3g} dB"
            lines.append(f"{c.component:<13}{c.megabytes:8.1f}  {c.quantization:<26}{c.session_seconds:7.2f}"
                         f"{c.run_seconds:7.2f}  {'x'.join(map(str, c.output_shape)):<12}{check}")
        ran = ("every model runs" if len(self.components) == len(COMPONENTS)
               else f"{', '.join(c.component for c in self.components)} run")
        lines += ["", f"OK: every file matches the manifest and {ran}."]
        return "\n".join(lines)


def check_bundle(path: str | Path, *, precision: str | None = None, provider: str = "cpu",
                 models: tuple[str, ...] | None = None,
                 progress: Callable[[str, float], None] | None = None) -> CheckReport:
    """Verify every file's hash, then run `models` (default: all four) on `provider`: a quantised model
    on each of its stored reference inputs (scored against fp32), the others once on a small random input.

    `models` picks a few, e.g. the quantised ones (the only ones whose numbers depend on the CPU's int8
    kernels) on a slow or emulated machine; the files are verified all the same."""
    from engine.sessions import SessionSettings, create_session

    chosen = COMPONENTS if models is None else tuple(models)
    unknown = [name for name in chosen if name not in COMPONENTS]
    if unknown or not chosen:
        raise InvalidInputError(f"unknown model {', '.join(unknown) or '(none given)'}: choose from "
                                f"{', '.join(COMPONENTS)}")
    bundle = open_bundle(path, precision=precision)
    bundle.verify(hashes=True, progress=(lambda stage, f: progress(stage, 0.5 * f)) if progress else None)
    tokens = PromptTokenizer(bundle.tokenizer_path).encode([CHECK_PROMPT])
    # On the NPU the check is strict: a node that would quietly fall back to the CPU is a failure.
    settings = bundle.session_settings(SessionSettings(provider=provider, disable_cpu_fallback=provider == "qnn"))
    results: list[ComponentCheck] = []
    context: np.ndarray | None = None
    for index, component in enumerate(c for c in COMPONENTS if c in chosen):
        if progress:
            progress(f"running {component}", 0.5 + 0.5 * index / len(chosen))
        spec = bundle.manifest.components[component]
        start = time.perf_counter()
        session = create_session(bundle.component_path(component), settings, cache_dir=bundle.cache_dir())
        opened = time.perf_counter() - start
        _check_signature(bundle, component, session)
        reference = _stored_reference(bundle, spec)
        # A quantised model runs its stored reference inputs (real ones, scored below); the others one
        # small random pass. Either way each model runs once per input, which matters on slow machines.
        feeds = reference.feeds if reference else [_feeds(spec.inputs, tokens, context,
                                                           bundle.manifest.min_image_width // 8)]
        start = time.perf_counter()
        outputs = [session.run(None, feed)[0] for feed in feeds]
        ran = (time.perf_counter() - start) / len(outputs)
        output = outputs[0]
        if not all(np.all(np.isfinite(o)) for o in outputs):
            raise ModelBundleError(f"{spec.file} gives non-finite outputs on {provider}: the model is damaged "
                                   "or this provider mis-runs it; re-convert, or try --provider cpu")
        if component == "text_encoder":
            context = output
        size = sum(e.size for e in bundle.manifest.files if e.path.startswith(spec.file))
        here = _reference_snr(bundle, component, spec, reference, np.concatenate(outputs), provider) \
            if reference else None
        results.append(ComponentCheck(component, spec.file, size / 1e6, spec.quantization, opened, ran,
                                      tuple(output.shape), (float(output.min()), float(output.max())),
                                      spec.validation, here))
    if progress:
        progress("done", 1.0)
    m = bundle.manifest
    return CheckReport(bundle.path, m.precision, provider, m.source, m.source_revision, m.onnxruntime_version,
                       tuple(results), cpu_info().describe())


def _stored_reference(bundle: Bundle, spec: ComponentSpec):
    """The model's stored reference inputs and fp32 outputs, when it has them (quantised models)."""
    if not spec.reference or spec.validation.get("reference_snr_db") is None:
        return None
    return read_reference(bundle.path / spec.reference)


def _reference_snr(bundle: Bundle, component: str, spec: ComponentSpec, reference, outputs: np.ndarray,
                   provider: str) -> float:
    """The model's SNR against fp32 on its stored reference inputs (`outputs`: what it gave here); fails
    when it lost more than MAX_LOSS_DB against the SNR recorded where the bundle was converted."""
    converted = spec.validation["reference_snr_db"]
    here = snr_db(reference.expected, outputs)
    loss = converted - here
    if loss > MAX_LOSS_DB:
        where = "on the NPU" if provider == "qnn" else f"on this CPU ({cpu_info().describe()})"
        converted_on = bundle.manifest.runtime.get("converted_on_cpu") or "where it was converted"
        raise ModelBundleError(
            f"the {bundle.manifest.precision} {LABELS[component]} loses {loss:.1f} dB {where}: {here:.1f} dB against "
            f"fp32 here, {converted:.1f} dB on {converted_on}; re-convert the bundle with this riffstudio on this "
            "machine, or use an fp32 bundle")
    return here


def _check_signature(bundle: Bundle, component: str, session: object) -> None:
    spec = bundle.manifest.components[component]
    actual = [(i.name, tuple(d if isinstance(d, int) else None for d in i.shape)) for i in session.get_inputs()]
    expected = [(t.name, tuple(d if isinstance(d, int) else None for d in t.shape)) for t in spec.inputs]
    if actual != expected:
        raise ModelBundleError(f"{spec.file} takes {actual}, the manifest says {expected}: the bundle is "
                               "inconsistent, re-convert the model")


def concrete_shape(spec: TensorSpec, min_latent_width: int) -> tuple[int, ...]:
    """The smallest concrete shape for a spec: dynamic batch 1, dynamic width the narrowest allowed
    ("latent_width" -> min_latent_width, "8*latent_width" -> 8 * min_latent_width)."""
    shape = []
    for dim in spec.shape:
        if isinstance(dim, int):
            shape.append(dim)
        elif "width" in dim:
            factors = [int(n) for n in re.findall(r"\d+", dim)]
            shape.append(int(np.prod(factors)) * min_latent_width)
        else:
            shape.append(1)
    return tuple(shape)


def _feeds(inputs: tuple[TensorSpec, ...], tokens: np.ndarray, context: np.ndarray | None,
           min_latent_width: int) -> dict:
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        shape = concrete_shape(spec, min_latent_width)
        if spec.name == "input_ids":
            feeds[spec.name] = np.repeat(tokens, shape[0], axis=0).astype(np.int32)
        elif spec.name == "timestep":
            feeds[spec.name] = np.full(shape, 500.0, dtype=np.float32)
        elif spec.name == "encoder_hidden_states" and context is not None and context.shape[1:] == shape[1:]:
            feeds[spec.name] = np.repeat(context[:1], shape[0], axis=0)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds
