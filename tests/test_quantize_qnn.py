"""Quantization (int8 for the CPU, w8a16 QDQ for QNN) of the tiny checkpoint's real exports, calibrated on
real trajectories, checked against fp32 by SNR; the qnn models run on QNN's HTP back end (the
simulator here) with CPU fallback disabled; and the export pitfalls stay caught.

Widths are small because the HTP simulator is slow (the tiny VAE decoder takes 174 s per call at
512 x 512), but not too small: HTP's answer is wrong when the innermost feature maps get narrow, on
graphs whose every op is right alone (UNet: 0 dB at 64 px, 24 dB at 128 px, 41 dB from 256 px; VAE
decoder 12 dB and encoder -11 dB at 64 px, where their innermost maps are 8 columns wide, CPU-level
SNR from 128 px). So: 128 px for the VAE, 256 px for the UNet. See docs/qnn-notes.md.

Exports, calibration sets and quantized models are built once per version of the export code and
cached in .cache/test-artifacts/ (`cached_artifacts`): what the tests check is unchanged, only the
torch runs are not repeated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import cached_artifacts
from qnn_artifacts import COMPONENTS, WIDTH

from engine.bundle.quantize import component_snr_db, quantize_int8, quantize_qnn
from engine.bundle.reference import snr_db
from engine.errors import InvalidInputError, ModelBundleError
from engine.export.calibration import MUSIC_PROMPTS, CalibrationSet
from engine.sessions import SessionSettings, create_session

QNN = SessionSettings(provider="qnn", disable_cpu_fallback=True)


# --- fast: pure functions and the prompt list ---------------------------------------------------

def test_snr_db():
    reference = np.array([3.0, 4.0])
    assert snr_db(reference, reference) == float("inf")
    assert snr_db(reference, reference * 1.1) == pytest.approx(20.0)
    assert snr_db(reference, reference + np.array([0.25, 0.0])) == pytest.approx(10 * np.log10(25 / 0.0625))
    with pytest.raises(InvalidInputError):
        snr_db(reference, np.zeros(3))


def test_builtin_prompts_are_many_and_varied():
    assert len(MUSIC_PROMPTS) >= 32
    assert len(set(MUSIC_PROMPTS)) == len(MUSIC_PROMPTS)
    words = {word.strip(",").lower() for prompt in MUSIC_PROMPTS for word in prompt.split()}
    assert {"piano", "drums", "guitar", "bass", "synth", "strings", "bpm", "slow", "dark"} <= words


# --- exported models, calibration data and qnn models (built once, cached) -----------------------

@pytest.fixture(scope="session")
def artifacts() -> Path:
    return cached_artifacts("quantize-qnn")


@pytest.fixture(scope="session")
def calibration(artifacts) -> CalibrationSet:
    return CalibrationSet.load(artifacts / "calibration.npz")


def _qnn_samples(artifacts: Path, calibration: CalibrationSet, component: str) -> list:
    if component == "unet":
        return CalibrationSet.load(artifacts / "unet_qnn.npz").unet
    return calibration.for_component(component)


@pytest.mark.slow
def test_calibration_follows_guided_trajectories(calibration):
    assert len(calibration.text_encoder) == 4  # three prompts and the empty one
    assert calibration.text_encoder[-1]["input_ids"].shape == (1, 77)
    unet = calibration.unet
    assert len(unet) == 3 * 2 * 2  # prompts x captured steps x (cond, uncond)
    assert unet[0]["sample"].shape == (1, 4, 64, WIDTH // 8)
    assert unet[0]["encoder_hidden_states"].shape[:2] == (1, 77)
    assert len({float(feeds["timestep"][0]) for feeds in unet}) == 2
    uncond = [feeds["encoder_hidden_states"] for feeds in unet[1::2]]
    assert all(np.array_equal(uncond[0], other) for other in uncond)  # the empty prompt, every time
    assert not np.array_equal(unet[0]["encoder_hidden_states"], unet[1]["encoder_hidden_states"])
    assert calibration.vae_decoder[0]["latent"].shape == (1, 4, 64, WIDTH // 8)
    image = calibration.vae_encoder[0]["image"]
    assert image.shape == (1, 3, 512, WIDTH) and image.min() >= -1 and image.max() <= 1


@pytest.mark.slow
def test_calibration_set_saves_and_loads(calibration, tmp_path):
    calibration.save(tmp_path / "calibration.npz")
    loaded = CalibrationSet.load(tmp_path / "calibration.npz")
    for component in ("text_encoder", "unet", "vae_decoder", "vae_encoder"):
        original, again = calibration.for_component(component), loaded.for_component(component)
        assert len(again) == len(original)
        assert all(np.array_equal(a[k], b[k]) for a, b in zip(original, again, strict=True) for k in a)


# --- qnn: w8a16 on the HTP back end ---------------------------------------------------------------

# Measured on the tiny model (random weights) with these calibration sets: text encoder 31 dB, UNet 41 dB,
# VAE decoder 37 dB, VAE encoder 34 dB on HTP, each within 0.3 dB of ONNX Runtime's CPU running the
# same QDQ model. Real weights do better.
QNN_MIN_SNR_DB = {"text_encoder": 28.0, "unet": 35.0, "vae_decoder": 32.0, "vae_encoder": 30.0}
# The NPU against the CPU's emulation of the same Q/DQ model (the UNet: 51 dB measured).
NPU_VS_EMULATION_MIN_SNR_DB = 40.0


@pytest.mark.slow
def test_quantize_qnn_records_what_it_did_and_leaves_no_scratch_files(artifacts, calibration, tmp_path):
    samples = calibration.text_encoder
    out = tmp_path / "text_encoder.onnx"
    record = quantize_qnn(artifacts / "static" / "text_encoder.onnx", out, "text_encoder", samples)
    assert (record.scheme, record.weight_type, record.activation_type) == ("qdq_w8a16", "uint8", "uint16")
    assert record.calibration_samples == len(samples)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    # The cached models were made by the same call: their records say the same.
    records = json.loads((artifacts / "qnn" / "records.json").read_text(encoding="utf-8"))
    assert {r["scheme"] for r in records.values()} == {"qdq_w8a16"}
    assert records["unet"]["calibration_samples"] == 2 * 2 * 2


@pytest.mark.slow
@pytest.mark.qnn
# The UNet: below. The VAE decoder (~40 s on the simulator) runs on the NPU in test_qnn_bundle's end-to-end
# generation, which checks its decode against the CPU's emulation of the same Q/DQ model.
@pytest.mark.parametrize("component", ["text_encoder", "vae_encoder"])
def test_qnn_model_runs_on_htp_without_cpu_fallback(component, artifacts, calibration):
    samples = _qnn_samples(artifacts, calibration, component)
    # Every node on QNN (creation fails otherwise), and the NPU's answer close to fp32's. The compiled
    # context is kept beside the cached model (keyed by its hash): a warm run skips compiling.
    snr = component_snr_db(artifacts / "static" / f"{component}.onnx", artifacts / "qnn" / f"{component}.onnx",
                           samples[-1:], quantized_settings=QNN, cache_dir=artifacts / "htp-contexts")
    assert snr >= QNN_MIN_SNR_DB[component]


@pytest.mark.slow
@pytest.mark.qnn
def test_unet_runs_on_htp_and_its_context_cache_makes_the_second_start_fast(artifacts, tmp_path):
    """(One test, as compiling the UNet for HTP is what costs: every node on QNN, close to fp32, cached.)

    The cached context runs once (~10 s on the simulator): what it computes is the quantised model's (the
    CPU's emulation of the same Q/DQ graph) and close to fp32's."""
    import time

    samples, out = CalibrationSet.load(artifacts / "unet_qnn.npz").unet, artifacts / "qnn" / "unet.onnx"
    start = time.perf_counter()
    create_session(out, QNN, tmp_path / "cache")
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cached = create_session(out, QNN, tmp_path / "cache")
    cached_seconds = time.perf_counter() - start
    assert cached_seconds < compile_seconds / 5
    feeds = samples[-1]
    actual = cached.run(None, feeds)[0]
    emulated = create_session(out).run(None, feeds)[0]
    assert snr_db(emulated, actual) >= NPU_VS_EMULATION_MIN_SNR_DB
    expected = create_session(artifacts / "static" / "unet.onnx").run(None, feeds)[0]
    assert snr_db(expected, actual) >= QNN_MIN_SNR_DB["unet"]


def test_shared_biases_cannot_collide_with_activation_names(tmp_path):
    """onnxruntime's quantizer names its copy of a shared bias `<bias><n>` looking at initializer names
    only; torch's exporter names activations the same way (`val_11` + 9 = `val_119`, a Sigmoid's output in
    the VAE encoder). Here the copy of bias `b` would be `b0`, the first Conv's output."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), name)
               for name in ("w1", "w2")]
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1", "b"], ["b0"]), helper.make_node("Relu", ["b0"], ["r"]),
         helper.make_node("Conv", ["r", "w2", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 8, 8])], [*weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(tmp_path / "fp32.onnx"))
    samples = [{"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(4)]
    quantize_qnn(tmp_path / "fp32.onnx", tmp_path / "qnn.onnx", "vae_encoder", samples)
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", "vae_encoder", scheme="static_qdq_u8s8",
                  calibration=samples)
    for name in ("qnn.onnx", "int8.onnx"):
        onnx.checker.check_model(str(tmp_path / name), full_check=True)
        assert component_snr_db(tmp_path / "fp32.onnx", tmp_path / name, samples) > 25, name


def test_qnn_refuses_dynamic_shapes(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    onnx.save(helper.make_model(graph), str(tmp_path / "dynamic.onnx"))
    with pytest.raises(ModelBundleError, match="fixed shapes"):
        quantize_qnn(tmp_path / "dynamic.onnx", tmp_path / "out.onnx", "unet", [])


# --- int8 for the CPU -----------------------------------------------------------------------------

# 8-bit static activations on random weights: VAE encoder 14.5 dB, decoder higher.
INT8_MIN_SNR_DB = {"fp32": 200.0, "dynamic_u8_per_channel": 20.0, "dynamic_u8_matmul": 25.0,
                   "static_qdq_u8s7": 12.0, "static_qdq_u8s8": 12.0}


@pytest.mark.slow
@pytest.mark.parametrize(("component", "scheme"), [
    ("text_encoder", None), ("unet", None), ("vae_decoder", None), ("vae_encoder", None),
    ("vae_encoder", "dynamic_u8_per_channel"),
    # Static QDQ of the encoder (and of the dynamic UNet) used to write invalid models: shared-bias copies
    # named like activations (test_shared_biases_cannot_collide_with_activation_names).
    ("vae_encoder", "static_qdq_u8s8")])
def test_int8_variants_keep_quality_and_dynamic_shapes(component, scheme, artifacts, calibration, tmp_path):
    fp32 = artifacts / "dynamic" / f"{component}.onnx"
    out = tmp_path / f"{component}.onnx"
    samples = calibration.for_component(component)
    record = quantize_int8(fp32, out, component, scheme=scheme, calibration=samples)
    assert record.target == "int8"
    assert snr_db(*_run_both(fp32, out, samples[:2])) >= INT8_MIN_SNR_DB[record.scheme]
    if component != "text_encoder":  # dynamic batch and width survive quantization
        wide = {name: np.concatenate([value, value], axis=0) for name, value in samples[0].items()}
        wide = {name: np.concatenate([v, v], axis=-1) if v.ndim == 4 else v for name, v in wide.items()}
        session = create_session(out)
        (y,) = session.run(None, wide)
        assert y.shape[0] == 2 and y.shape[-1] == 2 * session.run(None, samples[0])[0].shape[-1]


@pytest.mark.slow
def test_an_int8_model_below_its_floor_is_replaced_by_the_fp32_one_and_says_why(artifacts, calibration, tmp_path):
    fp32 = artifacts / "dynamic" / "text_encoder.onnx"
    samples = calibration.for_component("text_encoder")[:2]
    kept = quantize_int8(fp32, tmp_path / "kept.onnx", "text_encoder", scored_on=samples, min_snr_db=0.0)
    assert kept.scheme == "dynamic_u8_matmul" and not kept.refused
    assert kept.snr_db == pytest.approx(snr_db(*_run_both(fp32, tmp_path / "kept.onnx", samples)), abs=0.01)
    refused = quantize_int8(fp32, tmp_path / "refused.onnx", "text_encoder", scored_on=samples,
                            min_snr_db=kept.snr_db + 1.0)
    assert refused.scheme == "fp32" and refused.snr_db is None
    assert refused.refused == (f"dynamic_u8_matmul reached {kept.snr_db:g} dB against fp32 here, below the "
                               f"{kept.snr_db + 1.0:g} dB a text_encoder needs")
    expected, actual = _run_both(fp32, tmp_path / "refused.onnx", samples)
    assert np.array_equal(expected, actual)  # the fp32 model itself


def _run_both(fp32: Path, quantized: Path, samples) -> tuple[np.ndarray, np.ndarray]:
    reference, test = create_session(fp32), create_session(quantized)
    return (np.concatenate([reference.run(None, s)[0] for s in samples]),
            np.concatenate([test.run(None, s)[0] for s in samples]))


# --- export pitfalls stay caught -----------------------------------------------------------------

@pytest.mark.slow
def test_fixed_export_has_no_qnn_blockers(artifacts):
    import onnx

    from engine.export.qnn_export_fixes import qnn_blockers

    for component in COMPONENTS:
        assert qnn_blockers(onnx.load(str(artifacts / "static" / f"{component}.onnx"))) == [], component


def _export_text_encoder(tiny_sd_dir: Path, path: Path, attention: str) -> Path:
    """The text encoder straight from torch's exporter, with none of our export fixes."""
    import torch
    from transformers import CLIPTextModel

    class Wrapper(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            return self.model(input_ids.long(), return_dict=False)[0]

    model = CLIPTextModel.from_pretrained(tiny_sd_dir / "text_encoder", attn_implementation=attention).eval()
    torch.onnx.export(Wrapper(model), (torch.zeros(1, 77, dtype=torch.int32),), str(path), dynamo=True,
                      optimize=True, opset_version=18, input_names=["input_ids"])
    return path


@pytest.mark.slow
def test_mask_clamp_changes_no_fp32_output_and_is_needed(tiny_sd_dir, calibration, tmp_path):
    """The causal mask's -3.4e38 leaves 16-bit activations no resolution (19 dB measured); clamped, the
    same calibration gives 32 dB, and fp32 outputs do not change at all."""
    import shutil

    import onnx

    from engine.export.qnn_export_fixes import clamp_mask_constants_in_file, qnn_blockers

    raw = _export_text_encoder(tiny_sd_dir, tmp_path / "raw.onnx", "eager")
    assert any("reaches -3.4e+38" in problem for problem in qnn_blockers(onnx.load(str(raw))))
    clamped = tmp_path / "text_encoder.onnx"
    shutil.copy(raw, clamped)
    assert clamp_mask_constants_in_file(clamped) >= 1
    assert qnn_blockers(onnx.load(str(clamped))) == []
    samples = calibration.text_encoder
    assert snr_db(*_run_both(raw, clamped, samples)) == float("inf")
    snrs = {}
    for name, source in (("raw", raw), ("clamped", clamped)):
        quantize_qnn(source, tmp_path / f"{name}.qnn.onnx", "text_encoder", samples)
        snrs[name] = component_snr_db(source, tmp_path / f"{name}.qnn.onnx", samples)
    assert snrs["clamped"] > snrs["raw"] + 6


@pytest.mark.slow
def test_sdpa_text_encoder_export_is_flagged(tiny_sd_dir, tmp_path):
    """torch's SDPA export adds a NaN guard (IsNaN/Where) that QNN cannot finalize (MEM_ALLOC)."""
    import onnx

    from engine.export.qnn_export_fixes import qnn_blockers

    path = _export_text_encoder(tiny_sd_dir, tmp_path / "sdpa.onnx", "sdpa")
    assert any(problem.startswith("IsNaN") for problem in qnn_blockers(onnx.load(str(path))))
