"""`model convert` from one original-layout checkpoint file, as riffusion ships riffusion-model-v1.ckpt."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXPORT_CACHE
from ldm_checkpoint import write_ldm_checkpoint
from random_sd_model import PRESETS, SCHEDULER_CONFIG, clip_vocabulary

from engine.bundle import COMPONENTS, open_bundle
from engine.errors import InvalidInputError
from engine.export.source import SD15_CONFIG, load_checkpoint
from engine.sessions import SessionSettings, create_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def single_files(tmp_path_factory, tiny_sd_dir):
    folder = tmp_path_factory.mktemp("single")
    return {suffix: write_ldm_checkpoint(tiny_sd_dir, folder / f"tiny-model{suffix}")
            for suffix in (".safetensors", ".ckpt")}


def feeds(component: str, hidden: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each component's inputs at the narrowest width (8 latent columns, 64 px)."""
    normal = rng.standard_normal
    return {"text_encoder": lambda: {"input_ids": rng.integers(0, 49407, (1, 77)).astype(np.int32)},
            "unet": lambda: {"sample": normal((2, 4, 64, 8), np.float32),
                             "timestep": np.full(2, 321.0, np.float32),
                             "encoder_hidden_states": normal((2, 77, hidden), np.float32)},
            "vae_decoder": lambda: {"latent": normal((1, 4, 64, 8), np.float32)},
            "vae_encoder": lambda: {"image": rng.uniform(-1, 1, (1, 3, 512, 64)).astype(np.float32)}}[component]()


def test_single_file_converts_to_the_bundle_its_folder_gives(run_cli, tmp_path, single_files, tiny_sd_dir,
                                                             fp32_bundle):
    source = single_files[".safetensors"]
    out = tmp_path / "from-file"
    entries = set(EXPORT_CACHE.iterdir())
    result = run_cli("model", "convert", source, "--out", out, "--config", tiny_sd_dir, "--export-cache",
                     EXPORT_CACHE, timeout=600)
    assert result.returncode == 0, result.stderr
    # The export cache is keyed by module content: a hit on every model means the file's weights, mapped
    # from riffusion's LDM names, are exactly the folder's (any difference would export anew).
    assert set(EXPORT_CACHE.iterdir()) == entries
    assert run_cli("model", "check", out).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == str(source.resolve())
    assert manifest["source_revision"].startswith("file-")
    assert manifest["scheduler"] == json.loads((fp32_bundle / "manifest.json").read_text())["scheduler"]
    ours, reference = open_bundle(out), open_bundle(fp32_bundle)
    rng = np.random.default_rng(0)
    for component in COMPONENTS:
        a = create_session(ours.component_path(component), SessionSettings(provider="cpu"))
        b = create_session(reference.component_path(component), SessionSettings(provider="cpu"))
        inputs = feeds(component, reference.manifest.text_hidden_size, rng)
        np.testing.assert_allclose(a.run(None, inputs)[0], b.run(None, inputs)[0], atol=1e-5, err_msg=component)


def test_ckpt_pickle_holds_the_same_weights_as_the_folder(single_files, tiny_sd_dir):
    """riffusion's own file is a torch pickle with the weights under "state_dict"."""
    import torch

    from_file, from_folder = load_checkpoint(str(single_files[".ckpt"]), tiny_sd_dir), load_checkpoint(str(tiny_sd_dir))
    for name in ("text_encoder", "unet", "vae"):
        ours, theirs = getattr(from_file, name).state_dict(), getattr(from_folder, name).state_dict()
        assert ours.keys() == theirs.keys(), name
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), name
    assert from_file.scheduler_config == from_folder.scheduler_config
    assert from_file.revision != load_checkpoint(str(single_files[".safetensors"]), tiny_sd_dir).revision


def test_default_architecture_is_riffusions_sd15():
    """The configs shipped for single files: SD 1.5 sizes, riffusion's PNDM set-up, CLIP's 49408 tokens."""
    full = PRESETS["full"]
    unet = json.loads((SD15_CONFIG / "unet" / "config.json").read_text())
    assert {key: unet[key] for key in full["unet"]} == {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in full["unet"].items()}
    vae = json.loads((SD15_CONFIG / "vae" / "config.json").read_text())
    assert vae["block_out_channels"] == [128, 256, 512, 512] and vae["scaling_factor"] == 0.18215
    text = json.loads((SD15_CONFIG / "text_encoder" / "config.json").read_text())
    assert {key: text[key] for key in full["text_encoder"]} == full["text_encoder"]
    assert (text["hidden_act"], text["max_position_embeddings"], text["vocab_size"]) == ("quick_gelu", 77, 49408)
    assert json.loads((SD15_CONFIG / "scheduler" / "scheduler_config.json").read_text()) == SCHEDULER_CONFIG
    vocabulary, _ = clip_vocabulary()
    assert json.loads((SD15_CONFIG / "tokenizer" / "vocab.json").read_text(encoding="utf-8")) == vocabulary


@pytest.mark.parametrize("case", ["config for a folder", "config folder without unet config"])
def test_config_misuse_is_refused_before_loading(run_cli, tmp_path, single_files, tiny_sd_dir, case):
    if case == "config for a folder":
        source, config, words = tiny_sd_dir, tiny_sd_dir, "only applies to a single"
    else:
        config = tmp_path / "configs"
        for path in tiny_sd_dir.rglob("*"):
            if path.is_file() and path.suffix != ".safetensors" and path.parent.name != "unet":
                (config / path.relative_to(tiny_sd_dir)).parent.mkdir(parents=True, exist_ok=True)
                (config / path.relative_to(tiny_sd_dir)).write_bytes(path.read_bytes())
        source, words = single_files[".safetensors"], "missing unet/config.json"
    out = tmp_path / "bundle"
    result = run_cli("model", "convert", source, "--out", out, "--config", config)
    assert result.returncode == InvalidInputError.exit_code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
    assert not out.exists()
