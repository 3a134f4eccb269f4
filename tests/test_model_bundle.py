"""Model bundles: conversion of the tiny riffusion-layout checkpoint, the manifest, `model check`, bad sources."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ldm_checkpoint import write_ldm_checkpoint

from engine.bundle import COMPONENTS, SCHEMA_VERSION, open_bundle
from engine.bundle.manifest import cpu_platform
from engine.errors import InvalidInputError, ModelBundleError
from engine.sessions import SessionSettings
from engine.tokenizer import PromptTokenizer

pytestmark = pytest.mark.slow

PROMPTS = ["a jazz saxophone solo", "Funky SLAP bass, 100bpm!!", "café del mar ✨ chill", "",
           "word " * 120, "church bells on sunday, reverb, 80 bpm"]


def test_manifest_is_complete_and_every_hash_matches(fp32_bundle):
    manifest = json.loads((fp32_bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["precision"] == "fp32"
    assert manifest["latent_scale_factor"] == pytest.approx(0.18215)
    assert manifest["scheduler"]["_class_name"] == "PNDMScheduler"
    assert manifest["scheduler"]["steps_offset"] == 1
    assert manifest["onnxruntime_version"] and manifest["source_revision"].startswith("local-")
    on_disk = {p.relative_to(fp32_bundle).as_posix() for p in fp32_bundle.rglob("*")
               if p.is_file() and p.parent.name != "cache" and p.name != "manifest.json"}
    assert {entry["path"] for entry in manifest["files"]} == on_disk
    for entry in manifest["files"]:
        data = (fp32_bundle / entry["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
    unet = manifest["components"]["unet"]
    assert [t["name"] for t in unet["inputs"]] == ["sample", "timestep", "encoder_hidden_states"]
    assert unet["inputs"][0]["shape"][:3] == ["batch", 4, 64]
    assert manifest["components"]["text_encoder"]["inputs"][0]["dtype"] == "int32"
    for component in COMPONENTS:
        assert manifest["components"][component]["validation"]["max_abs_error_vs_torch"] < 1e-4


def test_model_check_passes_and_reports_every_model(run_cli, fp32_bundle):
    result = run_cli("model", "check", fp32_bundle, "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    assert "OK: every file matches" in result.stdout
    for component in COMPONENTS:
        assert component in result.stdout
    assert "every model runs" in result.stdout


def test_model_check_of_some_models_runs_those_and_still_verifies_every_file(run_cli, fp32_bundle, tmp_path):
    result = run_cli("model", "check", fp32_bundle, "--models", "vae_decoder,text_encoder")
    assert result.returncode == 0, result.stderr
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.split()[:1] in (["text_encoder"],
            ["unet"], ["vae_decoder"], ["vae_encoder"])]
    assert rows == ["text_encoder", "vae_decoder"]  # in pipeline order, whatever order they were asked in
    assert "OK: every file matches the manifest and text_encoder, vae_decoder run." in result.stdout
    refused = run_cli("model", "check", fp32_bundle, "--models", "unet,vae")
    assert refused.returncode == InvalidInputError.exit_code
    lines = [line for line in refused.stderr.splitlines() if line.startswith("riffstudio:")]
    assert len(lines) == 1 and "unknown model vae" in lines[0] and "vae_decoder" in lines[0], refused.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(fp32_bundle, damaged)
    with (damaged / "vae_encoder.onnx").open("ab") as file:
        file.write(b"\0")
    assert run_cli("model", "check", damaged, "--models", "text_encoder").returncode == ModelBundleError.exit_code


def test_onnx_matches_torch_on_fresh_inputs(fp32_bundle, tiny_sd_dir):
    import onnxruntime as ort
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    def run(component, **feeds):
        session = ort.InferenceSession(str(fp32_bundle / f"{component}.onnx"), providers=["CPUExecutionProvider"])
        return session.run(None, {k: v.numpy() if hasattr(v, "numpy") else v for k, v in feeds.items()})[0]

    generator = torch.Generator().manual_seed(7)
    ids = PromptTokenizer(fp32_bundle / "tokenizer.json").encode(PROMPTS[:2])
    text = CLIPTextModel.from_pretrained(tiny_sd_dir / "text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(tiny_sd_dir / "unet").eval()
    vae = AutoencoderKL.from_pretrained(tiny_sd_dir / "vae").eval()
    with torch.no_grad():
        context = text(torch.from_numpy(ids).long()).last_hidden_state
        assert np.abs(run("text_encoder", input_ids=ids) - context.numpy()).max() < 1e-4
        sample = torch.randn(2, 4, 64, 65, generator=generator)  # 520 px: latent width that does not halve
        timestep = torch.tensor([981.0, 1.0])
        expected = unet(sample, timestep, context).sample.numpy()
        got = run("unet", sample=sample, timestep=timestep, encoder_hidden_states=context)
        assert np.abs(got - expected).max() < 1e-4
        latent = torch.randn(1, 4, 64, 64, generator=generator)
        assert np.abs(run("vae_decoder", latent=latent) - vae.decode(latent).sample.numpy()).max() < 1e-4
        image = torch.rand(1, 3, 512, 520, generator=generator) * 2 - 1
        moments = vae.quant_conv(vae.encoder(image)).numpy()
        assert np.abs(run("vae_encoder", image=image) - moments).max() < 1e-4


def test_tokenizer_file_matches_clip_tokenizer(fp32_bundle, tiny_sd_dir):
    from transformers import CLIPTokenizer

    reference = CLIPTokenizer.from_pretrained(tiny_sd_dir / "tokenizer")
    ours = PromptTokenizer(fp32_bundle / "tokenizer.json")
    expected = reference(PROMPTS, padding="max_length", truncation=True, max_length=77).input_ids
    assert ours.encode(PROMPTS).tolist() == expected
    assert ours.encode(["a jazz saxophone solo"])[0, :6].tolist() == [49406, 320, 4528, 32296, 5797, 49407]
    assert ours.is_truncated(PROMPTS[4]) and not ours.is_truncated(PROMPTS[0])


@pytest.fixture
def bad_sources(tmp_path, tiny_sd_dir):
    """Broken checkpoints of each kind a producer meets: (source, words the error must contain)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    no_unet = tmp_path / "no-unet"
    shutil.copytree(tiny_sd_dir, no_unet)
    shutil.rmtree(no_unet / "unet")
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_sd_dir, truncated)
    weights = truncated / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    not_a_model = tmp_path / "loop.wav"
    not_a_model.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    single = write_ldm_checkpoint(tiny_sd_dir, tmp_path / "tiny.safetensors")
    truncated_file = tmp_path / "truncated.safetensors"
    truncated_file.write_bytes(single.read_bytes()[: single.stat().st_size // 2])
    garbage_ckpt = tmp_path / "model.ckpt"
    garbage_ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    return {"empty folder": (empty, "empty"), "missing unet": (no_unet, "missing unet/"),
            "truncated weights": (truncated, "cannot load unet/"), "not a model": (not_a_model, "not a model"),
            "truncated single file": (truncated_file, "damaged"), "garbage .ckpt": (garbage_ckpt, "damaged"),
            # The tiny weights do not fit the default (SD 1.5) architecture.
            "single file of another architecture": (single, "--config")}


@pytest.mark.parametrize("case", ["empty folder", "missing unet", "truncated weights", "not a model",
                                  "truncated single file", "garbage .ckpt", "single file of another architecture"])
def test_bad_source_gives_one_line_error_and_no_bundle(capsys, tmp_path, bad_sources, case):
    """The CLI's entry point in this process (a fresh interpreter spent 8 s importing torch per case): an
    exception escaping it would be the traceback a user sees, and fails the test as an error."""
    from ui.cli.main import main

    source, words = bad_sources[case]
    out = tmp_path / "out" / "bundle"
    code = main(["model", "convert", str(source), "--out", str(out)])
    stderr = capsys.readouterr().err
    assert code == ModelBundleError.exit_code
    error_lines = [line for line in stderr.splitlines() if line.startswith("riffstudio:")]
    assert len(error_lines) == 1 and words in error_lines[0], stderr
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))


def test_hub_id_offline_says_so(run_cli, tmp_path):
    result = run_cli("model", "convert", "riffusion/riffusion-model-v1", "--out", tmp_path / "b",
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == ModelBundleError.exit_code
    assert "no connection to Hugging Face" in result.stderr
    assert not (tmp_path / "b").exists()


@pytest.fixture
def bundle_copy(tmp_path, fp32_bundle):
    copy = tmp_path / "bundle"
    shutil.copytree(fp32_bundle, copy, ignore=shutil.ignore_patterns("cache"))
    return copy


def edit_manifest(bundle, **changes) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(changes)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_altered_file_is_named(run_cli, bundle_copy):
    path = bundle_copy / "vae_decoder.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run_cli("model", "check", bundle_copy)
    assert result.returncode == ModelBundleError.exit_code
    assert "vae_decoder.onnx was altered" in result.stderr


@pytest.mark.parametrize("engine", [False, True])
def test_a_flipped_byte_stops_generation_in_one_line(run_cli, bundle_copy, tmp_path, engine):
    """`generate` checked sizes only: a flipped byte in the UNet's weights ran silently. Now every file a
    session opens is hashed at its first load in the process."""
    data = next(bundle_copy.glob("unet.onnx*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    extra = ("--engine",) if engine else ()
    result = run_cli("generate", "x", "--model", bundle_copy, "--steps", "2", "--width", "64", "--out",
                     tmp_path / "a.wav", *extra, env={"XDG_RUNTIME_DIR": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == ModelBundleError.exit_code, result.stderr
    assert f"{data.name} was altered" in lines[-1] and lines[-1].startswith("riffstudio: "), result.stderr
    assert not (tmp_path / "a.wav").exists()
    if engine:
        run_cli("engine", "stop", env={"XDG_RUNTIME_DIR": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)})


@pytest.mark.parametrize("where", ["../evil_unet.onnx", "/tmp/evil_unet.onnx", "sub/../../evil_unet.onnx"])
def test_a_manifest_path_outside_the_bundle_is_refused(bundle_copy, where):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["components"]["unet"]["file"] = where
    manifest["files"].append({"path": where, "sha256": "0" * 64, "size": 1})
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelBundleError, match="outside the bundle"):
        open_bundle(bundle_copy)


def test_a_bundle_file_that_is_a_link_is_refused(bundle_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere.onnx"
    (bundle_copy / "vae_decoder.onnx").rename(elsewhere)
    (bundle_copy / "vae_decoder.onnx").symlink_to(elsewhere)
    with pytest.raises(ModelBundleError, match="symbolic link"):
        open_bundle(bundle_copy)


def test_a_warm_process_hashes_each_file_once_and_again_when_it_changes(bundle_copy, monkeypatch):
    import engine.bundle.bundle as bundle_module

    hashed: list[str] = []
    real = bundle_module.file_sha256
    monkeypatch.setattr(bundle_module, "file_sha256", lambda path: hashed.append(Path(path).name) or real(path))
    bundle = open_bundle(bundle_copy)
    bundle.checked_file("vae_decoder.onnx")
    bundle.checked_file("vae_decoder.onnx")
    assert hashed.count("vae_decoder.onnx") == 1
    path = bundle_copy / "vae_decoder.onnx"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelBundleError, match=r"vae_decoder\.onnx was altered"):
        bundle.checked_file("vae_decoder.onnx")


def test_missing_file_is_named(bundle_copy):
    (bundle_copy / "unet.onnx").unlink()
    with pytest.raises(ModelBundleError, match=r"unet\.onnx is missing"):
        open_bundle(bundle_copy)


def test_wrong_schema_version_says_what_to_do(bundle_copy):
    edit_manifest(bundle_copy, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ModelBundleError, match="update riffstudio"):
        open_bundle(bundle_copy)


def test_cpu_session_options_come_from_the_manifest_for_this_platform(run_cli, bundle_copy, int8_bundle):
    int8 = open_bundle(int8_bundle).manifest
    arm = int8.session_options("cpu", "ARM64")
    assert arm == int8.session_options("cpu", "aarch64") == {"arm64_bf16_fastmath": True}
    assert int8.session_options("cpu", "AMD64") == int8.session_options("cpu", "x86_64") == {}
    assert open_bundle(bundle_copy).manifest.session_options("cpu", "arm64") == {}  # fp32 is the exact reference
    edit_manifest(bundle_copy, runtime={"cpu": {cpu_platform(): {"intra_op_threads": 1}}})
    bundle = open_bundle(bundle_copy)
    assert bundle.session_settings(SessionSettings()).intra_op_threads == 1
    assert bundle.session_settings(SessionSettings(provider="qnn")).intra_op_threads == 0  # CPU options only
    assert bundle.session_settings(SessionSettings(), {"intra_op_threads": 2}).intra_op_threads == 2  # user wins
    assert run_cli("model", "check", bundle_copy).returncode == 0


def test_npu_session_options_come_from_the_bundle_and_the_user(qnn_bundle):
    bundle = open_bundle(qnn_bundle)
    npu = bundle.session_settings(SessionSettings(provider="qnn"))
    assert (npu.htp_performance_mode, npu.context_cache) == ("burst", True)
    chosen = bundle.session_settings(SessionSettings(provider="qnn"), {"htp_performance_mode": "power_saver"})
    assert chosen.htp_performance_mode == "power_saver"
    assert bundle.session_settings(SessionSettings(provider="cpu")) == SessionSettings(provider="cpu")


def test_unknown_npu_mode_is_one_line(run_cli, fp32_bundle, tmp_path):
    result = run_cli("generate", "a jazz saxophone solo", "--model", fp32_bundle, "--out", tmp_path / "loop.wav",
                     "--steps", "2", "--width", "64", "--npu-mode", "turbo")
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("riffstudio:")] == [
        line for line in result.stderr.splitlines() if "turbo" in line and "power_saver" in line]
    assert not (tmp_path / "loop.wav").exists()


def test_unknown_cpu_session_option_says_what_to_do(run_cli, bundle_copy, tmp_path):
    edit_manifest(bundle_copy, runtime={"cpu": {cpu_platform(): {"turbo": True}}})
    result = run_cli("generate", "a jazz saxophone solo", "--model", bundle_copy, "--out", tmp_path / "loop.wav",
                     "--steps", "2", "--width", "64")
    assert result.returncode == ModelBundleError.exit_code
    assert "asks for session options this riffstudio does not know" in result.stderr and "turbo" in result.stderr
    assert not (tmp_path / "loop.wav").exists()


def test_bundle_of_another_precision_is_refused(run_cli, bundle_copy):
    result = run_cli("model", "check", bundle_copy, "--precision", "qnn")
    assert result.returncode == ModelBundleError.exit_code
    assert "is a fp32 bundle, but qnn was asked for" in result.stderr


def test_convert_refuses_to_overwrite_a_folder_that_is_not_a_bundle(run_cli, tmp_path, tiny_sd_dir):
    out = tmp_path / "my-music"
    out.mkdir()
    (out / "song.wav").write_bytes(b"keep me")
    result = run_cli("model", "convert", tiny_sd_dir, "--out", out)
    assert result.returncode == 2
    assert "is not a model bundle" in result.stderr
    assert (out / "song.wav").read_bytes() == b"keep me"


def test_int8_bundle_records_its_schemes_and_quality_and_passes_check(run_cli, int8_bundle):
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    components = manifest["components"]
    assert components["unet"]["quantization"] == "dynamic_u8_per_channel"
    assert components["vae_decoder"]["quantization"] == "static_qdq_u8s7"
    assert components["text_encoder"]["quantization"] == "dynamic_u8_matmul"
    assert components["vae_encoder"]["quantization"] == "fp32"
    for name in ("unet", "vae_decoder"):
        assert components[name]["validation"]["snr_db_vs_fp32"] > 15, name
    assert components["text_encoder"]["validation"]["snr_db_vs_fp32"] >= 25  # its floor, else it is fp32
    assert "int8_refused" not in components["text_encoder"]["validation"]
    assert components["unet"]["inputs"][0]["shape"][3] == "latent_width"  # dynamic width survives quantisation
    result = run_cli("model", "check", int8_bundle, "--precision", "int8")
    assert result.returncode == 0, result.stderr
    assert "dynamic_u8_per_channel" in result.stdout


def test_model_check_says_why_a_model_stayed_fp32():
    from engine.bundle.check import CheckReport, ComponentCheck

    why = "dynamic_u8_matmul reached 21.5 dB against fp32 here, below the 25 dB a text_encoder needs"
    component = ComponentCheck("text_encoder", "text_encoder.onnx", 470.0, "fp32", 0.9, 0.1, (1, 77, 768),
                               (-3.0, 3.0), {"max_abs_error_vs_torch": 3.6e-06, "int8_refused": why})
    report = CheckReport(path=Path("bundle"), precision="int8", provider="cpu", source="riffusion",
                         source_revision="main", onnxruntime_version="1.23", components=(component,))
    assert f"max_abs_error vs torch 3.6e-06, int8 refused: {why}" in report.render()


def test_fp32_and_int8_bundles_share_one_export_per_model(fp32_bundle, int8_bundle):
    from conftest import REPO

    entries = [e for e in (REPO / ".cache" / "test-exports").glob("unet-*") if e.is_dir()]  # not the locks
    matching = [e for e in entries if (e / "unet.onnx").read_bytes() == (fp32_bundle / "unet.onnx").read_bytes()]
    assert len(matching) == 1
    record = json.loads((matching[0] / "export.json").read_text())
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    assert manifest["components"]["unet"]["validation"]["max_abs_error_vs_torch"] == record["max_abs_error_vs_torch"]


def test_small_models_export_beside_the_unet_only_with_a_second_core_and_the_memory():
    from engine.export.convert import EXPORT_PEAK_PER_MODULE_BYTE, export_workers

    sizes = {"text_encoder": 492_000_000, "unet": 3_438_000_000, "vae_decoder": 198_000_000,
             "vae_encoder": 137_000_000}  # SD 1.5, fp32
    both = EXPORT_PEAK_PER_MODULE_BYTE * (sizes["unet"] + sizes["text_encoder"])
    assert export_workers(sizes, both, cpus=2) == 2
    assert export_workers(sizes, both - 1, cpus=2) == 1
    assert export_workers(sizes, 10 * both, cpus=1) == 1
    assert export_workers(sizes, None, cpus=8) == 1
