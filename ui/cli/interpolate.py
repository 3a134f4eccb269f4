"""`riffstudio interpolate`: a chain of loops morphing from one prompt (and seed) to another."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.choices import QUALITIES
from engine.errors import InvalidInputError
from ui.cli.generate import guidance_interval_arg
from ui.cli.provider_args import add_provider_arguments, open_generator


def register(subparsers: argparse._SubParsersAction) -> None:
    from engine.generation.settings import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS

    parser = subparsers.add_parser(
        "interpolate", help="morph from one prompt/seed to another in N clips",
        description="Make COUNT clips moving from START to END (prompt and/or seed), each written as soon as "
        "it is made (clip_01.wav, ...), then the whole chain as one seamless chain.wav, and interpolation.json.")
    parser.add_argument("start", metavar="START_PROMPT")
    parser.add_argument("end", metavar="END_PROMPT", nargs="?", help="default: the start prompt (seed morph)")
    parser.add_argument("--model", required=True, type=Path, metavar="BUNDLE")
    parser.add_argument("--out-dir", required=True, type=Path, metavar="DIR")
    parser.add_argument("--count", type=int, default=5, help="how many clips, ends included (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="start seed (default 0)")
    parser.add_argument("--end-seed", type=int, help="end seed (default: the start seed)")
    parser.add_argument("--negative", default="")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="denoising steps per clip")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--guidance-interval", metavar="LO,HI",
                        help="guide only steps with σ in (LO, HI] (default: the full speed's; 0,1000: every step)")
    parser.add_argument("--scheduler", default=DEFAULT_SCHEDULER)
    parser.add_argument("--width", type=int, default=512)
    add_provider_arguments(parser)
    parser.add_argument("--quality", choices=QUALITIES, default="standard")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.generation.interpolate import interpolation_weights
    from engine.generation.settings import DEFAULT_GUIDANCE_INTERVAL, GenerationSettings

    interval = guidance_interval_arg(args)
    end_prompt = args.end if args.end is not None else args.start
    end_seed = args.end_seed if args.end_seed is not None else args.seed
    start = GenerationSettings(prompt=args.start, negative_prompt=args.negative, seed=args.seed, steps=args.steps,
                               guidance=args.guidance, scheduler=args.scheduler, width=args.width,
                               quality=args.quality,
                               guidance_interval=DEFAULT_GUIDANCE_INTERVAL if interval is None else interval).validate()
    GenerationSettings(prompt=end_prompt, seed=end_seed).validate()
    interpolation_weights(args.count)
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise InvalidInputError(f"{args.out_dir} is a file: give a folder for the clips")

    from engine.atomic import atomic_path, check_writable_folder, write_errors

    check_writable_folder(args.out_dir)  # before the model opens: the first clip is minutes away

    from engine.codec import DEFAULT_PARAMS
    from engine.codec.audio_io import write_audio
    from engine.generation.interpolate import interpolate, join_clips
    from ui.cli.progress import TerminalProgress

    generator = open_generator(args)
    with write_errors(args.out_dir):
        args.out_dir.mkdir(parents=True, exist_ok=True)
    digits = len(str(args.count))

    def save_clip(index: int, image, audio) -> None:
        path = args.out_dir / f"clip_{index + 1:0{digits}d}.wav"
        with write_errors(path):
            write_audio(path, audio, DEFAULT_PARAMS.sample_rate)

    bar = TerminalProgress()
    try:
        clips = interpolate(generator, start, end_prompt, end_seed, args.count, on_clip=save_clip,
                            progress=lambda e: bar(e.stage, e.fraction))
    finally:
        bar.close()
    with write_errors(args.out_dir / "chain.wav"):
        write_audio(args.out_dir / "chain.wav", join_clips(clips), DEFAULT_PARAMS.sample_rate)
    record = {"start": start.to_dict(), "end": {"prompt": end_prompt, "seed": end_seed}, "count": args.count,
              "bundle": generator.bundle.summary(),
              "provider": generator.provider, "clips": [f"clip_{i + 1:0{digits}d}.wav" for i in range(args.count)],
              "chain": "chain.wav"}
    record_path = args.out_dir / "interpolation.json"
    with write_errors(record_path), atomic_path(record_path) as temp:
        temp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"wrote {args.count} clips and chain.wav to {args.out_dir}")
    return 0
