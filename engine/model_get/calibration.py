"""Calibration inputs for quantising a model without torch and without running the UNet.

`model convert` captures what each model sees along real guided denoising runs (tens of UNet calls per
prompt, most of an int8 conversion's 34-51 minutes on two cores). Every one of those inputs has a cheaper
source that is just as real:

- VAE encoder: real spectrogram images. Eight ship with the package (engine/model_get/calibration/,
  fluidsynth renders of seeded General MIDI pieces: drums, bass, chords and a lead on varied instruments).
- VAE decoder: what the VAE encoder makes of them (the latent mean, in the decoder's unscaled units): the
  end of a denoising run is an image's latent, and these are latents of real images.
- UNet: the forward process needs no UNet. A denoising step at timestep t sees
  sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε (what every sampler's scaled model input is), so noised image latents at
  the default sampler's timesteps, once with a music prompt's embedding and once with the empty prompt's
  (classifier-free guidance), cover the activations the UNet meets.
- Text encoder: the tokenised music prompts and the empty prompt.

All of it runs the fp32 ONNX models (text encoder once over the prompts, VAE encoder once per image).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InvalidInputError, ModelBundleError

Feeds = dict[str, np.ndarray]
IMAGES = Path(__file__).with_name("calibration")

# Varied on purpose: genres, instruments, moods, tempos, production words; plus short and long ones
# (token counts from 3 to 40), since attention ranges depend on how much of the 77 tokens is text.
MUSIC_PROMPTS: tuple[str, ...] = (
    "jazzy piano trio, brushed drums, upright bass",
    "heavy metal riff with double kick drums and distorted guitars",
    "lofi hip hop beat with vinyl crackle and mellow keys",
    "ambient synth pads, slow, dreamy, lots of reverb",
    "funky slap bass groove, 110 bpm",
    "techno kick and hi-hats, 128 bpm, dark warehouse",
    "acoustic folk guitar strumming, warm and intimate",
    "orchestral strings swelling, cinematic, epic",
    "reggae skank guitar with a deep dub bassline",
    "drum and bass breakbeat, 174 bpm, rolling sub bass",
    "bossa nova nylon guitar and soft shaker",
    "trap hi-hat rolls, 808 bass, 140 bpm",
    "solo cello, melancholic, slow vibrato",
    "chiptune arpeggios, 8-bit, upbeat video game",
    "gospel choir with hammond organ",
    "flamenco guitar with hand claps",
    "deep house groove with a warm rhodes chord stab",
    "punk rock, fast power chords, shouted vocals",
    "tabla and sitar raga, meditative",
    "synthwave, retro 80s drums, gated reverb, neon",
    "blues harmonica over a shuffle rhythm",
    "marimba melody, playful, bright",
    "dubstep wobble bass drop",
    "string quartet, baroque counterpoint",
    "afrobeat horns and polyrhythmic percussion",
    "church organ, majestic, cathedral reverb",
    "country fiddle and banjo hoedown",
    "minimal piano, sparse notes, sad",
    "big band swing with trumpets and walking bass",
    "industrial noise percussion, metallic, aggressive",
    "kalimba and soft rain, calm",
    "eurodance synth lead, euphoric, 135 bpm",
    "sax solo",
    "drums",
    "a happy ukulele tune for a summer day at the beach with friends and hand percussion",
    "slow grunge rock with fuzzy guitars, a sludgy bassline and a tired, angry singer in a garage",
)


@dataclass(frozen=True)
class CalibrationPlan:
    """How many inputs of each kind: `images` spectrograms, each noised at the default sampler's
    timesteps (`timesteps` of them, spread from noisiest to cleanest) with a prompt's and the empty
    prompt's embedding."""

    images: int = 8
    timesteps: int = 4
    width: int = 512
    seed: int = 0
    # Guided runs of the default sampler (ONNX Runtime, no torch; the int8 UNet where it is already made, else
    # the fp32 one): their end latents and decoded images join the VAE decoder's and encoder's inputs, a little
    # of what model convert calibrates on (tests/benchmarks/results/calibration-qnn-tiny.md: on held-out guided
    # runs the qnn VAE decoder went from -1.8 to 38.9 dB, convert's 38.9). Their UNet inputs do not join the
    # UNet's: they widened its ranges so that on the HTP back end it lost 3.7-6.2 dB more than under the CPU's
    # emulation, which `model check` refuses.
    guided_runs: int = 0
    # Whether the guided runs' decoded images join the VAE encoder's inputs (6.5 s of fp32 decoding each at full
    # size): only when the encoder is quantised (qnn; int8 keeps it fp32).
    decode_run_ends: bool = True


def check_calibration_images(count: int) -> None:
    available = len(list(IMAGES.glob("*.png")))
    if not 1 <= count <= available:
        raise InvalidInputError(f"--calibration-images {count}: use 1 to {available} (the spectrograms that ship)")


def calibration_images(count: int, width: int) -> list[np.ndarray]:
    """`count` shipped spectrograms as VAE encoder inputs: float32 [1, 3, 512, width] in [-1, 1] (cropped,
    or tiled where an image is narrower), as the engine feeds images (RGB, row 0 the highest frequency)."""
    from PIL import Image

    files = sorted(IMAGES.glob("*.png"))
    if len(files) < count:
        raise ModelBundleError(f"{IMAGES} holds {len(files)} calibration images, {count} are needed: "
                               "reinstall riffstudio")
    images = []
    for path in files[:count]:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        pixels = np.tile(pixels, (1, -(-width // pixels.shape[1]), 1))[:, :width]
        images.append((pixels.transpose(2, 0, 1)[None] / 127.5 - 1.0).astype(np.float32))
    return images


def calibration_feeds(fp32: Mapping[str, Path], tokenizer: Any, scheduler_config: Mapping[str, Any],
                      latent_scale_factor: float, plan: CalibrationPlan = CalibrationPlan(),
                      progress: Callable[[float], None] | None = None,
                      guide_unet: Path | None = None) -> dict[str, list[Feeds]]:
    """Inputs (batch 1, by ONNX input name) for each of the four models, from the fp32 models at
    `fp32[component]`; `tokenizer` is an engine.tokenizer.PromptTokenizer. The guided runs use `guide_unet`
    (a quantised UNet) when given, else the fp32 one."""
    from engine.schedulers.noise import TrainingNoise
    from engine.sessions import SessionSettings, create_session

    images = calibration_images(plan.images, plan.width)
    prompts = [MUSIC_PROMPTS[i % len(MUSIC_PROMPTS)] for i in range(plan.images)]
    ids = tokenizer.encode([*prompts, ""])
    text = create_session(fp32["text_encoder"], SessionSettings())
    embeddings = [text.run(None, {"input_ids": row[None]})[0] for row in ids]
    del text
    encoder = create_session(fp32["vae_encoder"], SessionSettings())
    latents = []
    for number, image in enumerate(images):
        moments = encoder.run(None, {"image": image})[0]
        latents.append(moments[:, : moments.shape[1] // 2].astype(np.float32))  # the mean, before scaling
        if progress:
            progress((number + 1) / len(images))
    del encoder
    alphas = TrainingNoise.from_config(scheduler_config).alphas_cumprod()
    rng = np.random.default_rng(plan.seed)
    unet: list[Feeds] = []
    for number, latent in enumerate(latents):
        x0 = latent * np.float32(latent_scale_factor)
        for t in sampler_timesteps(scheduler_config, plan.timesteps, offset=number):
            noise = rng.standard_normal(x0.shape, dtype=np.float32)
            alpha = np.float32(alphas[round(t)])
            sample = (np.sqrt(alpha) * x0 + np.sqrt(1 - alpha) * noise).astype(np.float32)
            for embedding in (embeddings[number], embeddings[-1]):
                unet.append({"sample": sample, "timestep": np.array([t], dtype=np.float32),
                             "encoder_hidden_states": embedding})
    for run in range(plan.guided_runs):
        end = guided_run(guide_unet or fp32["unet"], embeddings[run % plan.images], embeddings[-1],
                         scheduler_config, plan.width, plan.seed + 1 + run)
        latents.append(end / np.float32(latent_scale_factor))
        if plan.decode_run_ends:
            images.append(_decoded(fp32["vae_decoder"], latents[-1]))
    # Shuffled: the first few (what each quantised model is scored on) span images and noise levels.
    unet = [unet[i] for i in rng.permutation(len(unet))]
    return {"text_encoder": [{"input_ids": row[None]} for row in ids], "unet": unet,
            "vae_decoder": [{"latent": latent} for latent in latents],
            "vae_encoder": [{"image": image} for image in images]}


def guided_run(unet_path: Path, cond: np.ndarray, uncond: np.ndarray, scheduler_config: Mapping[str, Any],
               width: int, seed: int, guidance: float = 7.0) -> np.ndarray:
    """One classifier-free-guided run of the default sampler with the UNet at `unet_path` at batch 1: its end
    latent (scaled, as the sampler leaves it)."""
    from engine.schedulers.registry import make_scheduler
    from engine.sessions import SessionSettings, create_session
    from engine.speeds import DEFAULT_SCHEDULER, DEFAULT_STEPS

    unet = create_session(unet_path, SessionSettings())
    scheduler = make_scheduler(DEFAULT_SCHEDULER, scheduler_config, DEFAULT_STEPS)
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((1, 4, 64, width // 8), dtype=np.float32) * np.float32(scheduler.init_noise_sigma)
    for index, timestep in enumerate(scheduler.timesteps):
        sample = scheduler.scale_model_input(latents, index).astype(np.float32)
        unguided, guided = (unet.run(None, {"sample": sample, "timestep": np.array([timestep], dtype=np.float32),
                                            "encoder_hidden_states": embedding})[0] for embedding in (uncond, cond))
        latents = scheduler.step(unguided + np.float32(guidance) * (guided - unguided), index, latents, rng=rng)
    return latents.astype(np.float32)


def _decoded(vae_decoder: Path, latent: np.ndarray) -> np.ndarray:
    """The fp32 VAE decoder's image of `latent`, in [-1, 1] as the encoder takes images."""
    from engine.sessions import SessionSettings, create_session

    image = create_session(vae_decoder, SessionSettings()).run(None, {"latent": latent})[0]
    return np.clip(image, -1.0, 1.0).astype(np.float32)


def sampler_timesteps(scheduler_config: Mapping[str, Any], count: int, offset: int = 0) -> list[float]:
    """`count` of the default sampler's timesteps (engine/speeds.py), spread from noisiest to cleanest and
    shifted by `offset` places (wrapping), so different images are noised at different steps."""
    from engine.schedulers.registry import make_scheduler
    from engine.speeds import DEFAULT_SCHEDULER, DEFAULT_STEPS

    steps = [float(t) for t in make_scheduler(DEFAULT_SCHEDULER, scheduler_config, DEFAULT_STEPS).timesteps]
    picks = np.round(np.linspace(0, len(steps) - 1, min(count, len(steps)))).astype(int)
    return [steps[(int(p) + offset) % len(steps)] for p in picks]
