"""Random-weight Stable Diffusion checkpoints in riffusion-model-v1's exact diffusers layout.

No real weights can be downloaded here, so tests convert and run these instead. The layout, the
configs' keys, the tokenizer files and the scheduler config are riffusion-model-v1's; only the sizes
shrink (the `tiny` preset) or stay SD 1.5's (the `full` preset, for benchmarks: an 860M-parameter UNet).

Every parameter is random, norm weights and biases included: a freshly built module has norms of all
ones and zeros, which hides real conversion bugs (a dropped bias changes nothing) and creates fake
ones (quantisation ranges of zero).

    python tests/random_sd_model.py OUT_DIR [--preset tiny|full] [--seed N]

Needs the `export` extra (torch, diffusers, transformers): test and benchmark time only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BPE_VOCAB = REPO / "tests" / "data" / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"
CACHE = REPO / ".cache" / "test-models"

# riffusion-model-v1/scheduler/scheduler_config.json (the SD 1.5 PNDM set-up). `clip_sample` is
# not a PNDM setting (diffusers ignores it when loading), but the real file carries it.
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "trained_betas": None,
}

PRESETS = {
    "tiny": {
        "text_encoder": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, projection_dim=32),
        "unet": dict(block_out_channels=(32, 64, 64, 64), layers_per_block=2, attention_head_dim=2,
                     cross_attention_dim=32, norm_num_groups=32),
        "vae": dict(block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=16),
    },
    "full": {
        "text_encoder": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                             num_attention_heads=12, projection_dim=768),
        "unet": dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, attention_head_dim=8,
                     cross_attention_dim=768, norm_num_groups=32),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32),
    },
}


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """CLIP's byte-level BPE vocabulary (49408 tokens) and merges, built from the released BPE file."""
    with gzip.open(BPE_VOCAB, "rt", encoding="utf-8") as file:
        lines = file.read().split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def write_tokenizer(folder: Path) -> None:
    """The four files riffusion-model-v1/tokenizer/ holds (a slow CLIPTokenizer, no tokenizer.json)."""
    vocab, merges = clip_vocabulary()
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {"add_prefix_space": False, "do_lower_case": True, "errors": "replace", "model_max_length": 77,
              "name_or_path": "openai/clip-vit-large-patch14", "tokenizer_class": "CLIPTokenizer", **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def build_pipeline(preset: str = "tiny", seed: int = 0):
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    sizes = PRESETS[preset]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=0, eos_token_id=2, pad_token_id=1, **sizes["text_encoder"]))
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True,
        freq_shift=0, act_fn="silu", downsample_padding=1, mid_block_scale_factor=1, norm_eps=1e-5,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        **sizes["unet"])
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=512, act_fn="silu",
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215, **sizes["vae"])
    from engine.export.templates import randomise_constant_parameters

    for module in (text_encoder, unet, vae):
        randomise_constant_parameters(module, generator)
        module.eval()
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=None, unet=unet,
        scheduler=PNDMScheduler.from_config(SCHEDULER_CONFIG), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)


def write_model(out: Path, preset: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight checkpoint to `out` (atomically: complete or absent)."""
    sys.path.insert(0, str(REPO))
    from engine.atomic import atomic_path

    pipeline = build_pipeline(preset, seed)
    with atomic_path(out, directory=True) as temp:
        pipeline.save_pretrained(temp, safe_serialization=True)
        write_tokenizer(temp / "tokenizer")
        (temp / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))
        index = json.loads((temp / "model_index.json").read_text())
        index["tokenizer"] = ["transformers", "CLIPTokenizer"]
        (temp / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    return out


def cached_model(preset: str = "tiny", seed: int = 0) -> Path:
    """The checkpoint for `preset`, built once and kept under .cache/ until this file or a library changes."""
    import inspect

    import diffusers
    import torch
    import transformers

    from engine.export.templates import randomise_constant_parameters

    key = hashlib.sha256(Path(__file__).read_bytes())
    key.update(inspect.getsource(randomise_constant_parameters).encode())
    key.update(f"{preset}-{seed}-{torch.__version__}-{diffusers.__version__}-{transformers.__version__}".encode())
    # Each seed its own name (the default's unchanged): clearing one's stale copies never removes another's.
    name = preset if seed == 0 else f"{preset}-seed{seed}"
    out = CACHE / f"{name}-{key.hexdigest()[:12]}"
    if (out / "model_index.json").exists():
        return out
    import shutil

    from filelock import FileLock

    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(CACHE / f"{name}.lock"):  # pytest-xdist's workers may both ask for it first
        if not (out / "model_index.json").exists():
            for stale in CACHE.glob(f"{name}-{'?' * 12}"):
                shutil.rmtree(stale, ignore_errors=True)
            write_model(out, preset, seed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_model(args.out, args.preset, args.seed))


if __name__ == "__main__":
    main()
