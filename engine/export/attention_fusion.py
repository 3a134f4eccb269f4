"""Attention as one com.microsoft.MultiHeadAttention node, for the CPU bundles.

The exporter writes scaled-dot-product attention as MatMul -> Softmax -> MatMul, which materialises
the whole batch x heads x tokens x tokens score matrix, twice (scores and probabilities). The UNet's
first level attends over every latent pixel: at 512 px that is 2 x 8 x 4096^2 floats = 1 GiB per
matrix; at 2048 px, 16 GiB. ONNX Runtime's CPU MultiHeadAttention kernel computes the same thing in
tiles (flash attention) and never holds the matrix, so wide loops fit in memory and the big attentions
run faster. The NPU path keeps the plain ops (QNN has no kernel for the contrib op; its fixed 512 px
shapes are small enough).

The pattern is the one torch's dynamo exporter writes for `F.scaled_dot_product_attention` (and for
eager attention): per input, the projection [B, S, H*D] reshaped to [B, S, H, D] and transposed to
heads-first, the scale split as sqrt(scale) on each of q and k^T, and the output transposed back and
reshaped to [B, S, H*D]. Anything else is left alone: fusion is an optimisation, never a requirement,
and the export is checked against torch afterwards either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYOUT_OPS = ("Reshape", "Transpose")
MSFT_DOMAIN = "com.microsoft"


@dataclass
class _Graph:
    """Producer and consumer lookups over one ONNX graph."""

    graph: Any

    def __post_init__(self) -> None:
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = {i.name: i for i in self.graph.initializer}
        self.shapes = {v.name: v.type.tensor_type.shape
                       for v in (*self.graph.input, *self.graph.value_info, *self.graph.output)}

    def only_consumer(self, name: str, op_type: str) -> Any | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    def scalar(self, name: str) -> float | None:
        """The value of a one-element float constant (initializer or Constant node), else None."""
        from onnx import numpy_helper

        if name in self.initializers:
            array = numpy_helper.to_array(self.initializers[name])
        else:
            node = self.producer.get(name)
            if node is None or node.op_type != "Constant" or not node.attribute:
                return None
            from onnx import helper

            value = helper.get_attribute_value(node.attribute[0])
            if not hasattr(value, "dims"):
                return None
            array = numpy_helper.to_array(value)
        return float(array.reshape(-1)[0]) if array.size == 1 else None

    def dim(self, name: str, axis: int) -> int | None:
        shape = self.shapes.get(name)
        if shape is None or len(shape.dim) <= axis:
            return None
        value = shape.dim[axis]
        return value.dim_value if value.HasField("dim_value") else None

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return len(shape.dim) if shape is not None else None


def _source(graph: _Graph, name: str) -> tuple[str, float, list[Any]]:
    """Walk back from a heads-first attention operand through layout ops and scalar factors.

    Returns (the tensor the walk ends at: the [B, S, C] projection, product of the scalar factors,
    the layout nodes passed).
    """
    scale, passed = 1.0, []
    while (node := graph.producer.get(name)) is not None:
        if node.op_type == "Mul" and (factor := graph.scalar(node.input[1])) is not None:
            scale *= factor
        elif node.op_type in LAYOUT_OPS:
            passed.append(node)
        else:
            break
        name = node.input[0]
    return name, scale, passed


def fuse_attention(model: Any) -> int:
    """Replace every matching attention in `model` (an onnx.ModelProto, changed in place); returns how many.

    Needs shapes on the intermediate tensors (the dynamo exporter writes them): the number of heads is
    read from the heads-first query's shape.
    """
    from onnx import helper

    graph = _Graph(model.graph)
    fused, dead = 0, []
    for softmax in [n for n in model.graph.node if n.op_type == "Softmax"]:
        scores = graph.producer.get(softmax.input[0])
        weighted = graph.only_consumer(softmax.output[0], "MatMul")
        if scores is None or scores.op_type != "MatMul" or weighted is None or weighted.input[0] != softmax.output[0]:
            continue
        back = graph.only_consumer(weighted.output[0], "Transpose")
        merged = back and graph.only_consumer(back.output[0], "Reshape")
        if not merged or _perm(back) != (0, 2, 1, 3):
            continue
        heads, head_size = graph.dim(scores.input[0], 1), graph.dim(scores.input[0], 3)
        if not heads or not head_size:
            continue
        query, q_scale, q_nodes = _source(graph, scores.input[0])
        key, k_scale, k_nodes = _source(graph, scores.input[1])
        value, v_scale, v_nodes = _source(graph, weighted.input[1])
        if v_scale != 1.0 or any(graph.rank(t) != 3 for t in (query, key, value)):
            continue
        if not _key_is_transposed(k_nodes) or not _heads_first(q_nodes) or not _heads_first(v_nodes):
            continue
        attention = helper.make_node(
            "MultiHeadAttention", [query, key, value], [merged.output[0]], name=f"{softmax.name}_fused_mha",
            domain=MSFT_DOMAIN, num_heads=heads, scale=q_scale * k_scale)
        model.graph.node.insert(list(model.graph.node).index(merged), attention)
        dead += [scores, softmax, weighted, back, merged]
        fused += 1
    if fused:
        _remove(model, dead)
        _prune(model)
        if not any(o.domain == MSFT_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(MSFT_DOMAIN, 1))
    return fused


def _perm(transpose: Any) -> tuple[int, ...]:
    from onnx import helper

    return tuple(helper.get_attribute_value(transpose.attribute[0]))


def _heads_first(nodes: list[Any]) -> bool:
    """[B, S, H*D] -> Reshape [B, S, H, D] -> Transpose (0, 2, 1, 3): the standard split into heads."""
    return [_perm(n) for n in nodes if n.op_type == "Transpose"] == [(0, 2, 1, 3)]


def _key_is_transposed(nodes: list[Any]) -> bool:
    """k^T: the heads split, then the last two axes swapped (as 4-D (0, 1, 3, 2) or via a 3-D (0, 2, 1))."""
    perms = sorted(_perm(n) for n in nodes if n.op_type == "Transpose")
    return perms in ([(0, 2, 1), (0, 2, 1, 3)], [(0, 1, 3, 2), (0, 2, 1, 3)], [(0, 2, 3, 1)])


def _remove(model: Any, nodes: list[Any]) -> None:
    ids = {id(n) for n in nodes}
    kept = [n for n in model.graph.node if id(n) not in ids]
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _prune(model: Any) -> None:
    """Drop nodes (and their value_info) whose outputs nothing reads any more, until none is left."""
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {name for node in model.graph.node for name in node.input} | outputs
        unused = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not unused:
            break
        _remove(model, unused)
    used = {name for node in model.graph.node for name in node.input} | outputs
    produced = {o for n in model.graph.node for o in n.output}
    kept_info = [v for v in model.graph.value_info if v.name in produced]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept_info)
    kept_init = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept_init)


def fuse_attention_in_file(model_path: str | Path) -> int:
    """`fuse_attention` on a saved model, rewritten atomically; external weights are left where they are."""
    import onnx

    from engine.atomic import atomic_path

    model_path = Path(model_path)
    # Without the weights: only the graph changes, and the full UNet's 3.4 GB stay in their data file.
    model = onnx.load(str(model_path), load_external_data=False)
    fused = fuse_attention(model)
    if fused:
        with atomic_path(model_path) as temp:
            onnx.save(model, str(temp))
    return fused
