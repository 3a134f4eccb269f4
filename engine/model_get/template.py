"""Templates: a model's exported ONNX graph with its weights taken out, and the map that pours them back.

Exporting SD 1.5 from torch takes minutes, gigabytes of memory and torch itself; the graph it produces
depends only on the architecture. So we export once per architecture (engine/export/templates.py,
random weights), keep the graph with every weight initializer turned into an empty external-data
reference, and record for each one the checkpoint tensor it came from and how (as stored, or
transposed: the exporter folds a Linear's transpose into its weight). Pouring a checkpoint in is then a
stream of numpy reads and writes into one `.onnx.data` file per model: no torch, one tensor in memory
at a time, at the speed of the disk.

A template folder holds `templates.json` (this module's `TemplateSet`) and one `<component>.onnx` per
model. Names in the map are the checkpoint's state-dict names as today's libraries write them;
`engine/model_get/weights.py` finds them under older spellings too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.bundle.manifest import COMPONENTS, TensorSpec
from engine.errors import ModelBundleError

FORMAT = 1
TEMPLATES_NAME = "templates.json"
# Which checkpoint folder holds each component's weights.
WEIGHT_FOLDER = {"text_encoder": "text_encoder", "unet": "unet", "vae_decoder": "vae", "vae_encoder": "vae"}
# Weights start on page boundaries in the data file, so ONNX Runtime can map them instead of copying.
ALIGNMENT = 4096
TRANSFORMS = ("none", "transpose")
PLACEHOLDER_LOCATION = "weights"


@dataclass(frozen=True)
class WeightRef:
    """One initializer of the graph: which checkpoint tensor fills it, and how."""

    initializer: str
    source: str
    transform: str  # "none" or "transpose" (of a 2-D tensor)
    shape: tuple[int, ...]  # the initializer's shape
    source_shape: tuple[int, ...]  # the checkpoint tensor's (the same values, reshaped or transposed)

    def to_dict(self) -> dict[str, Any]:
        return {"initializer": self.initializer, "source": self.source, "transform": self.transform,
                "shape": list(self.shape), "source_shape": list(self.source_shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeightRef:
        return cls(data["initializer"], data["source"], data["transform"], tuple(data["shape"]),
                   tuple(data["source_shape"]))


@dataclass(frozen=True)
class ComponentTemplate:
    component: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    weights: tuple[WeightRef, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "file": self.file, "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs], "weights": [w.to_dict() for w in self.weights]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentTemplate:
        return cls(component=data["component"], file=data["file"],
                   inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
                   outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
                   weights=tuple(WeightRef.from_dict(w) for w in data["weights"]))


@dataclass(frozen=True)
class TemplateSet:
    """The four models' templates of one architecture, in one shape variant ("dynamic" or "fixed<W>")."""

    folder: Path
    signature: str  # engine.model_get.architecture.Architecture.signature
    variant: str
    export_key: str  # what made the graphs: torch's version and our export code (engine/export/templates.py)
    components: dict[str, ComponentTemplate]

    @property
    def fixed_width(self) -> int | None:
        return int(self.variant.removeprefix("fixed")) if self.variant.startswith("fixed") else None

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "signature": self.signature, "variant": self.variant,
                           "export_key": self.export_key,
                           "components": {name: c.to_dict() for name, c in self.components.items()}},
                          separators=(",", ":"))

    @classmethod
    def read(cls, folder: Path) -> TemplateSet:
        path = Path(folder) / TEMPLATES_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this riffstudio reads {FORMAT}")
            components = {name: ComponentTemplate.from_dict(c) for name, c in data["components"].items()}
            templates = cls(folder=Path(folder), signature=data["signature"], variant=data["variant"],
                            export_key=data["export_key"], components=components)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            raise ModelBundleError(f"model template {path} is unreadable ({error}): reinstall riffstudio, or "
                                   "delete that folder to build it again") from None
        missing = [c for c in COMPONENTS if c not in components]
        if missing:
            raise ModelBundleError(f"model template {folder} lacks {', '.join(missing)}: delete that folder to "
                                   "build it again")
        return templates


class WeightSource(Protocol):
    """What `fill` reads weights from (engine/model_get/weights.py): names in the map's spelling."""

    def shape(self, name: str) -> tuple[int, ...]: ...

    def read(self, name: str) -> np.ndarray: ...


def check_fits(template: ComponentTemplate, weights: WeightSource, described: str) -> None:
    """Every weight the graph needs is in `weights` with the right shape, before anything is written."""
    for ref in template.weights:
        shape = weights.shape(ref.source)
        if _squeezed(shape) != _squeezed(ref.source_shape):
            raise ModelBundleError(f"{described}: {ref.source} is {list(shape)}, the architecture needs "
                                   f"{list(ref.source_shape)}; the weights do not belong to this model's configs, "
                                   "download the model again")


def fill(templates: TemplateSet, component: str, weights: WeightSource, out: Path,
         progress: Callable[[float], None] | None = None, int8_op_types: tuple[str, ...] = ()) -> Path:
    """Write `component`'s model to `out` (+ `out.data`, its weights) from the template and `weights`.

    The weights are streamed: each is read, cast to float32, transformed, and appended page-aligned to
    the data file; the graph (small) is written last, so a model under its final name has its data.
    With `int8_op_types` those ops run on dynamic u8 (engine/model_get/dynamic_int8.py): their weights are
    quantised as they pass, never held whole."""
    import onnx

    from engine.model_get.dynamic_int8 import quantize_graph, quantize_u8, set_values

    template = templates.components[component]
    model = load_graph(templates.folder / template.file)
    mapped = {ref.initializer for ref in template.weights}
    quantized = quantize_graph(model, int8_op_types, mapped, PLACEHOLDER_LOCATION) if int8_op_types else {}
    initializers = {init.name: init for init in model.graph.initializer}
    out = Path(out)
    data_path = out.with_name(out.name + ".data")
    total = sum(int(np.prod(ref.shape)) for ref in template.weights) or 1
    written = 0
    with data_path.open("wb") as data:

        def append(init: Any, array: np.ndarray) -> None:
            offset = -data.tell() % ALIGNMENT + data.tell()
            data.seek(offset)
            data.write(array.tobytes())
            _point_at(init, data_path.name, offset, array.nbytes)

        for ref in template.weights:
            found = quantized.get(ref.initializer)
            init = initializers.get(found.quantized if found else ref.initializer)
            if init is None:
                raise ModelBundleError(f"model template {templates.folder} does not match its map "
                                       f"({ref.initializer} missing): delete that folder to build it again")
            array = _prepared(weights.read(ref.source), ref)
            if found:
                values, scale, zero_point = quantize_u8(array.T if found.transpose else array, found.axis)
                append(init, values)
                set_values(initializers[found.scale], scale)
                set_values(initializers[found.zero_point], zero_point)
            if not found or found.keep_float:
                append(initializers[ref.initializer], array)
            written += array.size
            if progress:
                progress(written / total)
    onnx.save(model, str(out))
    return out


def load_graph(path: Path) -> Any:
    """A template's graph (xz-compressed: three quarters of an exported graph's bytes are its metadata)."""
    import lzma

    import onnx

    try:
        return onnx.load_from_string(lzma.decompress(Path(path).read_bytes()))
    except (OSError, lzma.LZMAError, ValueError) as error:  # protobuf's DecodeError is a ValueError
        raise ModelBundleError(f"model template {path} is unreadable ({type(error).__name__}): reinstall "
                               "riffstudio, or delete that folder to build it again") from None


def save_graph(model: Any, path: Path) -> None:
    import lzma

    Path(path).write_bytes(lzma.compress(model.SerializeToString(), preset=9))


def _prepared(array: np.ndarray, ref: WeightRef) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise ModelBundleError(f"{ref.source} holds {array.dtype} values where weights are floats: "
                               "the checkpoint is damaged, download it again")
    array = array.astype(np.float32, copy=False).reshape(ref.source_shape)
    if ref.transform == "transpose":
        array = array.T
    return np.ascontiguousarray(array.reshape(ref.shape), dtype="<f4")


def _point_at(init: Any, location: str, offset: int, length: int) -> None:
    from onnx import TensorProto

    del init.external_data[:]
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = init.external_data.add()
        entry.key, entry.value = key, value


def strip_weights(model: Any, refs: tuple[WeightRef, ...]) -> None:
    """Empty every mapped initializer of `model` (in place), leaving its name, type and shape."""
    from onnx import TensorProto

    by_name = {init.name: init for init in model.graph.initializer}
    for ref in refs:
        init = by_name[ref.initializer]
        for field in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
            init.ClearField(field)
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        entry = init.external_data.add()
        entry.key, entry.value = "location", PLACEHOLDER_LOCATION


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without trailing 1s: an LDM checkpoint stores the VAE's attention projections as 1x1
    convolutions ([C, C, 1, 1]) where diffusers has linear layers ([C, C]); the bytes are the same."""
    shape = tuple(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape
