"""The int8 bundle keeps its accuracy on every x86 CPU, and `model check` says so when it does not.

Each test runs natively and on an emulated AVX2-only CPU (tests/cpu_emulation.py): ONNX Runtime's
u8 x s8 kernels saturate there, which took the int8 VAE decoder from 13-20 dB to 4-7 dB.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cpu_emulation import QEMU, cpu_kind_params, host_is_avx2_only, run_python_on

from engine.bundle import open_bundle
from engine.bundle.files import file_entries
from engine.bundle.manifest import TensorSpec
from engine.bundle.quantize import quantize_int8
from engine.bundle.reference import snr_db
from engine.generation.pipeline import LoopGenerator
from engine.generation.settings import GenerationSettings

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ("funky slap bass, 100 bpm", "ambient synth pads, slow, dreamy", "techno kick and hi-hats, 128 bpm")
WIDTH = 64  # px: what runs under the emulator must stay small
QUANTISED = ("unet", "vae_decoder")  # the int8 bundle's quantised models: what differs between CPUs
# Under the emulator only the static u8 x s8 VAE decoder: the dynamic UNet's u8 x u8 kernels have no 16-bit
# pair sums to saturate (ONNX Runtime's AVX2 U8U8 path), its check natively stays, and it costs ~35 s emulated.
CHECKED_ON = {"native": QUANTISED, "avx2-only": ("vae_decoder",)}


def run_model(cpu: str, model: Path, inputs: Path, outputs: Path, timeout: float = 300) -> None:
    """Run `model` on every array of the .npz `inputs` (its one input each) on `cpu`; save the outputs."""
    script = (
        "import sys, numpy as np, onnxruntime as ort\n"
        "session = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "name = session.get_inputs()[0].name\n"
        "with np.load(sys.argv[2]) as feeds:\n"
        "    np.savez(sys.argv[3], **{k: session.run(None, {name: feeds[k]})[0] for k in feeds.files})\n")
    result = run_python_on(cpu, "-c", script, str(model), str(inputs), str(outputs), timeout=timeout)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def final_latents(fp32_bundle, tmp_path_factory) -> Path:
    """The VAE decoder's inputs at the end of real generations (fp32 bundle, the default sampler)."""
    generator = LoopGenerator(open_bundle(fp32_bundle))
    scale = np.float32(generator.manifest.latent_scale_factor)
    latents = {f"{index}": (generator.generate(GenerationSettings(prompt=prompt, seed=index, width=WIDTH, steps=10))
                            .latents / scale).astype(np.float32)
               for index, prompt in enumerate(PROMPTS)}
    path = tmp_path_factory.mktemp("latents") / "latents.npz"
    np.savez(path, **latents)
    return path


def saturation_probe(path: Path) -> dict[str, np.ndarray]:
    """A 1x1 Conv whose every product is as large as 8 bits allow (input at its top code, weights at their
    largest magnitude, all one sign): the worst case for 16-bit pair sums. Returns its calibration feed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    channels = 64
    weights = numpy_helper.from_array(np.full((channels, channels, 1, 1), 0.05, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["latent", "w"], ["image"])], "probe",
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, [1, channels, 4, 4])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, 4, 4])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    feed = np.full((1, channels, 4, 4), 2.0, np.float32)
    feed[..., 0, 0] = 0.0  # the range starts at 0: 2.0 is the top u8 code
    return {"latent": feed}


@pytest.mark.parametrize("cpu", cpu_kind_params())
def test_static_int8_cannot_saturate_on_any_cpu(cpu, tmp_path):
    feeds = saturation_probe(tmp_path / "probe.onnx")
    quantize_int8(tmp_path / "probe.onnx", tmp_path / "int8.onnx", "vae_decoder", calibration=[feeds])
    np.savez(tmp_path / "in.npz", probe=feeds["latent"])
    run_model("native", tmp_path / "probe.onnx", tmp_path / "in.npz", tmp_path / "expected.npz")
    run_model(cpu, tmp_path / "int8.onnx", tmp_path / "in.npz", tmp_path / "actual.npz")
    expected, actual = np.load(tmp_path / "expected.npz")["probe"], np.load(tmp_path / "actual.npz")["probe"]
    # Saturated pair sums come out near half the true value (3.2 instead of 6.4).
    np.testing.assert_allclose(actual, expected, rtol=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("cpu", cpu_kind_params())
def test_int8_vae_decoder_keeps_15_db_on_final_latents_of_real_generations(cpu, int8_bundle, fp32_bundle,
                                                                          final_latents, tmp_path):
    run_model("native", fp32_bundle / "vae_decoder.onnx", final_latents, tmp_path / "fp32.npz")
    run_model(cpu, int8_bundle / "vae_decoder.onnx", final_latents, tmp_path / "int8.npz")
    with np.load(tmp_path / "fp32.npz") as expected, np.load(tmp_path / "int8.npz") as actual:
        snr = snr_db(np.stack([expected[k] for k in expected.files]), np.stack([actual[k] for k in expected.files]))
    assert snr >= 15.0, f"int8 VAE decoder {snr:.1f} dB against fp32 on {cpu}"


@pytest.mark.slow
@pytest.mark.parametrize("cpu", cpu_kind_params())
def test_model_check_passes_on_every_cpu_and_reports_the_loss_here(cpu, int8_bundle):
    # The quantised models only: the fp32 VAE encoder alone takes over a minute under the emulator.
    models = CHECKED_ON[cpu]
    result = run_python_on(cpu, "-m", "ui.cli.main", "model", "check", str(int8_bundle), "--models",
                           ",".join(models), timeout=600, cwd=str(REPO))
    assert result.returncode == 0, result.stderr
    assert "this CPU" in result.stdout and f"{', '.join(models)} run" in result.stdout
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    for name in QUANTISED:
        assert (int8_bundle / manifest["components"][name]["reference"]).is_file(), name
    assert result.stdout.count(" dB") >= len(models)  # the SNR here of each quantised model checked


def bundle_with_vae_decoder_scheme(int8_bundle: Path, fp32_bundle: Path, scheme: str, out: Path) -> Path:
    """A copy of the int8 bundle whose VAE decoder is quantised with `scheme`, recorded as convert on a VNNI
    machine would: calibrated on the bundle's own reference inputs (real final latents) and scored with
    exact int8 arithmetic (the QDQ graph run unfused: dequantised weights in float Convs, which is what
    VNNI's 32-bit sums compute), so the record is a VNNI machine's on every host, AVX2-only ones too."""
    import onnxruntime as ort

    from engine.bundle.quantize import build_reference
    from engine.bundle.reference import read_reference, run_feeds

    shutil.copytree(int8_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    spec = manifest["components"]["vae_decoder"]
    samples = list(read_reference(out / spec["reference"]).feeds)
    quantize_int8(fp32_bundle / "vae_decoder.onnx", out / "vae_decoder.onnx", "vae_decoder", scheme=scheme,
                  calibration=samples)
    inputs = tuple(TensorSpec.from_dict(t) for t in spec["inputs"])
    reference, _ = build_reference(fp32_bundle / "vae_decoder.onnx", out / "vae_decoder.onnx", samples, inputs)
    exact = ort.SessionOptions()
    exact.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(out / "vae_decoder.onnx"), exact, providers=["CPUExecutionProvider"])
    snr = snr_db(reference.expected, run_feeds(session, reference.feeds))
    spec["quantization"] = scheme
    spec["validation"]["reference_snr_db"] = round(snr, 2)
    manifest["files"] = [{"path": e.path, "sha256": e.sha256, "size": e.size}
                         for e in file_entries(out) if e.path != "manifest.json"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.mark.slow
def test_model_check_fails_in_one_line_where_full_range_weights_saturate(int8_bundle, fp32_bundle, tmp_path):
    """The bug as a producer met it: a bundle made and validated on a VNNI machine, run on an AVX2-only
    laptop. (On an AVX2-only host the native run is that laptop.)"""
    if QEMU is None and not host_is_avx2_only():
        pytest.skip("needs qemu-user (apt-get install qemu-user) to emulate an AVX2-only CPU")
    bundle = bundle_with_vae_decoder_scheme(int8_bundle, fp32_bundle, "static_qdq_u8s8", tmp_path / "old")
    result = run_python_on("avx2-only", "-m", "ui.cli.main", "model", "check", str(bundle), "--models",
                           "vae_decoder", timeout=600, cwd=str(REPO))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]  # after the progress lines
    assert message.startswith("riffstudio: the int8 VAE decoder loses "), message
    assert "dB on this CPU" in message and "re-convert" in message


def test_model_check_fails_when_a_model_scores_below_its_conversion(run_cli, int8_bundle, tmp_path):
    """Whatever the cause (another CPU, another ONNX Runtime), a quantised model that scores more than
    3 dB below what it scored at conversion fails the check."""
    bundle = tmp_path / "bundle"
    shutil.copytree(int8_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["components"]["unet"]["validation"]["reference_snr_db"] += 10.0
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli("model", "check", bundle)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("riffstudio: the int8 UNet loses ")
