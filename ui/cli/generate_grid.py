"""`riffstudio generate ... --bpm B --bars N`: paint enough image for the bars, then fit it onto the grid."""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import replace


def run_generate_on_grid(args: argparse.Namespace, settings, noise) -> int:
    from engine.bundle import open_bundle
    from engine.errors import InvalidInputError
    from plugin.grid_loop import check_grid_outputs, fit_image, paint_width, write_grid_loop
    from ui.cli.generate import input_files
    from ui.cli.grid_args import fit_summary, grid_options
    from ui.cli.progress import TerminalProgress

    options = grid_options(args)
    check_grid_outputs(args.out, options, input_files(args))
    if args.image is not None:
        from engine.atomic import check_writable

        if args.image.suffix.lower() != ".png":
            raise InvalidInputError(f"cannot write the spectrogram to {args.image.name}: use a .png file name")
        check_writable(args.image, inputs=(args.out, *input_files(args)))
    manifest = open_bundle(args.model).manifest
    if noise is None:  # given latents fix the width; otherwise paint as much as the bars need
        width = manifest.image_width if manifest.fixed_shapes else paint_width(
            options.grid(), settings.width, min_width=manifest.min_image_width, max_width=manifest.max_image_width,
            width_step=manifest.width_step)
        settings = replace(settings, width=width)
    bar = TerminalProgress()
    try:
        rendered = _render(args, settings, noise, bar)
        image, record = rendered.image, rendered.record
        bar("fitting to the grid", 1.0)
        fitted = fit_image(image, options, analysis_audio=rendered.audio, analysis_rate=rendered.sample_rate,
                           quality=settings.quality)
    finally:
        bar.close()
    for note in record.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    seed = record.get("settings", {}).get("seed")
    sidecar = write_grid_loop(args.out, fitted, options, record, prompt=settings.prompt, seed=seed, image=args.image,
                              pixels=image)
    from ui.cli.generate import remembered

    remembered(args.out, record.get("engine_job"))  # the app's library lists it
    report = fitted.report
    print(f"wrote {args.out} (seed {seed}, {sidecar['audio']['samples']} samples = {float(fitted.grid.bars):g} bars "
          f"at {fitted.grid.bpm:g} bpm; {fit_summary(report)})")
    if report.mode == "length":
        print(f"note: {report.reason}", file=sys.stderr)
    return 0


def _render(args: argparse.Namespace, settings, noise, bar):
    """The painted loop, through batch's renderers: the engine's (with --engine) or this process's."""
    from pathlib import Path

    from engine.errors import InvalidInputError
    from plugin.batch import EngineRenderer, InProcessRenderer
    from plugin.presets import BatchItem
    from ui.cli.provider_args import npu_options

    if settings.init_audio:
        settings = replace(settings, init_audio=str(Path(settings.init_audio).resolve()))
    item = BatchItem(key=uuid.uuid4().hex, preset=0, folder="", settings=settings, options=None, audio_format="wav",
                     bundle=str(Path(args.model).resolve()), provider=args.provider, session_options=npu_options(args))
    if not getattr(args, "engine", False):
        renderer = InProcessRenderer(initial_noise=noise, say=lambda line: print(line, file=sys.stderr))
        return renderer.render(item, bar)
    if noise is not None:
        raise InvalidInputError("--latents cannot go through the engine: leave out --engine")
    from engine.client import EngineClient
    from ui.cli.engine import say_engine_notes

    with EngineClient(name="riffstudio-generate") as client:
        say_engine_notes(client)
        return EngineRenderer(client).render(item, bar, priority="interactive")
