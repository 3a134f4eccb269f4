"""torch -> ONNX for the four models a bundle holds, each checked against torch on the same inputs.

The ONNX contract (what the engine feeds and reads), float32 unless said:
- text_encoder: input_ids int32 [batch, 77] -> last_hidden_state [batch, 77, hidden]
- unet: sample [batch, 4, 64, w/8], timestep [batch], encoder_hidden_states [batch, 77, hidden]
  -> noise_pred [batch, 4, 64, w/8]
- vae_decoder: latent [batch, 4, 64, w/8] (already divided by the latent scale factor)
  -> image [batch, 3, 512, w] in about [-1, 1]
- vae_encoder: image [batch, 3, 512, w] -> moments [batch, 8, 64, w/8] (latent mean and log-variance)

Batch and width are dynamic for CPU bundles; QNN needs fixed shapes (batch 1, one width). Any width
that is a multiple of 8 px works: diffusers' UNet handles latent widths that do not halve evenly by
resizing each up-sampled map to its skip connection's size, but it decides so with a test on the
width (`width % 8`) that torch.export would freeze into the graph. We export with that test forced
true, which computes exactly the same thing for every width (a resize to twice the size is the plain
2x up-sampling), so one graph serves them all. int32 token ids (not int64): the NPU has no 64-bit
integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.bundle.build import MAX_LATENT_WIDTH, OPSET, describe_onnx
from engine.bundle.manifest import TensorSpec
from engine.errors import ModelBundleError

LATENT_HEIGHT = 64
MIN_LATENT_WIDTH = 8  # 64 px
# diffusers resizes to the skip connection's size when width % 2**num_upsamplers != 0: always, with this.
ALWAYS_RESIZE_UPSAMPLERS = 1 << 30
# torch.export cannot prove the dynamic UNet for 8 latent columns (three 2x down-samplings leave 1, a size
# it specialises) and asks for 9; the ONNX graph has no such limit (the stored reference inputs are 8
# columns wide). Asked for directly, with a strict capture (below), this saves the two captures that
# torch.onnx would try and throw away first: 129 s -> 79 s for the tiny UNet.
UNET_TRACE_MIN_LATENT_WIDTH = 9
# fp32 ONNX vs torch: tolerance relative to the output's largest magnitude.
MAX_RELATIVE_ERROR = 1e-3


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_abs_error_vs_torch: float


INPUT_NAMES = {
    "text_encoder": ("input_ids",),
    "unet": ("sample", "timestep", "encoder_hidden_states"),
    "vae_decoder": ("latent",),
    "vae_encoder": ("image",),
}
# Which checkpoint attribute holds each component's torch module.
COMPONENT_OWNER = {"text_encoder": "text_encoder", "unet": "unet", "vae_decoder": "vae", "vae_encoder": "vae"}
OUTPUT_NAMES = {"text_encoder": ("last_hidden_state",), "unet": ("noise_pred",), "vae_decoder": ("image",),
                "vae_encoder": ("moments",)}


def export_component(checkpoint: Any, component: str, path: Path, *, fixed_width: int | None,
                     check: bool = True) -> ExportedModel:
    """Export one model to `path` (+ `path.data` when over 2 GB) and check it against torch.

    `fixed_width` (pixels) gives static shapes with batch 1, for QNN; None gives dynamic batch and width.
    """
    import torch

    module = wrap_component(checkpoint, component)
    example = example_inputs(module, component, batch=1 if fixed_width else 2, width=fixed_width or 512)
    upsamplers = getattr(module.model, "num_upsamplers", None)
    if component == "unet" and not fixed_width:
        module.model.num_upsamplers = ALWAYS_RESIZE_UPSAMPLERS
    try:
        with torch.no_grad():
            dynamic_shapes = None if fixed_width else (_dynamic_shapes(component),)
            captured = _strict_capture(module, example, dynamic_shapes) if component == "unet" and not fixed_width \
                else module
            program = torch.onnx.export(
                captured, example, dynamo=True, optimize=True, opset_version=OPSET,
                input_names=list(INPUT_NAMES[component]), output_names=list(OUTPUT_NAMES[component]),
                dynamic_shapes=dynamic_shapes, verbose=False)
    finally:
        if upsamplers is not None:
            module.model.num_upsamplers = upsamplers
    program.save(str(path), external_data=_needs_external_data(module))
    if component == "text_encoder":
        from engine.export.qnn_export_fixes import clamp_mask_constants_in_file

        # The causal mask's -3.4e38 becomes -100: same fp32 outputs, usable 16-bit ranges on the NPU.
        clamp_mask_constants_in_file(path)
    if not fixed_width:
        from engine.export.attention_fusion import fuse_attention_in_file

        # CPU bundles: ONNX Runtime's tiled attention kernel instead of the full score matrix (checked
        # against torch below like the rest). The NPU's fixed-shape export keeps the plain ops.
        fuse_attention_in_file(path)
    inputs, outputs = describe_onnx(path)
    error = check_against_torch(module, path, component, fixed_width) if check else float("nan")
    return ExportedModel(path=path, inputs=inputs, outputs=outputs, max_abs_error_vs_torch=error)


def wrap_component(checkpoint: Any, component: str) -> Any:
    """A torch module whose forward is exactly the ONNX contract of `component`."""
    import torch

    forwards = {
        "text_encoder": lambda model, input_ids: model(input_ids.long(), return_dict=False)[0],
        "unet": lambda model, sample, timestep, context: model(sample, timestep, context, return_dict=False)[0],
        "vae_decoder": lambda model, latent: model.decode(latent, return_dict=False)[0],
        "vae_encoder": _vae_moments,
    }

    class Contract(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = getattr(checkpoint, COMPONENT_OWNER[component])

        def forward(self, *inputs: Any) -> Any:
            return forwards[component](self.model, *inputs)

    return Contract().eval()


def _vae_moments(vae: Any, image: Any) -> Any:
    moments = vae.encoder(image)
    return vae.quant_conv(moments) if vae.quant_conv is not None else moments


def example_inputs(module: Any, component: str, *, batch: int, width: int, seed: int = 0) -> tuple[Any, ...]:
    """Random inputs in the contract's shapes (width in image pixels)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    model = module.model
    latent = (batch, 4, LATENT_HEIGHT, width // 8)
    if component == "text_encoder":
        ids = torch.randint(0, model.config.vocab_size, (batch, 77), generator=generator)
        return (ids.to(torch.int32),)
    if component == "unet":
        timestep = torch.randint(0, 1000, (batch,), generator=generator).to(torch.float32)
        context = torch.randn(batch, 77, model.config.cross_attention_dim, generator=generator)
        return torch.randn(*latent, generator=generator), timestep, context
    if component == "vae_decoder":
        return (torch.randn(*latent, generator=generator),)
    if component == "vae_encoder":
        return (torch.rand(batch, 3, LATENT_HEIGHT * 8, width, generator=generator) * 2 - 1,)
    raise ValueError(f"unknown component {component!r}")


def _strict_capture(module: Any, example: tuple[Any, ...], dynamic_shapes: Any) -> Any:
    """The dynamic UNet as an ExportedProgram from torch.export's strict (dynamo) capture.

    torch.onnx tries a non-strict capture first; for the dynamic UNet it always fails (torch's runtime-assert
    pass cannot build the up-sampling size checks: "symbolically traced variables cannot be used as inputs
    to control flow") after ~17 s, and then the strict one, which is what gets exported anyway. Deferred
    runtime asserts as torch.onnx asks for: a width check becomes an assert, not a specialisation."""
    import torch

    return torch.export.export(module, example, dynamic_shapes=dynamic_shapes, strict=True,
                               prefer_deferred_runtime_asserts_over_guards=True)


def _dynamic_shapes(component: str) -> tuple[Any, ...]:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=16)
    columns = Dim("latent_width", min=UNET_TRACE_MIN_LATENT_WIDTH if component == "unet" else MIN_LATENT_WIDTH,
                  max=MAX_LATENT_WIDTH)
    latent = {0: batch, 3: columns}
    return {
        "text_encoder": ({0: batch},),
        "unet": (latent, {0: batch}, {0: batch}),
        "vae_decoder": (latent,),
        "vae_encoder": ({0: batch, 3: 8 * columns},),
    }[component]


def _needs_external_data(module: Any) -> bool:
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    return size > 1_800_000_000  # protobuf's 2 GB limit, with room for the graph


def check_against_torch(module: Any, path: Path, component: str, fixed_width: int | None) -> float:
    """Max abs difference between ONNX Runtime and torch on fresh inputs (batch 1, another width if dynamic:
    one that does not halve evenly, the case the UNet export had to be told about)."""
    import torch

    from engine.sessions import SessionSettings, create_session

    example = example_inputs(module, component, batch=1, width=fixed_width or 520, seed=1)
    with torch.no_grad():
        reference = module(*example).numpy()
    session = create_session(path, SessionSettings())
    feeds = {name: tensor.numpy() for name, tensor in zip(INPUT_NAMES[component], example, strict=True)}
    result = session.run(None, feeds)[0]
    if result.shape != reference.shape:
        raise ModelBundleError(f"exported {component} gives shape {result.shape}, torch {reference.shape}: "
                               "the export is wrong, please report it with the model's source")
    error = float(np.max(np.abs(result - reference)))
    scale = float(np.max(np.abs(reference))) or 1.0
    if not np.isfinite(error) or error > MAX_RELATIVE_ERROR * scale:
        raise ModelBundleError(f"exported {component} differs from torch by {error:.3g} (outputs up to "
                               f"{scale:.3g}): the export is wrong, please report it with the model's source")
    return error
