"""Dynamic u8 quantisation done while pouring: the int8 graph made from the weightless template, and
each weight quantised as it streams past, so no fp32 copy of the model is ever held in memory.

ONNX Runtime's `quantize_dynamic` (what `model convert` uses) loads the whole fp32 model into protobuf,
converts every initializer to numpy and writes the result: 12 GB of peak memory for SD 1.5's 3.4 GB
UNet, twice what a producer's laptop can spare. Here the same result is built another way:

- the graph: each MatMul and Conv whose weight is a checkpoint tensor becomes ONNX Runtime's
  dynamic pattern (DynamicQuantizeLinear on the activation, MatMulInteger/ConvInteger, Cast, the two
  scales multiplied, the product multiplied in; a Conv's bias reshaped and added), written into the
  template's graph before any weight is read;
- the numbers: `quantize_u8` computes scale, zero point and values exactly as onnxruntime.quantization
  1.32's `quantize_data` does for asymmetric QUInt8 (range widened to include 0, the scale computed in
  float64 and stored as float32, the zero point rounded from the float64 scale, values rounded half to
  even in float32). MatMul weights get one scale per output column (its `per_channel=True`; `reduce_range`
  off), Conv weights one per tensor (it never quantises Conv per channel in dynamic mode: ConvInteger
  takes a scalar zero point).

tests/test_model_get.py checks the result against `quantize_dynamic` on the same fp32 model: the same
initializers, bit for bit, and the same outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ModelBundleError

# The op types this module rewrites into integer ops (a plain Gemm becomes a MatMul first).
SUPPORTED_OP_TYPES = frozenset({"MatMul", "Conv"})


@dataclass(frozen=True)
class QuantizedWeight:
    """One fp32 weight replaced by u8 values, a scale and a zero point (initializers named as ONNX
    Runtime names them: after a transposed Gemm weight `W`, `W_Transposed_quantized`)."""

    weight: str  # the fp32 initializer the values come from
    base: str  # the name the quantized initializers derive from (`weight`, or `weight_Transposed`)
    axis: int | None  # the per-channel axis (of the transposed array), or None: one scale for the tensor
    transpose: bool  # a Gemm with transB: MatMul needs the weight transposed
    keep_float: bool  # another node reads the fp32 weight (only beside a transposed copy)

    @property
    def quantized(self) -> str:
        return f"{self.base}_quantized"

    @property
    def scale(self) -> str:
        return f"{self.base}_scale"

    @property
    def zero_point(self) -> str:
        return f"{self.base}_zero_point"


def quantize_graph(model: Any, op_types: Iterable[str], weights: Collection[str],
                   placeholder: str) -> dict[str, QuantizedWeight]:
    """Rewrite `model` (a graph whose `weights` are empty external placeholders at `placeholder`) in place:
    every node of `op_types` whose weight input is one of `weights` runs on u8. Returns the quantized
    weights by fp32 name; their values are `quantize_u8`'s, for the caller to fill in.

    As ONNX Runtime does in dynamic mode, a plain Gemm (alpha = beta = 1, no transA) with a poured weight
    becomes a MatMul (on the transposed weight, for transB) and an Add of its bias, and then is a MatMul
    like any other."""
    from onnx import TensorProto, helper

    wanted = set(op_types)
    unsupported = wanted - SUPPORTED_OP_TYPES - {"Gemm"}
    if unsupported:
        raise ModelBundleError(f"cannot quantise {', '.join(sorted(unsupported))} while pouring")
    graph = model.graph
    dims = {init.name: list(init.dims) for init in graph.initializer}
    nodes = _gemms_as_matmuls(list(graph.node), weights, dims) if "MatMul" in wanted else list(graph.node)
    chosen = {id(node): node for node in nodes if node.op_type in wanted & SUPPORTED_OP_TYPES
              and len(node.input) > 1 and node.input[1] in dims and _source(node.input[1], weights)}
    quantized: dict[str, QuantizedWeight] = {}
    for node in chosen.values():
        base = node.input[1]
        if base in quantized:
            continue
        source = _source(base, weights)
        quantized[base] = QuantizedWeight(source, base, len(dims[base]) - 1 if node.op_type == "MatMul" else None,
                                          transpose=base != source, keep_float=False)
    taken = set(dims) | {out for node in nodes for out in node.output}
    clashes = [n for q in quantized.values() for n in (q.quantized, q.scale, q.zero_point) if n in taken]
    if clashes:
        raise ModelBundleError(f"the model graph already has a tensor named {clashes[0]}: it cannot be "
                               "quantised while pouring")

    new_nodes: list[Any] = []
    activations: set[str] = set()
    for node in nodes:
        if id(node) not in chosen:
            new_nodes.append(node)
            continue
        x, weight = node.input[0], quantized[node.input[1]]
        if x not in activations:
            activations.add(x)
            new_nodes.append(helper.make_node("DynamicQuantizeLinear", [x],
                                              [f"{x}_quantized", f"{x}_scale", f"{x}_zero_point"],
                                              f"{x}_QuantizeLinear"))
        out = node.output[0]
        integer, label = f"{out}_output_quantized", node.name or out
        op = "MatMulInteger" if node.op_type == "MatMul" else "ConvInteger"
        new_nodes.append(helper.make_node(op, [f"{x}_quantized", weight.quantized, f"{x}_zero_point",
                                               weight.zero_point], [integer], f"{label}_quant",
                                          **{a.name: helper.get_attribute_value(a) for a in node.attribute}))
        new_nodes.append(helper.make_node("Cast", [integer], [f"{integer}_cast_output"], f"{integer}_cast",
                                          to=TensorProto.FLOAT))
        new_nodes.append(helper.make_node("Mul", [f"{x}_scale", weight.scale], [f"{label}_quant_scales_mul:0"],
                                          f"{label}_quant_scales_mul"))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        scaled = f"{out}quant_scaled_output" if bias else out
        new_nodes.append(helper.make_node("Mul", [f"{integer}_cast_output", f"{label}_quant_scales_mul:0"],
                                          [scaled], f"{label}_quant_output_scale_mul"))
        if bias:  # a Conv's: shaped to broadcast over its channels
            shape = [1] * len(dims[weight.base])
            shape[1] = -1
            graph.initializer.append(helper.make_tensor(f"{out}_bias_reshape_shape", TensorProto.INT64,
                                                        [len(shape)], shape))
            new_nodes.append(helper.make_node("Reshape", [bias, f"{out}_bias_reshape_shape"],
                                              [f"{out}_bias_reshape_output"]))
            new_nodes.append(helper.make_node("Add", [scaled, f"{out}_bias_reshape_output"], [out],
                                              f"{out}_bias_add"))
    # Other nodes reading a quantized weight (none in our graphs) read it dequantized, as in ONNX Runtime's
    # model; the weight behind a transposed Gemm weight stays fp32 for them.
    others = {name for node in nodes if id(node) not in chosen for name in node.input}
    dequantized = [helper.make_node("DequantizeLinear", [q.quantized, q.scale, q.zero_point], [q.base],
                                    f"{q.base}_DequantizeLinear", axis=q.axis)
                   for q in quantized.values() if not q.transpose and q.base in others]
    del graph.node[:]
    graph.node.extend(dequantized + new_nodes)
    quantized = {base: dataclasses.replace(q, keep_float=q.transpose and q.weight in others)
                 for base, q in quantized.items()}
    replaced = {q.weight for q in quantized.values() if not q.keep_float}
    kept = [init for init in graph.initializer if init.name not in replaced]
    for weight in quantized.values():
        shape = dims[weight.base]
        channels = [shape[weight.axis]] if weight.axis is not None else []
        count = channels[0] if channels else 1
        values = TensorProto(name=weight.quantized, data_type=TensorProto.UINT8, dims=shape)
        values.data_location = TensorProto.EXTERNAL
        entry = values.external_data.add()
        entry.key, entry.value = "location", placeholder
        kept += [values, helper.make_tensor(weight.scale, TensorProto.FLOAT, channels, [0.0] * count),
                 helper.make_tensor(weight.zero_point, TensorProto.UINT8, channels, [0] * count)]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return {q.weight: q for q in quantized.values()}


TRANSPOSED = "_Transposed"


def _source(name: str, weights: Collection[str]) -> str:
    """The poured weight behind `name` (itself, or the weight a transposed Gemm weight comes from)."""
    if name in weights:
        return name
    stem = name.removesuffix(TRANSPOSED)
    return stem if stem != name and stem in weights else ""


def _gemms_as_matmuls(nodes: list[Any], weights: Collection[str], dims: dict[str, list[int]]) -> list[Any]:
    """ONNX Runtime's Gemm -> MatMul (+ Add) rewrite, for Gemms whose weight is poured; a transposed
    weight gets a virtual initializer `<weight>_Transposed` (in `dims`), filled transposed."""
    from onnx import helper

    rewritten: list[Any] = []
    for node in nodes:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0
                 and not attributes.get("transA", 0))
        if node.op_type != "Gemm" or not plain or node.input[1] not in weights:
            rewritten.append(node)
            continue
        weight = node.input[1]
        if attributes.get("transB", 0):
            dims[weight + TRANSPOSED] = dims[weight][::-1]
            weight += TRANSPOSED
        bias = len(node.input) > 2 and node.input[2]
        out = node.output[0]
        rewritten.append(helper.make_node("MatMul", [node.input[0], weight], [f"{out}_MatMul" if bias else out],
                                          f"{node.name}_MatMul" if node.name else ""))
        if bias:
            rewritten.append(helper.make_node("Add", [f"{out}_MatMul", node.input[2]], [out],
                                              f"{node.name}_Add" if node.name else ""))
    return rewritten


def quantize_u8(array: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric u8 values, scale (float32) and zero point (uint8) of a float32 weight, per slice along
    `axis` (or for the whole tensor), equal to onnxruntime.quantization's `quantize_data`."""
    array = np.asarray(array, dtype=np.float32)
    if axis is None:
        low, high = array.min(keepdims=True), array.max(keepdims=True)
    else:
        others = tuple(i for i in range(array.ndim) if i != axis)
        low, high = array.min(axis=others, keepdims=True), array.max(axis=others, keepdims=True)
    low, high = np.minimum(low, np.float32(0)), np.maximum(high, np.float32(0))
    scale64 = (high.astype(np.float64) - low.astype(np.float64)) / 255.0
    tiny = scale64 < np.finfo(np.float32).tiny  # a constant slice: ONNX Runtime's scale 1, zero point 0
    safe64 = np.where(tiny, 1.0, scale64)
    zero_point = np.where(tiny, 0.0, np.round(0.0 - low.astype(np.float64) / safe64)).astype(np.uint8)
    scale = np.where(tiny, np.float32(1.0), scale64.astype(np.float32)).astype(np.float32)
    values = np.round(array / scale) + zero_point.astype(np.float32)
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8), scale.reshape(-1), zero_point.reshape(-1)


def set_values(init: Any, values: np.ndarray) -> None:
    """Store a small initializer's values in the graph itself (scales, zero points)."""
    from onnx import TensorProto

    init.ClearField("float_data")
    init.ClearField("int32_data")
    del init.external_data[:]
    init.data_location = TensorProto.DEFAULT
    init.raw_data = np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
