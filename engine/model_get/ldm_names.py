"""Where a diffusers Stable Diffusion tensor sits in an original-layout (LDM) single checkpoint file.

riffusion ships riffusion-model-v1.ckpt as CompVis' latent-diffusion code saves a model: one state dict with
`model.diffusion_model.*` (UNet, its blocks numbered as input/middle/output blocks), `first_stage_model.*`
(VAE, decoder blocks counted from the bottom, attention as 1x1 convolutions) and
`cond_stage_model.transformer.text_model.*` (CLIP). The templates ask for tensors by their diffusers names;
these functions give each one's LDM name (the inverse of what diffusers does when it loads such a file), so
`model get` reads a single file with no torch and no diffusers. tests/ldm_checkpoint.py writes such files
with them; the tests compare what `model get` makes of one with what diffusers' own loader makes of it.
"""

from __future__ import annotations

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."

UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
              "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_key(key: str, layers_per_block: int, up_has_attention: list[bool]) -> str:
    """One diffusers UNet parameter name in LDM's numbering of input, middle and output blocks."""
    stride = layers_per_block + 1
    for new, old in UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    parts = key.split(".")
    if parts[0] == "down_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if kind == "downsamplers":  # downsamplers.0.conv.weight -> input_blocks.N.0.op.weight
            return f"input_blocks.{stride * (block + 1)}.0.op." + ".".join(rest[1:])
        slot = "0" if kind == "resnets" else "1"
        return _unet_inner(f"input_blocks.{stride * block + index + 1}.{slot}", kind, rest)
    if parts[0] == "mid_block":
        kind, index, rest = parts[1], int(parts[2]), parts[3:]
        return _unet_inner(f"middle_block.{2 * index if kind == 'resnets' else 1}", kind, rest)
    if parts[0] == "up_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if kind == "upsamplers":  # after the block's last resnet (and its attention, where it has one)
            slot = 2 if up_has_attention[block] else 1
            return f"output_blocks.{stride * block + layers_per_block}.{slot}." + ".".join(rest)
        slot = "0" if kind == "resnets" else "1"
        return _unet_inner(f"output_blocks.{stride * block + index}.{slot}", kind, rest)
    raise ValueError(f"no LDM name for UNet parameter {key}")


def _unet_inner(prefix: str, kind: str, rest: list[str]) -> str:
    name = ".".join(rest)
    if kind == "resnets":
        layer, _, tail = name.rpartition(".")
        return f"{prefix}.{UNET_RESNET[layer]}.{tail}"
    return f"{prefix}.{name}"  # transformer blocks keep their names in LDM


def vae_key(key: str, up_blocks: int) -> str:
    """One diffusers VAE parameter name in LDM's (decoder up blocks counted from the bottom)."""
    replacements = [("conv_norm_out", "norm_out"), ("mid_block.resnets.0", "mid.block_1"),
                    ("mid_block.resnets.1", "mid.block_2"), ("mid_block.attentions.0", "mid.attn_1"),
                    ("downsamplers.0", "downsample"), ("upsamplers.0", "upsample"), ("conv_shortcut", "nin_shortcut")]
    for new, old in replacements:
        key = key.replace(new, old)
    parts = key.split(".")
    if parts[1] == "down_blocks":
        parts[1:3] = ["down", parts[2]]
    if parts[1] == "up_blocks":
        parts[1:3] = ["up", str(up_blocks - 1 - int(parts[2]))]
    key = ".".join(parts).replace(".resnets.", ".block.")
    if ".attn_1." in key:
        layer, _, tail = key.rpartition(".")
        inner = layer.split(".attn_1.")[1]
        key = layer.split(".attn_1.")[0] + ".attn_1." + VAE_ATTENTION.get(inner, inner) + "." + tail
    return key


def ldm_names(folder: str, name: str, configs: dict[str, dict]) -> tuple[str, ...]:
    """The LDM names a diffusers tensor of model folder `folder` ("unet", "vae", "text_encoder") may have in a
    single file of the architecture `configs` (the diffusers configs), most likely first."""
    if folder == "unet":
        unet = configs["unet"]
        up_attention = ["CrossAttn" in block for block in unet["up_block_types"]]
        return (UNET_PREFIX + unet_key(name, unet["layers_per_block"], up_attention),)
    if folder == "vae":
        return (VAE_PREFIX + vae_key(name, len(configs["vae"]["up_block_types"])),)
    text = name.removeprefix("text_model.")
    # Files saved with transformers before 4.22 lack the `text_model.` level.
    return (CLIP_PREFIX + text, CLIP_PREFIX.removesuffix("text_model.") + text)
