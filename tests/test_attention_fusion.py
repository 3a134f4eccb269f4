"""Attention fused into ONNX Runtime's MultiHeadAttention in CPU bundles: same numbers, bounded memory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engine.bundle import open_bundle
from engine.export.attention_fusion import fuse_attention

BATCH, TOKENS, HEADS, HEAD_SIZE = 2, 48, 4, 8
CHANNELS = HEADS * HEAD_SIZE


def attention_graph(*, mask: bool = False, key_transpose: str = "3d") -> onnx.ModelProto:
    """Scaled-dot-product attention written out the way torch's dynamo exporter writes it."""
    def tensor(name: str, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    heads_first = [BATCH, HEADS, TOKENS, HEAD_SIZE]
    nodes = [helper.make_node("Reshape", [x, "split"], [f"{x}4"]) for x in "qkv"]
    nodes += [helper.make_node("Transpose", [f"{x}4"], [f"{x}h"], perm=[0, 2, 1, 3]) for x in "qkv"]
    nodes.append(helper.make_node("Mul", ["qh", "root_scale"], ["qs"]))
    if key_transpose == "3d":  # as the exporter does: through a [B*H, S, D] view
        nodes += [helper.make_node("Reshape", ["kh", "flat"], ["k3"]),
                  helper.make_node("Transpose", ["k3"], ["k3t"], perm=[0, 2, 1]),
                  helper.make_node("Reshape", ["k3t", "unflat"], ["kt"])]
    else:
        nodes.append(helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 1, 3, 2]))
    nodes += [helper.make_node("Mul", ["kt", "root_scale"], ["ks"]),
              helper.make_node("MatMul", ["qs", "ks"], ["scores"])]
    if mask:
        nodes.append(helper.make_node("Add", ["scores", "bias"], ["masked"]))
    nodes += [helper.make_node("Softmax", ["masked" if mask else "scores"], ["probs"], axis=-1),
              helper.make_node("MatMul", ["probs", "vh"], ["context"]),
              helper.make_node("Transpose", ["context"], ["context_t"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["context_t", "merge"], ["out"])]
    constants = [helper.make_tensor("split", TensorProto.INT64, [4], [BATCH, TOKENS, HEADS, HEAD_SIZE]),
                 helper.make_tensor("flat", TensorProto.INT64, [3], [BATCH * HEADS, TOKENS, HEAD_SIZE]),
                 helper.make_tensor("unflat", TensorProto.INT64, [4], [BATCH, HEADS, HEAD_SIZE, TOKENS]),
                 helper.make_tensor("merge", TensorProto.INT64, [3], [BATCH, TOKENS, CHANNELS]),
                 helper.make_tensor("root_scale", TensorProto.FLOAT, [1], [HEAD_SIZE ** -0.25]),
                 helper.make_tensor("bias", TensorProto.FLOAT, [1], [0.5])]
    graph = helper.make_graph(
        nodes, "attention", [tensor(x, [BATCH, TOKENS, CHANNELS]) for x in "qkv"],
        [tensor("out", [BATCH, TOKENS, CHANNELS])], constants,
        value_info=[tensor("qs", heads_first), tensor("qh", heads_first)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("key_transpose", ["3d", "4d"])
def test_exporter_attention_becomes_one_node_with_the_same_output(key_transpose):
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((BATCH, TOKENS, CHANNELS), dtype=np.float32) for x in "qkv"}
    model = attention_graph(key_transpose=key_transpose)
    expected = run(model, feeds)
    assert fuse_attention(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MultiHeadAttention"]
    np.testing.assert_allclose(run(model, feeds), expected, atol=1e-5)


def test_attention_with_a_mask_is_left_alone():
    """Only the exact pattern is fused; anything else (here a mask, as in the text encoder) keeps its ops."""
    model = attention_graph(mask=True)
    before = [n.op_type for n in model.graph.node]
    assert fuse_attention(model) == 0
    assert [n.op_type for n in model.graph.node] == before


@pytest.mark.slow
def test_cpu_bundles_fuse_every_attention_and_qnn_bundles_none(fp32_bundle, int8_bundle, qnn_bundle):
    def ops(bundle, component):
        path = open_bundle(bundle).component_path(component)
        return [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]

    for bundle in (fp32_bundle, int8_bundle):
        for component in ("unet", "vae_decoder", "vae_encoder"):
            assert "Softmax" not in ops(bundle, component) and "MultiHeadAttention" in ops(bundle, component)
    unet = ops(fp32_bundle, "unet")
    assert unet.count("MultiHeadAttention") == 32  # 16 transformer blocks x (self + cross) in the tiny UNet
    for component in ("unet", "vae_decoder"):
        assert "MultiHeadAttention" not in ops(qnn_bundle, component)


# VmHWM, not ru_maxrss: ru_maxrss starts from the parent's high-water mark at fork (pytest's, GBs here).
WIDE_GENERATION = """
import sys
from engine.bundle import open_bundle
from engine.generation.pipeline import LoopGenerator
from engine.generation.settings import GenerationSettings
generator = LoopGenerator(open_bundle(sys.argv[1]))
result = generator.generate(GenerationSettings(prompt="a long drone", seed=1, steps=1, width=2048))
assert result.image.shape == (512, 2048, 3)
print(next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_a_20_second_loop_fits_in_memory(fp32_bundle):
    """2048 px = 16384 latent tokens: the unfused UNet held 2 x 2 x 16384^2 scores (8.9 GB peak, tiny model)."""
    result = subprocess.run([sys.executable, "-c", WIDE_GENERATION, str(fp32_bundle)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) < 1500, result.stdout  # MB
