"""`riffstudio loop IN --bpm B --bars N --out OUT.wav`: any audio file (or a spectrogram image) onto the grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.choices import QUALITIES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def register(subparsers: argparse._SubParsersAction) -> None:
    from ui.cli.grid_args import add_grid_arguments

    parser = subparsers.add_parser(
        "loop", help="fit an audio file or spectrogram image to the grid (bpm, bars) as a seamless loop",
        description="Find the tempo and beat of IN, cut a span of whole beats starting on a strong hit, stretch "
        "it (pitch kept) to exactly the bars asked for at the session tempo, and write a loop that wraps "
        "without a click, with the chunks DAWs read (acid, smpl, cue markers, INFO) and a JSON sidecar.")
    parser.add_argument("input", type=Path, metavar="IN", help="audio file (.wav, .flac, .mp3...) or spectrogram image")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT.wav", help=".wav, .flac or .aiff")
    parser.add_argument("--quality", choices=QUALITIES, default="standard",
                        help="audio decoding quality")
    add_grid_arguments(parser, required=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from engine.codec import DEFAULT_PARAMS, encode_audio
    from engine.codec.audio_io import load_for_encoding
    from engine.codec.image_file import read_spectrogram_image
    from plugin.grid_loop import check_grid_outputs, fit_image, write_grid_loop
    from ui.cli.grid_args import fit_summary, grid_options

    options = grid_options(args)
    check_grid_outputs(args.out, options, inputs=(args.input,))
    start = time.perf_counter()
    if args.input.suffix.lower() in IMAGE_SUFFIXES:
        image = read_spectrogram_image(args.input)
        params, pixels, stereo = image.params, image.pixels, image.stereo
        analysis, analysis_rate = None, None
    else:
        params = DEFAULT_PARAMS
        samples = load_for_encoding(args.input, params)
        stereo = samples.shape[1] >= 2
        encoded = encode_audio(samples[:, :2], params.sample_rate, params, stereo=stereo)
        pixels, analysis, analysis_rate = encoded.pixels, samples, params.sample_rate
    fitted = fit_image(pixels, options, analysis_audio=analysis, analysis_rate=analysis_rate, quality=args.quality,
                       stereo=stereo, params=params)
    record = {"source": {"file": str(args.input.name)}, "settings": {"quality": args.quality}}
    sidecar = write_grid_loop(args.out, fitted, options, record)
    report = fitted.report
    print(f"wrote {args.out} ({sidecar['audio']['samples']} samples, {float(fitted.grid.bars):g} bars at "
          f"{fitted.grid.bpm:g} bpm; {fit_summary(report)}, confidence {report.tempo_confidence:.2f}; "
          f"{time.perf_counter() - start:.1f} s)")
    if report.mode == "length":
        print(f"note: {report.reason}")
    return 0
