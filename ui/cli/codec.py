"""`riffstudio codec encode|decode`: audio <-> riffusion spectrogram images from the command line."""

from __future__ import annotations

import argparse

from engine.choices import QUALITIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "codec", help="convert audio to spectrogram images and back",
        description="Convert between audio and riffusion-model-v1's spectrogram images (512 rows, "
                    "10 ms per column, 0-10 kHz).")
    commands = parser.add_subparsers(dest="codec_command", metavar="ACTION", title="actions", required=True)

    encode = commands.add_parser(
        "encode", help="audio file -> spectrogram image",
        description="Write the spectrogram image of an audio file, exactly as riffusion makes it. Any sample "
                    "rate is resampled to 44.1 kHz. Mono images use the first (left) channel, as riffusion's "
                    "do; --stereo keeps both (R = 0, G = left, B = right).")
    encode.add_argument("input", metavar="IN", help="audio file (.wav, .flac, .ogg, .mp3, ...)")
    encode.add_argument("output", metavar="OUT", help="image to write (.png)")
    encode.add_argument("--stereo", action="store_true", help="keep left and right (riffusion's stereo layout)")
    encode.set_defaults(run=run_encode)

    decode = commands.add_parser(
        "decode", help="spectrogram image -> audio file",
        description="Reconstruct audio from a spectrogram image (riffusion's, or a model's). Parameters come "
                    "from the image's EXIF when present.")
    decode.add_argument("input", metavar="IN", help="spectrogram image (.png)")
    decode.add_argument("output", metavar="OUT", help="audio file to write (.wav, .flac, .aiff, .ogg)")
    decode.add_argument("--quality", choices=QUALITIES, default="standard",
                        help="draft: live preview; standard (default); high: final export")
    decode.add_argument("--seconds", type=float, metavar="S", default=None,
                        help="output length in seconds, 0.5x to 2x the image's own (a time stretch that "
                             "keeps pitch); default: the image's own length, 10 ms per column")
    decode.set_defaults(run=run_decode)


def run_encode(args: argparse.Namespace) -> int:
    from engine.atomic import check_writable, write_errors
    from engine.codec import encode_audio
    from engine.codec.audio_io import load_for_encoding
    from engine.codec.image_file import write_spectrogram_image
    from engine.codec.params import DEFAULT_PARAMS

    check_writable(args.output, inputs=(args.input,))  # before reading and encoding: seconds on a long file
    samples = load_for_encoding(args.input, DEFAULT_PARAMS)
    encoded = encode_audio(samples, DEFAULT_PARAMS.sample_rate, DEFAULT_PARAMS, stereo=args.stereo)
    with write_errors(args.output):
        path = write_spectrogram_image(args.output, encoded)
    height, width = encoded.pixels.shape[:2]
    layout = "stereo" if encoded.stereo else "mono"
    print(f"wrote {path} ({width} x {height}, {layout}, {samples.shape[0] / DEFAULT_PARAMS.sample_rate:.2f} s)")
    return 0


def run_decode(args: argparse.Namespace) -> int:
    import math
    import time

    from engine.atomic import check_writable, write_errors
    from engine.codec import decode_image, natural_length
    from engine.codec.audio_io import audio_format, write_audio
    from engine.codec.image_file import read_spectrogram_image
    from engine.errors import InvalidInputError

    audio_format(args.output)  # the output's format and folder before decoding, which takes seconds at high
    check_writable(args.output, inputs=(args.input,))
    image = read_spectrogram_image(args.input)
    params = image.params
    num_samples = None
    if args.seconds is not None:
        if not math.isfinite(args.seconds) or args.seconds <= 0:
            raise InvalidInputError(f"--seconds {args.seconds:g} must be a positive number of seconds")
        num_samples = round(args.seconds * params.sample_rate)
    start = time.perf_counter()
    audio = decode_image(image.pixels, params, quality=args.quality, num_samples=num_samples,
                         stereo=image.stereo)
    elapsed = time.perf_counter() - start
    with write_errors(args.output):
        path = write_audio(args.output, audio, params.sample_rate)
    seconds = audio.shape[0] / params.sample_rate
    natural = natural_length(image.pixels.shape[1], params) / params.sample_rate
    layout = "stereo" if audio.shape[1] == 2 else "mono"
    print(f"wrote {path} ({seconds:.3f} s, {layout}, {args.quality}, decoded in {elapsed:.2f} s; "
          f"image length {natural:.3f} s)")
    return 0
