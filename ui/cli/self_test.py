"""`riffstudio --self-test [--json] [--model BUNDLE]`: prove this install (or app folder) works here.

A top-level flag rather than a sub-command, because it is what support asks for first and what the
packaging build runs inside the built app. `riffstudio --qt-probe` (hidden) is the child process the
Qt check opens a window in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riffstudio --self-test",
        description="Check that riffstudio works on this machine: Python, ONNX Runtime and its providers, "
        "the QNN NPU provider, Qt, audio output, WAV files, the engine process and (given a model "
        "bundle, or the one the app is set to) one short loop. Exit code 1 when a check fails.")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the report")
    parser.add_argument("--model", type=Path, metavar="BUNDLE",
                        help="also generate one short loop with this bundle (default: the app's bundle, if set)")
    parser.add_argument("--no-loop", action="store_true", help="skip the loop even if a bundle is configured")
    return parser


def main(argv: Sequence[str]) -> int:
    from engine.process.launch import riffstudio_command
    from engine.version import __version__
    from ui.selftest import checks
    from ui.selftest.engine_checks import configured_bundle, engine_checks
    from ui.selftest.report import SelfTestReport

    args = build_parser().parse_args(argv)
    bundle = None if args.no_loop else (args.model or configured_bundle())
    results = [
        checks.timed("python", checks.python_platform),
        checks.timed("onnxruntime", checks.onnx_runtime),
        checks.timed("qnn", checks.qnn_provider),
        checks.timed("qt", lambda: checks.qt_window([*riffstudio_command(), "--qt-probe"])),
        checks.timed("audio", checks.audio_output),
        checks.timed("wav", checks.wav_round_trip),
        checks.timed("codec", checks.spectrogram_codec),
        *engine_checks(bundle),
    ]
    report = SelfTestReport(__version__, tuple(results))
    print(report.to_json() if args.json else report.render(), flush=True)
    return 0 if report.ok else 1


def qt_probe() -> int:
    from ui.selftest.qt_probe import main as probe

    return probe()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
