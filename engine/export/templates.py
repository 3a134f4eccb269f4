"""Make the templates `riffstudio model get` pours checkpoints into (export time: torch, diffusers, transformers).

One architecture's models are built from its configs with random weights (every parameter, norms and
biases too, so no two tensors are alike and none looks like a constant of the graph), exported exactly
as `model convert` exports them (engine/export/onnx_export.py, one child interpreter each), and each
exported initializer is found among the module's tensors by its bytes: as stored, or transposed (the
exporter folds a Linear's weight transpose). Those become map entries and are emptied from the graph;
everything else (shape constants, InstanceNorm's ones and zeros, the timestep frequencies) stays as
a constant of the graph. A large float constant that matches no tensor would be a weight folded into
something the map cannot express: the build refuses rather than ship a graph with frozen random weights.

    python -m engine.export.templates OUT [--variant dynamic|fixed512] [--config DIFFUSERS_FOLDER]

writes the templates of SD 1.5 (riffusion's architecture, the default) or of another config's; the
package ships SD 1.5's (engine/model_get/templates/), checked against this code by the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from engine.atomic import atomic_path
from engine.bundle.manifest import COMPONENTS
from engine.errors import ModelBundleError
from engine.model_get.architecture import CONFIG_FOLDERS, SD15_CONFIGS, Architecture, complete
from engine.model_get.template import (
    TEMPLATES_NAME,
    WEIGHT_FOLDER,
    ComponentTemplate,
    TemplateSet,
    WeightRef,
    save_graph,
    strip_weights,
)

# Float constants of at most this many elements may stay in a graph unmatched (scalars, InstanceNorm's
# per-group ones and zeros, the UNet's 160 timestep frequencies); a larger one must be a mapped weight,
# unless it holds at most two values (the text encoder's causal mask of 0 and -100 at fixed shapes):
# random weights, or anything computed from them, never do.
MAX_UNMAPPED_CONSTANT = 1024
SEED = 1234


def export_key() -> str:
    """What shapes an exported graph besides the architecture: torch's version and our export code."""
    import torch

    from engine.export import attention_fusion, onnx_export, qnn_export_fixes

    digest = hashlib.sha256(torch.__version__.encode())
    for module in (onnx_export, qnn_export_fixes, attention_fusion):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def random_modules(configs: dict[str, dict[str, Any]], seed: int = SEED) -> SimpleNamespace:
    """The three torch modules of `configs` (raw config dicts, as in a diffusers folder), all weights random:
    the libraries' own initialisation, and noise on the parameters it leaves constant."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
    # As model convert loads it (engine/export/qnn_export_fixes.py): the graph QNN can run.
    text_encoder.set_attn_implementation("eager")
    modules = SimpleNamespace(text_encoder=text_encoder, unet=UNet2DConditionModel.from_config(configs["unet"]),
                              vae=AutoencoderKL.from_config(configs["vae"]))
    for module in (modules.text_encoder, modules.unet, modules.vae):
        randomise_constant_parameters(module, generator)
        module.float().eval()
    return modules


def randomise_constant_parameters(module: Any, generator: Any) -> None:
    """Noise on every parameter a fresh module holds constant (norm weights of ones, biases of zeros).

    Constant tensors would be indistinguishable from each other and from the graph's own constants
    (InstanceNorm's ones and zeros); in tests they hide conversion bugs (a dropped bias changes nothing)."""
    import torch

    with torch.no_grad():
        for parameter in module.parameters():
            flat = parameter.detach().reshape(-1)
            if flat.numel() and bool(torch.all(flat == flat[0])):
                noise = torch.randn(parameter.shape, generator=generator)
                centre = 1.0 if float(flat[0]) == 1.0 else 0.0
                parameter.copy_(centre + (0.2 if centre else 0.05) * noise)


def build_templates(configs: dict[str, dict[str, Any]], variant: str, out: Path, *,
                    export_cache: Path | None = None, modules: Any = None) -> TemplateSet:
    """Export the architecture of `configs` in `variant` ("dynamic" or "fixed<W>") into template folder `out`.

    `modules` (text_encoder, unet, vae) are exported instead of random ones of `configs`: a checkpoint whose
    exports are cached already (the tests' qnn templates); its weights must be as varied as random ones."""
    from engine.export.export_cache import export_with_cache

    architecture: Architecture = complete(configs)
    fixed_width = int(variant.removeprefix("fixed")) if variant.startswith("fixed") else None
    if variant != "dynamic" and not fixed_width:
        raise ValueError(f"unknown template variant {variant!r}")
    modules = modules or random_modules(configs)
    components = {}
    with atomic_path(out, directory=True) as folder, tempfile.TemporaryDirectory(
            prefix=".template-export-", dir=Path(out).parent) as work:
        for component in COMPONENTS:
            exported = export_with_cache(modules, component, Path(work) / f"{component}.onnx",
                                         fixed_width=fixed_width, cache=export_cache)
            module = getattr(modules, WEIGHT_FOLDER[component])
            components[component] = strip_export(exported.path, component, module, folder / f"{component}.onnx.xz",
                                                 exported.inputs, exported.outputs)
        templates = TemplateSet(folder=Path(out), signature=architecture.signature, variant=variant,
                                export_key=export_key(), components=components)
        (folder / TEMPLATES_NAME).write_text(templates.to_json(), encoding="utf-8")
    return templates


def strip_export(onnx_path: Path, component: str, module: Any, out: Path, inputs: Any,
                 outputs: Any) -> ComponentTemplate:
    """The exported graph at `onnx_path`, its weights found in `module`'s state dict and emptied, at `out`."""
    import onnx
    from onnx import numpy_helper

    tensors = {name: tensor.detach().float().contiguous().numpy()
               for name, tensor in module.state_dict().items() if tensor.is_floating_point()}
    by_bytes: dict[bytes, tuple[str, str]] = {}
    for name, array in tensors.items():
        for transform, view in (("none", array), ("transpose", array.T if array.ndim == 2 else None)):
            if view is None:
                continue
            key = _digest(view)
            if key in by_bytes:
                raise ModelBundleError(f"{name} and {by_bytes[key][0]} hold the same values: the template "
                                       "cannot tell them apart (build it again with another seed)")
            by_bytes[key] = (name, transform)
    model = onnx.load(str(onnx_path))
    refs = []
    for init in model.graph.initializer:
        if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            continue
        array = numpy_helper.to_array(init).astype(np.float32)
        hit = by_bytes.get(_digest(array))
        if hit is not None:
            refs.append(WeightRef(init.name, hit[0], hit[1], tuple(array.shape), tuple(tensors[hit[0]].shape)))
        elif array.size > MAX_UNMAPPED_CONSTANT and np.unique(array).size > 2:
            raise ModelBundleError(f"{component}'s exported constant {init.name} {list(array.shape)} matches no "
                                   "weight of the model: the export folds weights in a way the template "
                                   "cannot map; keep using `model convert` for this architecture")
        elif init.data_type != onnx.TensorProto.FLOAT:
            raise ModelBundleError(f"{component}'s exported weight {init.name} is not float32")
    strip_weights(model, tuple(refs))
    save_graph(model, out)
    return ComponentTemplate(component=component, file=out.name, inputs=tuple(inputs), outputs=tuple(outputs),
                             weights=tuple(refs))


def _digest(array: np.ndarray) -> bytes:
    """The values' bytes in row-major order: a reshaped copy (the position table as [1, 77, C]) matches."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).digest()


def read_configs(folder: Path) -> dict[str, dict[str, Any]]:
    return {name: json.loads((Path(folder) / name / "config.json").read_text(encoding="utf-8"))
            for name in CONFIG_FOLDERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", default="dynamic")
    parser.add_argument("--config", type=Path, default=SD15_CONFIGS,
                        help="a diffusers folder whose configs give the architecture (default: SD 1.5's)")
    parser.add_argument("--export-cache", type=Path)
    args = parser.parse_args()
    templates = build_templates(read_configs(args.config), args.variant, args.out, export_cache=args.export_cache)
    sizes = {c: (args.out / t.file).stat().st_size for c, t in templates.components.items()}
    print(f"{args.out}: signature {templates.signature}, {args.variant}, export key {templates.export_key}, "
          + ", ".join(f"{c} {size / 1e6:.1f} MB {len(templates.components[c].weights)} weights"
                      for c, size in sizes.items()))


if __name__ == "__main__":
    main()
