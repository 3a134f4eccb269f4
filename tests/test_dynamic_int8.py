"""int8 models quantised while pouring (engine/model_get/dynamic_int8.py) are ONNX Runtime's
`quantize_dynamic` models, bit for bit: the same initializers with the same bytes, the same outputs.

`model get --precision int8` relies on it to skip the fp32 model ONNX Runtime's quantizer would load
whole (12 GB at full size); `model check` references and every SNR measured for `model convert`'s int8
bundles then hold for `model get`'s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.bundle.manifest import TensorSpec
from engine.bundle.quantize import DEFAULT_INT8_SCHEMES, DYNAMIC_OP_TYPES, quantize_int8
from engine.model_get.template import (
    WEIGHT_FOLDER,
    ComponentTemplate,
    TemplateSet,
    WeightRef,
    fill,
    save_graph,
    strip_weights,
)
from engine.model_get.weights import FolderWeights, weight_files
from engine.sessions import SessionSettings, create_session


def initializers(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return create_session(path, SessionSettings()).run(None, feeds)


def assert_same_model(ours: Path, theirs: Path, feeds: dict[str, np.ndarray]) -> None:
    mine, reference = initializers(ours), initializers(theirs)
    assert sorted(mine) == sorted(reference)
    for name, array in reference.items():
        assert mine[name].dtype == array.dtype and mine[name].shape == array.shape, name
        assert np.array_equal(mine[name], array), name
    ops = sorted(node.op_type for node in onnx.load(str(ours), load_external_data=False).graph.node)
    assert ops == sorted(node.op_type for node in onnx.load(str(theirs), load_external_data=False).graph.node)
    for got, expected in zip(run(ours, feeds), run(theirs, feeds), strict=True):
        np.testing.assert_array_equal(got, expected)


def find_templates(cache: Path) -> TemplateSet:
    return TemplateSet.read(next(cache.glob("*-dynamic")))


@pytest.mark.parametrize("component", ["unet", "text_encoder"])
def test_the_tiny_models_poured_as_int8_are_quantize_dynamics(component, tiny_templates, tiny_sd_dir, tmp_path):
    templates = find_templates(tiny_templates)
    folder = tiny_sd_dir / WEIGHT_FOLDER[component]
    weights = FolderWeights(folder, weight_files(folder))
    scheme = DEFAULT_INT8_SCHEMES[component]
    (tmp_path / "fp32").mkdir()
    try:
        fp32 = fill(templates, component, weights, tmp_path / "fp32" / f"{component}.onnx")
        ours = fill(templates, component, weights, tmp_path / f"{component}.onnx",
                    int8_op_types=DYNAMIC_OP_TYPES[scheme])
    finally:
        weights.close()
    quantize_int8(fp32, tmp_path / "ort" / f"{component}.onnx", component, scheme=scheme)
    rng = np.random.default_rng(3)
    feeds = ({"input_ids": rng.integers(0, 1000, (2, 77)).astype(np.int32)} if component == "text_encoder" else
             {"sample": rng.standard_normal((2, 4, 64, 10), dtype=np.float32),
              "timestep": np.array([999.0, 18.0], np.float32),
              "encoder_hidden_states": rng.standard_normal((2, 77, 32), dtype=np.float32)})
    assert_same_model(ours, tmp_path / "ort" / f"{component}.onnx", feeds)
    integer_ops = {n.op_type for n in onnx.load(str(ours), load_external_data=False).graph.node} & {
        "MatMulInteger", "ConvInteger"}
    assert integer_ops == ({"MatMulInteger", "ConvInteger"} if component == "unet" else {"MatMulInteger"})


class ArrayWeights:
    """A WeightSource over arrays in memory."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def shape(self, name: str) -> tuple[int, ...]:
        return self.arrays[name].shape

    def read(self, name: str) -> np.ndarray:
        return self.arrays[name]


def test_the_cases_our_graphs_do_not_have_are_quantize_dynamics_too(tmp_path):
    """A weight another node also reads (dequantized), a transposed Gemm with a bias whose weight another
    node reads (in fp32), a Conv with a bias, a column of zeros (ONNX Runtime's scale 1 and zero point 0),
    a weight with no negative values."""
    rng = np.random.default_rng(7)
    arrays = {"w": rng.standard_normal((8, 4)).astype(np.float32), "g": rng.standard_normal((5, 8)).astype(np.float32),
              "g.bias": rng.standard_normal(5).astype(np.float32),
              "c": np.abs(rng.standard_normal((2, 3, 3, 3))).astype(np.float32),
              "c.bias": rng.standard_normal(2).astype(np.float32)}
    arrays["w"][:, 2] = 0.0
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"], "first"),
             helper.make_node("ReduceSum", ["w"], ["wsum"], keepdims=0),
             helper.make_node("Add", ["xw", "wsum"], ["y1"]),
             helper.make_node("Gemm", ["x", "g", "g.bias"], ["y2"], "dense", transB=1),
             helper.make_node("ReduceMax", ["g"], ["y4"], keepdims=0),
             helper.make_node("Conv", ["image", "c", "c.bias"], ["y3"], "conv", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "cases",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8]),
         helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y1", "y2", "y3", "y4")],
        [numpy_helper.from_array(array, name) for name, array in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    full = tmp_path / "fp32.onnx"
    onnx.save(model, str(full))
    refs = tuple(WeightRef(name, name, "none", array.shape, array.shape) for name, array in arrays.items())
    strip_weights(model, refs)
    save_graph(model, tmp_path / "unet.onnx.xz")
    specs = (TensorSpec("x", "float32", (3, 8)),)
    templates = TemplateSet(tmp_path, "test", "dynamic", "test",
                            {"unet": ComponentTemplate("unet", "unet.onnx.xz", specs, specs, refs)})
    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        ours = fill(templates, "unet", ArrayWeights(arrays), Path(work) / "unet.onnx",
                    int8_op_types=("MatMul", "Conv"))
        quantize_int8(full, tmp_path / "ort" / "unet.onnx", "unet", scheme="dynamic_u8_per_channel")
        feeds = {"x": rng.standard_normal((3, 8)).astype(np.float32),
                 "image": rng.standard_normal((1, 3, 6, 6)).astype(np.float32)}
        assert_same_model(ours, tmp_path / "ort" / "unet.onnx", feeds)
        scale = initializers(ours)["w_scale"]
        assert scale.shape == (4,) and scale[2] == 1.0
