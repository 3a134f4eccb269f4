"""The grid and file options `generate --bpm`, `loop` and batch share: --bpm B | link, --bars N / --beats N,
--meter 3/4, --fit auto|beat|length, --key Am, --bit-depth 16|24|32f, --rate 44100|48000, --normalize LUFS."""

from __future__ import annotations

import argparse
import sys

from engine.choices import BIT_DEPTHS, FIT_MODES, SAMPLE_RATES
from engine.errors import InvalidInputError


def fit_summary(report) -> str:
    """What a fit found, for the `wrote ...` line of `loop` and `generate --bpm`: the fit, the tempo, the key."""
    found = f"tempo found {report.tempo_found:.2f} bpm" if report.tempo_found else "no tempo found"
    from plugin.transpose import summary

    key = f"key {report.key['name']}" if report.key else "no key"
    if report.transposed:
        key = f"{key} ({summary(report.transposed)})" if report.key else summary(report.transposed)
    return f"{report.mode} fit: {found}, {key}, stretch {report.stretch:.3f}"


def add_grid_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    group = parser.add_argument_group("on the grid (DAW-ready loops)")
    group.add_argument("--bpm", required=required, metavar="B|link",
                       help="session tempo: the loop is cut and stretched to whole beats at it; 'link' takes "
                       "it from Ableton Link peers on the network (needs the 'link' extra)")
    length = group.add_mutually_exclusive_group()
    length.add_argument("--bars", type=float, metavar="N", help="length in bars (default 1 with --bpm)")
    length.add_argument("--beats", type=float, metavar="N", help="length in beats instead of bars")
    group.add_argument("--meter", default="4/4", metavar="N/D", help="time signature (default 4/4)")
    group.add_argument("--fit", choices=FIT_MODES, default="auto",
                       help="auto: on the beat when one is found, by length when not (default); "
                       "length: by length alone")
    group.add_argument("--key", metavar="KEY", help="session key, e.g. Am, F#maj, Bb: the loop is transposed into "
                       "it (or its relative, keeping the loop's mode) by at most 6 semitones, tempo kept; a loop "
                       "with no key (drums) is left as it is")
    group.add_argument("--bit-depth", choices=BIT_DEPTHS, default="24", help="WAV/AIFF/FLAC sample format "
                       "(default 24)")
    group.add_argument("--rate", type=int, choices=SAMPLE_RATES, default=44100, help="sample rate (default 44100)")
    group.add_argument("--normalize", type=float, metavar="LUFS",
                       help="loudness target, e.g. -14 (true peak kept below -1 dBTP); default: peak at -1 dBFS")


def grid_options(args: argparse.Namespace):
    """GridOptions from the arguments, or None when --bpm was not given (then the loop is left as painted)."""
    from plugin.grid_loop import GridOptions

    if args.bpm is None:
        for flag in ("bars", "beats", "normalize", "key"):
            if getattr(args, flag, None) is not None:
                raise InvalidInputError(f"--{flag} needs --bpm (the session tempo)")
        return None
    return GridOptions(bpm=resolve_bpm(args.bpm), bars=args.bars, beats=args.beats, meter=args.meter, fit=args.fit,
                       bit_depth=args.bit_depth, sample_rate=args.rate, normalize_lufs=args.normalize,
                       key=getattr(args, "key", None)).validate()


def resolve_bpm(text: str) -> float:
    if str(text).strip().lower() == "link":
        from plugin.link import session_tempo

        bpm = session_tempo()
        print(f"tempo from Ableton Link: {bpm:.2f} bpm", file=sys.stderr)
        return bpm
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"--bpm {text!r} must be a number (e.g. 120) or 'link'") from None
