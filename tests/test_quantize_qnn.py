"""Quantization (int8 for the CPU, w8a16 QDQ for QNN) of the tiny checkpoint's real exports, calibrated on
real trajectories, checked against fp32 by SNR; the qnn models run on QNN's HTP back end (the
simulator here) with CPU fallback disabled; and the export pitfalls stay caught.

Shapes are small because the HTP simulator is slow (the tiny UNet takes 18 s per call at 64 x 64
latents, the VAE decoder 174 s at 512 x 512): width 64 px (latent 64 x 8) for the text encoder and
the VAE, but 256 px for the UNet on QNN: at 64 and 128 px its innermost feature maps are 1-2
columns wide and HTP's answer is wrong (0 dB and 24 dB, against 41 dB at 256 and 512 px; ONNX
Runtime's CPU runs the same QDQ model at 41 dB). See docs/qnn-notes.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import InvalidInputError, ModelBundleError
from engine.export.calibration import MUSIC_PROMPTS, CalibrationSet, CalibrationSettings
from engine.export.quantize import component_snr_db, quantize_int8, quantize_qnn, snr_db
from engine.sessions import SessionSettings, create_session

WIDTH = 64
UNET_QNN_WIDTH = 256
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


# --- exported models and calibration data (module fixtures: torch runs once) ----------------------

@pytest.fixture(scope="module")
def checkpoint(tiny_sd_dir):
    from engine.export.source import load_checkpoint

    return load_checkpoint(str(tiny_sd_dir))


@pytest.fixture(scope="module")
def calibration(checkpoint) -> CalibrationSet:
    from engine.export.calibration import capture_calibration_set

    settings = CalibrationSettings(prompts=MUSIC_PROMPTS[:3], steps=4, captures=2, width=WIDTH, vae_samples=2)
    return capture_calibration_set(checkpoint, settings)


@pytest.fixture(scope="module")
def fp32_static(checkpoint, tmp_path_factory) -> dict[str, Path]:
    """Fixed-shape fp32 exports (batch 1, width 64) with the export-side QNN fixes applied."""
    from engine.export.onnx_export import export_component
    from engine.export.qnn_export_fixes import clamp_mask_constants_in_file

    folder = tmp_path_factory.mktemp("fp32")
    paths = {}
    for component in ("text_encoder", "unet", "vae_decoder", "vae_encoder"):
        paths[component] = folder / f"{component}.onnx"
        export_component(checkpoint, component, paths[component], fixed_width=WIDTH, check=False)
    clamp_mask_constants_in_file(paths["text_encoder"])
    return paths


@pytest.fixture(scope="module")
def unet_qnn(checkpoint, tmp_path_factory) -> tuple[Path, list]:
    """The UNet at 256 px (fp32, fixed shapes) and its calibration feeds."""
    from engine.export.calibration import capture_calibration_set
    from engine.export.onnx_export import export_component

    path = tmp_path_factory.mktemp("unet256") / "unet.onnx"
    export_component(checkpoint, "unet", path, fixed_width=UNET_QNN_WIDTH, check=False)
    settings = CalibrationSettings(prompts=MUSIC_PROMPTS[3:5], steps=3, captures=2, width=UNET_QNN_WIDTH,
                                   vae_samples=0)
    return path, capture_calibration_set(checkpoint, settings).unet


@pytest.fixture(scope="module")
def unet_qnn_quantized(unet_qnn, tmp_path_factory) -> Path:
    fp32, samples = unet_qnn
    out = tmp_path_factory.mktemp("unet_qnn") / "unet.onnx"
    quantize_qnn(fp32, out, "unet", samples)
    return out


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

# Measured on the tiny model (random weights) with these calibration sets; real weights do better.
QNN_MIN_SNR_DB = {"text_encoder": 25.0, "unet": 25.0, "vae_decoder": 25.0, "vae_encoder": 25.0}


@pytest.mark.slow
@pytest.mark.qnn
@pytest.mark.parametrize("component", [
    "text_encoder", "unet",
    pytest.param("vae_decoder", marks=pytest.mark.xfail(strict=True, reason="HTP gives 12 dB at width 64 "
                                                         "(CPU QDQ fine); open, see docs/qnn-notes.md")),
    pytest.param("vae_encoder", marks=pytest.mark.xfail(strict=True, reason="quantized encoder fails ORT "
                                                         "shape inference (Mul: incompatible dimensions)"))])
def test_qnn_model_runs_on_htp_without_cpu_fallback(component, request, tmp_path):
    if component == "unet":
        fp32, samples = request.getfixturevalue("unet_qnn")
    else:
        fp32 = request.getfixturevalue("fp32_static")[component]
        samples = request.getfixturevalue("calibration").for_component(component)
    out = tmp_path / f"{component}.onnx"
    record = quantize_qnn(fp32, out, component, samples)  # (the UNet again: checks the record and the files)
    assert (record.scheme, record.calibration_samples) == ("qdq_w8a16", len(samples))
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no scratch files left behind
    # Every node on QNN (creation fails otherwise), and the NPU's answer close to fp32's.
    snr = component_snr_db(fp32, out, samples[-1:], quantized_settings=QNN)
    assert snr >= QNN_MIN_SNR_DB[component]


@pytest.mark.slow
@pytest.mark.qnn
def test_unet_context_cache_makes_the_second_start_fast(unet_qnn, unet_qnn_quantized, tmp_path):
    import time

    samples, out = unet_qnn[1], unet_qnn_quantized
    start = time.perf_counter()
    first = create_session(out, QNN, tmp_path / "cache")
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    second = create_session(out, QNN, tmp_path / "cache")
    cached_seconds = time.perf_counter() - start
    feeds = samples[0]
    np.testing.assert_array_equal(second.run(None, feeds)[0], first.run(None, feeds)[0])
    assert cached_seconds < compile_seconds / 5


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

INT8_MIN_SNR_DB = {"fp32": 200.0, "dynamic_u8_per_channel": 20.0, "static_qdq_u8s8": 15.0}


@pytest.mark.slow
@pytest.mark.parametrize(("component", "scheme"), [
    # (static QDQ of the dynamic-shape UNet writes an invalid model, duplicate tensor name: docs/qnn-notes.md;
    # not tested here, it costs 100 s to show)
    ("text_encoder", None), ("unet", None), ("vae_decoder", None), ("vae_encoder", None)])
def test_int8_variants_keep_quality_and_dynamic_shapes(component, scheme, checkpoint, calibration, tmp_path):
    from engine.export.onnx_export import export_component

    fp32 = tmp_path / "fp32" / f"{component}.onnx"
    fp32.parent.mkdir()
    export_component(checkpoint, component, fp32, fixed_width=None, check=False)
    out = tmp_path / f"{component}.onnx"
    samples = calibration.for_component(component)
    record = quantize_int8(fp32, out, component, scheme=scheme, calibration=samples)
    assert record.target == "int8"
    assert snr_db(*_run_both(fp32, out, samples[:2])) >= INT8_MIN_SNR_DB[record.scheme]
    if component != "text_encoder":  # dynamic batch and width survive quantization
        wide = {name: np.concatenate([value, value], axis=0) for name, value in samples[0].items()}
        wide = {name: np.concatenate([v, v], axis=-1) if v.ndim == 4 else v for name, v in wide.items()}
        (y,) = create_session(out).run(None, wide)
        assert y.shape[0] == 2 and y.shape[-1] == 2 * create_session(out).run(None, samples[0])[0].shape[-1]


def _run_both(fp32: Path, quantized: Path, samples) -> tuple[np.ndarray, np.ndarray]:
    reference, test = create_session(fp32), create_session(quantized)
    return (np.concatenate([reference.run(None, s)[0] for s in samples]),
            np.concatenate([test.run(None, s)[0] for s in samples]))


# --- export pitfalls stay caught -----------------------------------------------------------------

@pytest.mark.slow
def test_fixed_export_has_no_qnn_blockers(fp32_static):
    import onnx

    from engine.export.qnn_export_fixes import qnn_blockers

    for component, path in fp32_static.items():
        assert qnn_blockers(onnx.load(str(path))) == [], component


@pytest.mark.slow
def test_mask_clamp_changes_no_fp32_output_and_is_needed(checkpoint, calibration, tmp_path):
    """The causal mask's -3.4e38 leaves 16-bit activations no resolution (19 dB measured); clamped, the
    same calibration gives 32 dB, and fp32 outputs do not change at all."""
    import shutil

    import onnx

    from engine.export.onnx_export import export_component
    from engine.export.qnn_export_fixes import clamp_mask_constants_in_file, qnn_blockers

    raw = tmp_path / "raw" / "text_encoder.onnx"
    raw.parent.mkdir()
    export_component(checkpoint, "text_encoder", raw, fixed_width=WIDTH, check=False)
    assert any("reaches -3.4e+38" in problem for problem in qnn_blockers(onnx.load(str(raw))))
    clamped = tmp_path / "text_encoder.onnx"
    shutil.copy(raw, clamped)
    assert clamp_mask_constants_in_file(clamped) >= 1
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
    import torch
    from transformers import CLIPTextModel

    from engine.export.qnn_export_fixes import qnn_blockers

    class Wrapper(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            return self.model(input_ids.long(), return_dict=False)[0]

    model = CLIPTextModel.from_pretrained(tiny_sd_dir / "text_encoder", attn_implementation="sdpa").eval()
    path = tmp_path / "sdpa.onnx"
    torch.onnx.export(Wrapper(model), (torch.zeros(1, 77, dtype=torch.int32),), str(path), dynamo=True,
                      optimize=True, opset_version=18, input_names=["input_ids"])
    assert any(problem.startswith("IsNaN") for problem in qnn_blockers(onnx.load(str(path))))
