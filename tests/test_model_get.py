"""`riffstudio model get`: a bundle from the Hub (a local stand-in, tests/fake_hub.py) or a folder, without torch.

The CLI runs in fresh interpreters as a producer runs it, against a real HTTP server answering the Hub's
endpoints and serving the tiny random-weight model in riffusion-model-v1's layout. Its templates are the
tiny architecture's, made by the export extra from that checkpoint (tests/conftest.py `cached_templates`);
the map is proved by pouring another checkpoint's random weights and comparing with torch on them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fake_hub import FakeHub, FakeRepo

from engine.sessions import SessionSettings, create_session

REPO_ID = "riffusion/riffusion-model-v1"
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def user_dirs(tmp_path: Path, tiny_templates: Path) -> dict[str, str]:
    """The child's user folders in tmp_path, and the shared template cache of the tiny architecture."""
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "HF_HOME": str(tmp_path / "hf"), "RIFFSTUDIO_TEMPLATE_CACHE": str(tiny_templates)}


@pytest.fixture
def hub(tiny_sd_dir: Path):
    with FakeHub([FakeRepo(REPO_ID, tiny_sd_dir)]) as server:
        yield server


def get(run_cli, env: dict[str, str], *args: str, timeout: float = 300):
    return run_cli("model", "get", *args, env=env, timeout=timeout)


def one_line(result) -> str:
    """The failure a producer sees: one `riffstudio:` line, the last on stderr (after any progress lines), no
    traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout
    assert lines and lines[-1].startswith("riffstudio: "), result.stderr
    assert sum(line.startswith("riffstudio: ") for line in lines) == 1 and "Traceback" not in result.stderr
    return lines[-1]


def outputs(bundle: Path, component: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return create_session(bundle / f"{component}.onnx", SessionSettings()).run(None, feeds)[0]


def component_feeds(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    latent = rng.standard_normal((2, 4, 64, 10), dtype=np.float32)
    return {"text_encoder": {"input_ids": rng.integers(0, 49408, (2, 77)).astype(np.int32)},
            "unet": {"sample": latent, "timestep": np.array([999.0, 18.0], np.float32),
                     "encoder_hidden_states": rng.standard_normal((2, 77, 32), dtype=np.float32)},
            "vae_decoder": {"latent": latent},
            "vae_encoder": {"image": rng.uniform(-1, 1, (1, 3, 512, 80)).astype(np.float32)}}


def test_an_fp32_bundle_from_the_hub_computes_what_model_convert_exports(run_cli, hub, user_dirs, fp32_bundle,
                                                                        tmp_path):
    result = get(run_cli, {**hub.env(), **user_dirs}, "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "data" / "riffstudio" / "models" / "riffusion-model-v1-fp32"
    assert f"wrote {bundle}" in result.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["source"] == REPO_ID and manifest["source_revision"] == hub.repos[REPO_ID].commit
    for component, feeds in component_feeds(np.random.default_rng(3)).items():
        ours, torch_export = outputs(bundle, component, feeds), outputs(fp32_bundle, component, feeds)
        assert ours.shape == torch_export.shape
        assert np.max(np.abs(ours - torch_export)) <= 1e-5 * np.max(np.abs(torch_export)), component
    # The download is removed once the bundle is in place; only what we made was there.
    assert not any((tmp_path / "cache" / "riffstudio" / "downloads").rglob("*.safetensors"))
    check = run_cli("model", "check", bundle)
    assert check.returncode == 0, check.stderr


@pytest.mark.slow
def test_other_random_weights_poured_into_the_templates_compute_what_torch_computes(run_cli, user_dirs, tmp_path):
    """The map's proof: the templates were made from the tiny checkpoint's weights; a checkpoint of the same
    architecture with other random weights (seed 1), poured in without torch, gives torch's outputs on them."""
    import torch
    from random_sd_model import cached_model

    from engine.export.onnx_export import wrap_component
    from engine.export.source import load_checkpoint

    other = cached_model("tiny", seed=1)
    out = tmp_path / "other"
    result = get(run_cli, user_dirs, other, "--precision", "fp32", "--out", out)
    assert result.returncode == 0, result.stderr
    checkpoint = load_checkpoint(str(other))
    for component, feeds in component_feeds(np.random.default_rng(11)).items():
        with torch.no_grad():
            expected = wrap_component(checkpoint, component)(*(torch.from_numpy(v) for v in feeds.values())).numpy()
        ours = outputs(out, component, feeds)
        assert ours.shape == expected.shape
        assert np.max(np.abs(ours - expected)) <= 1e-4 * np.max(np.abs(expected)), component


@pytest.mark.slow
def test_an_int8_bundle_gets_made_checked_and_makes_a_loop_without_torch(run_cli, hub, user_dirs, tmp_path):
    """torch, diffusers and transformers cannot even be imported in the child (poisoned on sys.path)."""
    poison = tmp_path / "poison"
    for name in ("torch", "diffusers", "transformers"):
        (poison / name).mkdir(parents=True)
        (poison / name / "__init__.py").write_text(f"raise ImportError('{name} must not be imported by model get')")
    env = {**hub.env(), **user_dirs, "PYTHONPATH": os.pathsep.join([str(poison), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "bundles" / "riff-int8"
    result = get(run_cli, env, REPO_ID, "--precision", "int8", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "note" and "to download" in events[0]["message"]
    downloads = [e for e in events if e["event"] == "progress" and "bytes" in e]
    assert downloads and downloads[-1]["bytes"] == downloads[-1]["total"] > 0
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    # The UNet is quantised while pouring, the VAE decoder calibrated after.
    for stage in ("pouring the unet weights (int8)", "scoring the int8 unet against fp32",
                  "quantising the vae_decoder"):
        assert stage in stages, stages
    assert stages.index("hashing files") > 0
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions)
    assert events[-1] == {"event": "done", "bundle": str(out)}
    manifest = json.loads((out / "manifest.json").read_text())
    assert {c: s["quantization"] for c, s in manifest["components"].items()} == {
        "text_encoder": "dynamic_u8_matmul", "unet": "dynamic_u8_per_channel", "vae_decoder": "static_qdq_u8s7",
        "vae_encoder": "fp32"}
    check = run_cli("model", "check", out, env=env)
    assert check.returncode == 0, check.stderr
    loop = run_cli("generate", "funky slap bass, 100 bpm", "--model", out, "--out", tmp_path / "loop.wav",
                   "--width", "256", "--speed", "draft", env=env)
    assert loop.returncode == 0, loop.stderr
    assert (tmp_path / "loop.wav").stat().st_size > 10_000


def test_a_download_cut_mid_file_continues_with_a_range_request(run_cli, hub, user_dirs, tmp_path):
    env = {**hub.env(), **user_dirs}
    hub.drop_after_bytes[UNET_FILE] = 3_000_000
    line = one_line(get(run_cli, env, "--precision", "fp32"))
    assert f"downloading {UNET_FILE} stopped" in line and "continues where it stopped" in line
    partial = list((tmp_path / "cache").rglob(".diffusion_pytorch_model.safetensors.riffstudio-partial"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size <= 3_000_000
    assert not (tmp_path / "data" / "riffstudio" / "models").exists() or not any(
        (tmp_path / "data" / "riffstudio" / "models").iterdir())
    kept = partial[0].stat().st_size
    second = get(run_cli, env, "--precision", "fp32")
    assert second.returncode == 0, second.stderr
    resumed = [r for r in hub.requests if r.path.endswith(UNET_FILE) and r.method == "GET"][-1]
    assert resumed.headers.get("range") == f"bytes={kept}-" and resumed.status == 206
    assert "left)" in second.stdout  # it said what was left before continuing
    assert not partial[0].exists()


def test_a_corrupt_file_is_caught_by_its_hash_and_never_converted(run_cli, hub, user_dirs, tmp_path):
    env = {**hub.env(), **user_dirs}
    hub.corrupt.add(UNET_FILE)
    line = one_line(get(run_cli, env, "--precision", "fp32"))
    assert UNET_FILE in line and "damaged" in line and "sha256" in line
    gets = [r for r in hub.requests if r.path.endswith(UNET_FILE) and r.method == "GET"]
    assert len(gets) == 2  # fetched once more before giving up
    assert not list((tmp_path / "cache").rglob("*riffstudio-partial"))
    assert not list((tmp_path / "cache").rglob("diffusion_pytorch_model.safetensors"))
    assert not (tmp_path / "data" / "riffstudio" / "models" / "riffusion-model-v1-fp32").exists()
    hub.corrupt.clear()
    assert get(run_cli, env, "--precision", "fp32").returncode == 0


def test_torch_bin_files_are_read_without_torch_and_a_pickle_that_runs_code_is_refused(run_cli, user_dirs,
                                                                                         tiny_sd_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "bin-model"
    shutil.copytree(tiny_sd_dir, folder)
    for weights in folder.rglob("*.safetensors"):
        name = "pytorch_model.bin" if weights.parent.name == "text_encoder" else "diffusion_pytorch_model.bin"
        torch.save(load_file(weights), weights.parent / name)
        weights.unlink()
    good = get(run_cli, user_dirs, folder, "--precision", "fp32", "--out", tmp_path / "from-bin")
    assert good.returncode == 0, good.stderr

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = torch.load(folder / "unet" / "diffusion_pytorch_model.bin", weights_only=True)
    state["conv_in.weight_hook"] = Payload()
    torch.save(state, folder / "unet" / "diffusion_pytorch_model.bin")
    with FakeHub([FakeRepo("evil/model", folder)]) as evil:
        line = one_line(get(run_cli, {**evil.env(), **user_dirs}, "evil/model", "--precision", "fp32",
                            "--out", tmp_path / "evil"))
    assert "asks to run code" in line and "system" in line
    assert not marker.exists() and not (tmp_path / "evil").exists()


def test_each_bad_source_is_one_line_before_any_download(run_cli, hub, user_dirs, tmp_path):
    env = {**hub.env(), **user_dirs}
    assert "no model nobody/nothing" in one_line(get(run_cli, env, "nobody/nothing"))
    offline = one_line(get(run_cli, {**env, "HF_HUB_OFFLINE": "1"}))
    assert "HF_HUB_OFFLINE" in offline and "riffstudio model get FOLDER" in offline and "unet/" in offline
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "README.md").write_text("hello\n" * 400)
    with FakeHub([FakeRepo("someone/readme-only", empty)]) as other:
        assert "not a Stable Diffusion model" in one_line(get(run_cli, {**other.env(), **user_dirs},
                                                              "someone/readme-only"))
    assert "neither a folder nor a Hugging Face id" in one_line(get(run_cli, env, "no such thing"))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("a producer's file")
    assert "is not a model bundle" in one_line(get(run_cli, env, "--out", occupied))
    assert (occupied / "mine.txt").read_text() == "a producer's file"
    assert not [r for r in hub.requests if "/resolve/" in r.path]  # nothing was downloaded for any of them
    assert not (tmp_path / "cache" / "riffstudio" / "downloads").exists()


def test_too_little_disk_is_refused_before_the_first_byte(hub, user_dirs, tmp_path, monkeypatch):
    """The disk cannot be filled here: its free space is what the test fakes, through shutil's own answer."""
    from fake_hub import use_in_process

    from engine.errors import InvalidInputError
    from engine.model_get import download
    from engine.model_get.get import GetSettings, get_model

    use_in_process(hub, monkeypatch, tmp_path)
    for name, value in user_dirs.items():
        monkeypatch.setenv(name, value)
    real = shutil.disk_usage
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: real(path)._replace(free=10_000_000))
    with pytest.raises(InvalidInputError, match=r"needs .* free on .*, which has 10\.0 MB"):
        get_model(GetSettings(precision="fp32"), say=lambda _: None)
    assert not [r for r in hub.requests if "/resolve/" in r.path]
    assert not (tmp_path / "cache" / "riffstudio" / "downloads").exists()


def test_the_plan_says_what_a_get_needs_and_discard_removes_a_kept_download(run_cli, hub, user_dirs, tmp_path):
    env = {**hub.env(), **user_dirs}
    plan = json.loads(get(run_cli, env, "--plan", "--json", "--precision", "int8").stdout)
    sizes = sum(f.size for f in hub.repos[REPO_ID].files.values() if not f.path.endswith(".md"))
    assert plan["event"] == "plan" and plan["precision"] == "int8"
    assert 0 < plan["total_bytes"] <= sizes and plan["remaining_bytes"] == plan["total_bytes"]
    assert plan["needed_bytes"] > plan["total_bytes"] and plan["free_bytes"] > 0
    hub.drop_after_bytes[UNET_FILE] = 1_000_000
    get(run_cli, env, "--precision", "int8")
    again = json.loads(get(run_cli, env, "--plan", "--json", "--precision", "int8").stdout)
    assert again["remaining_bytes"] < plan["total_bytes"]
    discarded = json.loads(get(run_cli, env, "--discard", "--json").stdout)
    assert discarded["event"] == "discarded" and len(discarded["folders"]) == 1
    assert not (tmp_path / "cache" / "riffstudio" / "downloads" / "riffusion--riffusion-model-v1").exists()


def test_a_local_folder_becomes_a_bundle_and_older_spellings_are_found(run_cli, user_dirs, tiny_sd_dir, tmp_path,
                                                                      fp32_bundle):
    """riffusion-model-v1 was saved by diffusers 0.6 and transformers 4: the VAE's attention as query/key/
    value/proj_attn, the text encoder's tensors under `text_model.`, configs without today's keys."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "old-layout"
    shutil.copytree(tiny_sd_dir, folder)
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    renames = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}
    tensors = load_file(vae)
    old = {}
    for name, value in tensors.items():
        for today, legacy in renames.items():
            if ".attentions." in name:
                name = name.replace(today, legacy)
        old[name] = value
    assert old.keys() != tensors.keys()
    save_file(old, vae)
    text = folder / "text_encoder" / "model.safetensors"
    save_file({f"text_model.{k}": v for k, v in load_file(text).items()}, text)
    config = json.loads((folder / "unet" / "config.json").read_text())
    for key in ("attention_type", "mid_block_type", "transformer_layers_per_block", "resnet_time_scale_shift"):
        config.pop(key)
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "old-fp32"
    result = get(run_cli, user_dirs, folder, "--precision", "fp32", "--out", out)
    assert result.returncode == 0, result.stderr
    feeds = component_feeds(np.random.default_rng(5))
    for component in ("text_encoder", "vae_decoder"):
        assert np.array_equal(outputs(out, component, feeds[component]),
                              outputs(fp32_bundle, component, feeds[component])), component


def test_the_shipped_sd15_templates_are_what_the_export_code_makes_today():
    """They were made by engine/export/templates.py with this torch: a change to the export code or torch's
    version needs them made again (`python -m engine.export.templates ...`, see that module)."""
    from engine.export.templates import export_key
    from engine.model_get.architecture import sd15
    from engine.model_get.template import TemplateSet
    from engine.model_get.template_store import SHIPPED

    for variant in ("dynamic", "fixed512"):
        templates = TemplateSet.read(SHIPPED / f"sd15-{variant}")
        assert templates.signature == sd15().signature and templates.variant == variant
        assert templates.export_key == export_key(), (
            f"regenerate: python -m engine.export.templates {SHIPPED}/sd15-{variant} --variant {variant}")


@pytest.mark.benchmark
@pytest.mark.parametrize("variant", ["dynamic", "fixed512"])
def test_remaking_the_sd15_templates_gives_the_shipped_files(tmp_path, variant):
    """The shipped templates made again from scratch: full SD 1.5 exports, minutes each, so not in the suite
    (`python -m pytest -m benchmark -k remaking -n 0`; .cache/template-exports keeps the exports for reruns)."""
    from conftest import REPO

    from engine.export.templates import build_templates, read_configs
    from engine.model_get.architecture import SD15_CONFIGS
    from engine.model_get.template_store import SHIPPED

    out = tmp_path / variant
    build_templates(read_configs(SD15_CONFIGS), variant, out, export_cache=REPO / ".cache" / "template-exports")
    shipped = SHIPPED / f"sd15-{variant}"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in shipped.iterdir())
    for path in shipped.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


def test_riffusions_own_configs_are_sd15():
    """riffusion-model-v1's configs as diffusers 0.6 and transformers 4.25 wrote them (fewer keys, training-only
    ones) ask for the shipped templates; another width of UNet does not."""
    from engine.model_get.architecture import complete, sd15

    unet = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0", "act_fn": "silu",
            "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
            "cross_attention_dim": 768, "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
            "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
            "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
            "out_channels": 4, "sample_size": 64, "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3}
    vae = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
           "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
           "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
           "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 4}
    text = {"_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"],
            "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu",
            "hidden_size": 768, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072,
            "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model",
            "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768,
            "torch_dtype": "float32", "transformers_version": "4.25.1", "vocab_size": 49408}
    assert complete({"unet": unet, "vae": vae, "text_encoder": text}).is_sd15
    assert sd15().is_sd15
    wider = {**unet, "cross_attention_dim": 1024}
    assert not complete({"unet": wider, "vae": vae, "text_encoder": text}).is_sd15


def test_another_architecture_without_the_export_extra_is_one_line(run_cli, user_dirs, tiny_sd_dir, tmp_path):
    poison = tmp_path / "poison"
    (poison / "torch").mkdir(parents=True)
    (poison / "torch" / "__init__.py").write_text("raise ImportError('no torch here')")
    env = {**user_dirs, "RIFFSTUDIO_TEMPLATE_CACHE": str(tmp_path / "empty-cache"), "PYTHONPATH": str(poison)}
    line = one_line(get(run_cli, env, tiny_sd_dir, "--precision", "fp32", "--out", tmp_path / "x"))
    assert "not SD 1.5's" in line and "export" in line and "constraints.txt" in line
    assert not (tmp_path / "x").exists()
    convert = one_line(run_cli("model", "convert", tiny_sd_dir, "--out", tmp_path / "y", env=env))
    assert "needs the export extra" in convert and "model get" in convert


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_a_single_original_layout_file_gives_the_bundle_its_folder_gives(run_cli, user_dirs, tiny_sd_dir, tmp_path,
                                                                         fp32_bundle, suffix):
    """riffusion-model-v1.ckpt's layout (CompVis' names, a Lightning-style {"state_dict": ...} pickle for .ckpt),
    read without torch. diffusers' own loader gives the folder's weights from such a file
    (tests/test_single_file_source.py), so equal outputs mean our reading of the LDM names is right."""
    from ldm_checkpoint import write_ldm_checkpoint

    source = write_ldm_checkpoint(tiny_sd_dir, tmp_path / f"tiny-model{suffix}")
    out = tmp_path / "from-file"
    result = get(run_cli, user_dirs, source, "--precision", "fp32", "--out", out, "--config", tiny_sd_dir)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == str(source.resolve()) and manifest["source_revision"].startswith("file-")
    for component, feeds in component_feeds(np.random.default_rng(9)).items():
        assert np.array_equal(outputs(out, component, feeds), outputs(fp32_bundle, component, feeds)), component
    wrong = one_line(get(run_cli, user_dirs, source, "--precision", "fp32", "--out", tmp_path / "sd15"))
    assert "the architecture needs" in wrong and not (tmp_path / "sd15").exists()  # read as SD 1.5: the sizes differ


@pytest.mark.slow
@pytest.mark.qnn
def test_a_qnn_bundle_gets_made_and_runs_on_the_npu(run_cli, user_dirs, tiny_qnn_templates, tiny_sd_dir, tmp_path):
    """w8a16 for the HTP back end (the simulator here, CPU fallback off in `model check --provider qnn`),
    calibrated on one of the shipped spectrograms (and two guided runs) to keep the test short."""
    out = tmp_path / "qnn"
    env = {**user_dirs, "RIFFSTUDIO_TEMPLATE_CACHE": str(tiny_qnn_templates)}
    result = get(run_cli, env, tiny_sd_dir, "--precision", "qnn", "--width", "256", "--calibration-images", "2",
                 "--out", out, timeout=600)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "qnn" and manifest["fixed_shapes"] and manifest["image_width"] == 256
    assert {spec["quantization"] for spec in manifest["components"].values()} == {"qdq_w8a16"}
    assert all(spec["validation"]["snr_db_vs_fp32"] > 20 for spec in manifest["components"].values())
    check = run_cli("model", "check", out, "--provider", "qnn", "--models", "unet", env=env, timeout=600)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "qnn" in check.stdout
