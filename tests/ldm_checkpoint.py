"""Write a diffusers Stable Diffusion folder as one original-layout (LDM) checkpoint file.

riffusion ships riffusion-model-v1.ckpt in the layout CompVis' latent-diffusion code saves: one state
dict with `model.diffusion_model.*` (UNet), `first_stage_model.*` (VAE) and
`cond_stage_model.transformer.text_model.*` (CLIP). Tests need such a file to prove the single-file
path of `model convert`, and none can be downloaded, so this renames a random-weight diffusers model
back into that layout with engine/model_get/ldm_names.py (the inverse of the mapping diffusers applies when it
loads one; the tests check our reading of such files against diffusers' own).

Test time only (torch, safetensors).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.model_get.ldm_names import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, unet_key, vae_key


def ldm_state_dict(folder: Path) -> dict:
    """The diffusers model in `folder` as one LDM state dict (tensors shared, not copied)."""
    from safetensors.torch import load_file

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    up_attention = ["CrossAttn" in name for name in unet_config["up_block_types"]]
    state = {}
    for key, value in load_file(folder / "unet" / "diffusion_pytorch_model.safetensors").items():
        state[UNET_PREFIX + unet_key(key, unet_config["layers_per_block"], up_attention)] = value
    for key, value in load_file(folder / "vae" / "diffusion_pytorch_model.safetensors").items():
        if ".attentions." in key and value.ndim == 2:  # LDM's VAE attention is 1x1 convolutions
            value = value[:, :, None, None]
        state[VAE_PREFIX + vae_key(key, len(vae_config["up_block_types"]))] = value
    for key, value in load_file(folder / "text_encoder" / "model.safetensors").items():
        state[CLIP_PREFIX + key.removeprefix("text_model.")] = value
    return state


def write_ldm_checkpoint(folder: Path, out: Path) -> Path:
    """`out` ends in .safetensors (a flat state dict) or .ckpt (a torch pickle under "state_dict", as riffusion's)."""
    import torch
    from safetensors.torch import save_file

    state = ldm_state_dict(folder)
    if out.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, out)
    else:
        torch.save({"state_dict": state, "global_step": 0}, out)
    return out
