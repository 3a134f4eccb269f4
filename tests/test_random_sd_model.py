"""The random-weight test checkpoint really has riffusion-model-v1's layout and a trained model's traits."""

from __future__ import annotations

import json

import pytest


def test_layout_matches_riffusion_model_v1(tiny_sd_dir):
    index = json.loads((tiny_sd_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tiny_sd_dir / "tokenizer" / name).is_file()
    unet = json.loads((tiny_sd_dir / "unet" / "config.json").read_text())
    assert (unet["sample_size"], unet["in_channels"], unet["out_channels"]) == (64, 4, 4)
    vae = json.loads((tiny_sd_dir / "vae" / "config.json").read_text())
    assert len(vae["down_block_types"]) == 4 and vae["latent_channels"] == 4
    assert vae["scaling_factor"] == pytest.approx(0.18215)
    text = json.loads((tiny_sd_dir / "text_encoder" / "config.json").read_text())
    assert (text["vocab_size"], text["max_position_embeddings"]) == (49408, 77)
    assert text["hidden_act"] == "quick_gelu"
    scheduler = json.loads((tiny_sd_dir / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "PNDMScheduler"
    assert (scheduler["beta_start"], scheduler["beta_end"]) == (0.00085, 0.012)
    assert scheduler["skip_prk_steps"] is True and scheduler["steps_offset"] == 1


def test_tokenizer_uses_the_real_clip_vocabulary(tiny_sd_dir):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd_dir / "tokenizer")
    assert tokenizer("a jazz saxophone solo").input_ids == [49406, 320, 4528, 32296, 5797, 49407]
    assert len(tokenizer) == 49408


def test_no_parameter_is_left_constant(tiny_sd_dir):
    from safetensors.numpy import load_file

    files = [tiny_sd_dir / "unet" / "diffusion_pytorch_model.safetensors",
             tiny_sd_dir / "vae" / "diffusion_pytorch_model.safetensors",
             tiny_sd_dir / "text_encoder" / "model.safetensors"]
    for file in files:
        for name, tensor in load_file(file).items():
            if tensor.size > 1 and "position_ids" not in name:
                assert tensor.std() > 0, f"{file.parent.name}/{name} is constant"


def test_diffusers_loads_it_as_a_stable_diffusion_pipeline(tiny_sd_dir):
    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(tiny_sd_dir)
    image = pipeline("a jazz saxophone solo", num_inference_steps=2, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 512, 512, 3)
    assert np.isfinite(image).all()
