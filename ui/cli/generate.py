"""`riffstudio generate`: a prompt becomes a loop (WAV), its spectrogram (PNG) and a JSON sidecar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from engine.choices import QUALITIES
from engine.errors import InvalidInputError
from ui.cli.provider_args import add_provider_arguments, open_generator


def register(subparsers: argparse._SubParsersAction) -> None:
    from engine.generation.settings import (
        DEFAULT_GUIDANCE,
        DEFAULT_GUIDANCE_INTERVAL,
        DEFAULT_SCHEDULER,
        DEFAULT_STEPS,
        DEFAULT_STRENGTH,
        DRAFT_STEPS,
        SPEED_PRESETS,
    )

    parser = subparsers.add_parser(
        "generate", help="make a loop from a text prompt",
        description="Make a loop from a text prompt with a model bundle. Writes LOOP (audio), a JSON "
        "sidecar beside it with every setting (LOOP with .json), and optionally the spectrogram image.")
    parser.add_argument("prompt", metavar="PROMPT")
    parser.add_argument("--model", required=True, type=Path, metavar="BUNDLE", help="model bundle folder")
    parser.add_argument("--out", required=True, type=Path, metavar="LOOP.wav", help=".wav, .flac, .aiff or .ogg")
    parser.add_argument("--image", type=Path, metavar="SPEC.png", help="also save the spectrogram image")
    parser.add_argument("--negative", default="", metavar="TEXT", help="what the loop should not sound like")
    parser.add_argument("--seed", type=int, help="fixes the result (default: a random seed, recorded)")
    parser.add_argument("--speed", choices=tuple(SPEED_PRESETS), default="full",
                        help=f"full (default: {DEFAULT_SCHEDULER}, {DEFAULT_STEPS} steps, guided where σ > "
                        f"{DEFAULT_GUIDANCE_INTERVAL[0]:g}) or draft (a quick preview: {DRAFT_STEPS} steps, the "
                        "same guidance interval, draft audio; refine it with the same --seed at full); --steps, "
                        "--scheduler, --quality and --guidance-interval override it")
    parser.add_argument("--steps", type=int, help=f"denoising steps (default {DEFAULT_STEPS})")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                        help=f"how closely to follow the prompt (default {DEFAULT_GUIDANCE:g})")
    parser.add_argument("--guidance-interval", metavar="LO,HI",
                        help="guide only steps with noise level σ in (LO, HI], e.g. 0.3,5; the others run "
                        "one unguided UNet call (default: the speed's; 0,1000 guides every step)")
    parser.add_argument("--scheduler", help=f"sampler (default {DEFAULT_SCHEDULER})")
    parser.add_argument("--width", type=int, default=512, help="image width in px, multiple of 8 (512 = 5.1 s)")
    add_provider_arguments(parser)
    parser.add_argument("--latents", type=Path, metavar="FILE.npy",
                        help="initial noise, float32 [1, 4, 64, width/8] (to compare with other tools)")
    parser.add_argument("--init-audio", type=Path, metavar="FILE", help="riff on this loop (audio-to-audio)")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH,
                        help=f"with --init-audio: 0 keeps it, 1 ignores it (default {DEFAULT_STRENGTH:g})")
    parser.add_argument("--quality", choices=QUALITIES,
                        help="audio decoding quality (default standard)")
    parser.add_argument("--engine", action="store_true",
                        help="run in the engine process (started if needed; keeps the model warm between runs)")
    from ui.cli.grid_args import add_grid_arguments

    add_grid_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.generation.settings import GenerationSettings, at_speed

    settings = at_speed(GenerationSettings(
        prompt=args.prompt, negative_prompt=args.negative, seed=args.seed, guidance=args.guidance, width=args.width,
        init_audio=str(args.init_audio) if args.init_audio else None, strength=args.strength), args.speed,
        {"steps": args.steps, "scheduler": args.scheduler, "quality": args.quality,
         "guidance_interval": guidance_interval_arg(args)})
    settings.validate()
    check_output_paths(args.out, args.image, input_files(args))
    noise = read_latents(args.latents) if args.latents else None
    if getattr(args, "bpm", None) is None:  # grid options (--bars, --key...) without a tempo: refused, not ignored
        from ui.cli.grid_args import grid_options

        grid_options(args)
    else:  # on the grid: plugin's fitting (ui/cli/generate_grid.py)
        from ui.cli.generate_grid import run_generate_on_grid

        return run_generate_on_grid(args, settings, noise)
    if getattr(args, "engine", False):
        from ui.cli.engine import run_generate_in_engine

        return run_generate_in_engine(args, settings)

    from engine.generation.loop import render_loop
    from ui.cli.progress import TerminalProgress

    generator = open_generator(args)
    bar = TerminalProgress()
    try:
        loop = render_loop(generator, settings, initial_noise=noise,
                           progress=lambda e: bar(f"{e.stage} {e.step}/{e.total}", e.fraction))
    finally:
        bar.close()
    for note in loop.result.notes:
        print(f"note: {note}", file=sys.stderr)
    write_loop_files(loop, generator, args.out, args.image)
    remembered(args.out, None)
    timings = loop.result.timings
    print(f"wrote {args.out} (seed {loop.result.settings.seed}, {loop.audio.shape[0] / loop.sample_rate:.2f} s, "
          f"{timings.get('denoise_s', 0) + timings.get('vae_decode_s', 0) + timings.get('audio_s', 0):.1f} s)")
    return 0


def guidance_interval_arg(args: argparse.Namespace) -> tuple[float, float] | None:
    """--guidance-interval LO,HI as numbers (generate and interpolate), or None when not given."""
    from engine.generation.guidance import parse_guidance_interval

    text = getattr(args, "guidance_interval", None)
    return None if text is None else parse_guidance_interval(text)


def check_output_paths(out: Path, image: Path | None, inputs: Iterable[Path | None] = ()) -> None:
    """Refuse, before the model is even opened, any output that could not be written after generating, or
    that is one of the files the command reads (`inputs`)."""
    from engine.atomic import check_writable
    from engine.codec.audio_io import audio_format
    from engine.loop_files import sidecar_path

    audio_format(out)
    if image is not None and image.suffix.lower() != ".png":
        raise InvalidInputError(f"cannot write the spectrogram to {image.name}: use a .png file name")
    if out.is_dir():
        raise InvalidInputError(f"{out} is a folder: give a file name such as {out / 'loop.wav'}")
    for path in (out, sidecar_path(out), *([image] if image is not None else [])):
        check_writable(path, inputs=inputs)


def input_files(args: argparse.Namespace) -> tuple[Path | None, ...]:
    """The files `generate` reads: an output may be none of them."""
    return (args.init_audio, args.latents)


def read_latents(path: Path):
    import numpy as np

    try:
        latents = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"cannot read latents from {path} ({error}): give a .npy file of "
                                "float32 [1, 4, 64, width/8]") from None
    return latents.astype(np.float32) if latents.dtype == np.float64 else latents


def remembered(out: Path, engine_job: str | None) -> None:
    """The loop at `out` recorded for the app's library (plugin/made_loops.py: every loop `generate` writes,
    in this process or through the engine, on the grid or not), or a note why not."""
    from plugin.made_loops import remember_loop

    note = remember_loop(out, engine_job=engine_job)
    if note:
        print(f"note: {note}", file=sys.stderr)


def write_loop_files(loop, generator, out: Path, image: Path | None) -> dict:
    """The loop as painted at `out` (and its image at `image`), through the one loop writer; its sidecar."""
    from engine.atomic import write_errors
    from engine.loop_files import plain_audio, spectrogram_image, write_loop

    with write_errors(out):
        return write_loop(out, plain_audio(loop.audio, loop.sample_rate), loop.record(generator), image=image,
                          write_image=spectrogram_image(loop.image) if image is not None else None)
