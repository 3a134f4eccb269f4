"""Export-side fixes that make the fp32 ONNX graphs quantizable and runnable on QNN's HTP back end.

Each one answers a failure seen with onnxruntime 1.32 + onnxruntime-qnn 2.7 (QNN SDK 2.51) on the
HTP simulator (docs/qnn-notes.md):

- The CLIP text encoder must be exported with eager attention: with SDPA, torch's exporter adds a
  NaN guard after the softmax (`Where(IsNaN(x), 0, x)`) and QNN fails to finalize the graph.
- Its causal mask is a constant of -3.4e38 (float32's minimum) added to the attention scores; a
  16-bit activation range that has to reach -3.4e38 has no resolution left for the scores.
  `clamp_mask_constants` brings such constants up to -100 (exp(-100) is still 0 in float32).
- The UNet must be exported at opset 18: at opset 21 torch emits GroupNormalization, whose bias the
  quantizer shares with a LayerNorm as a standalone int32 DequantizeLinear, which HTP rejects.
- Keep the dynamo exporter's `optimize=True`: without it SplitToSequence/SequenceAt remain.

`qnn_blockers` finds all of these in a graph, so conversion (and tests) can say what went wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Opset for every component we export for QNN (see the module docstring: GroupNormalization).
QNN_EXPORT_OPSET = 18
# A float constant at or below this is a mask value ("minus infinity"), never a weight.
MASK_THRESHOLD = -1e4
MASK_FLOOR = -100.0
UNSUPPORTED_OPS = {
    "IsNaN": "a NaN guard after SDPA softmax: export the text encoder with attn_implementation='eager'",
    "SplitToSequence": "sequence ops: export with torch.onnx.export(..., dynamo=True, optimize=True)",
    "SequenceAt": "sequence ops: export with torch.onnx.export(..., dynamo=True, optimize=True)",
    "GroupNormalization": f"GroupNormalization (opset 21): export at opset {QNN_EXPORT_OPSET}",
}


def text_encoder_load_kwargs() -> dict[str, Any]:
    """Keyword arguments for `CLIPTextModel.from_pretrained` when the export is meant for QNN (and
    harmless for the CPU: the eager and SDPA graphs compute the same thing)."""
    return {"attn_implementation": "eager"}


def clamp_mask_constants(model: Any, floor: float = MASK_FLOOR) -> int:
    """Raise float constants (initializers, Constant nodes) at or below -1e4 to `floor`, in place.

    `model` is an `onnx.ModelProto` (weights loaded). Returns how many tensors changed. Softmax
    outputs do not change in float32 (exp(-100 + score) underflows to 0 as exp(-3.4e38) does) but
    the quantizer can now give the masked scores a 16-bit range with resolution.
    """
    import numpy as np
    from onnx import numpy_helper

    changed = 0
    tensors = list(model.graph.initializer)
    tensors += [attr.t for node in model.graph.node if node.op_type == "Constant"
                for attr in node.attribute if attr.name == "value"]
    for tensor in tensors:
        if tensor.data_type not in (1, 10, 11):  # FLOAT, FLOAT16, DOUBLE
            continue
        if tensor.data_location == 1:  # external data: weights, never a mask
            continue
        values = numpy_helper.to_array(tensor)
        if values.size and values.min() <= MASK_THRESHOLD:
            clamped = np.maximum(values, np.asarray(floor, dtype=values.dtype))
            tensor.CopyFrom(numpy_helper.from_array(clamped, tensor.name))
            changed += 1
    return changed


def clamp_mask_constants_in_file(model_path: str | Path, floor: float = MASK_FLOOR) -> int:
    """`clamp_mask_constants` on a saved model (a small one: the text encoder), rewritten atomically."""
    import onnx

    from engine.atomic import atomic_path

    model = onnx.load(str(model_path))
    changed = clamp_mask_constants(model, floor)
    if changed:
        with atomic_path(model_path) as temp:
            onnx.save(model, str(temp))
    return changed


def qnn_blockers(model: Any) -> list[str]:
    """What in `model` (an `onnx.ModelProto`, weights optional) keeps it from working well on QNN.

    An empty list means none of the known problems; each entry says what to change in the export.
    """
    import numpy as np
    from onnx import numpy_helper

    problems = []
    ops = {node.op_type for node in model.graph.node}
    for op, advice in UNSUPPORTED_OPS.items():
        if op in ops:
            problems.append(f"{op}: {advice}")
    tensors = [t for t in model.graph.initializer if t.data_location != 1 and t.data_type == 1]
    tensors += [attr.t for node in model.graph.node if node.op_type == "Constant"
                for attr in node.attribute if attr.name == "value" and attr.t.data_type == 1]
    for tensor in tensors:
        values = numpy_helper.to_array(tensor)
        if values.size and np.min(values) <= MASK_THRESHOLD:
            problems.append(f"constant {tensor.name or '(Constant)'} reaches {float(np.min(values)):.3g}: "
                            f"clamp_mask_constants() it, or 16-bit activations lose their resolution")
    return problems
