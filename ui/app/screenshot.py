"""Render the main window to a PNG, for the README:

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m ui.app.screenshot docs/screenshot.png
    xvfb-run -a -s "-screen 0 1600x1000x24" python -m ui.app.screenshot --size 1280x720 docs/screenshot-laptop.png
    xvfb-run -a -s "-screen 0 1600x1000x24" python -m ui.app.screenshot --size 560x900 docs/screenshot-narrow.png

A real window on a real X server (real fonts, the real theme), in a private temporary home so it never
touches your library. Its content is demo content: this project has no trained weights in the repo (the
tests use a random-weight model that paints noise), so the library is filled with the test clips
(tests/data) run through the spectrogram codec into the engine's own results layout, and the app adopts
them at start exactly as it adopts loops the engine finished while it was closed. The queue shows one
job mid-way, drawn with the same row widget the engine's progress drives.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from engine.speeds import SPEED_PRESETS

REPO = Path(__file__).resolve().parents[2]
CLIPS = [
    ("funky slap bass, 100 bpm", "rock.wav", 0.0, 100, 2, 4, True),
    ("dusty boom bap drums, vinyl crackle", "drums.wav", 0.0, 90, 2, 5, True),
    ("lofi piano, rain, warm tape", "piano.wav", 0.0, 80, 2, 4, False),
    ("128 bpm techno groove, rolling hats", "drums.wav", 1.5, 128, 4, 3, False),
    ("jazz guitar comping, late night", "riffusion/clip_2_start_103694_ms_duration_5678_ms.wav", 0.0, 110, 2, 5,
     True),
    ("cinematic piano swell", "piano.wav", 2.0, 70, 1, 0, False),
    ("garage rock riff, overdriven", "rock.wav", 2.5, 120, 2, 3, False),
    ("spoken word over a breakbeat", "speech.wav", 0.0, 95, 2, 0, False),
]


def _private_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="rs-shot-"))
    for name in ("XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        folder = home / name.split("_")[1].lower()
        folder.mkdir(mode=0o700)
        os.environ[name] = str(folder)
    return home


def _fill_results(results: Path) -> list[str]:
    """One engine-layout results folder per demo clip (loop.wav, loop.png, loop.json), written by the one loop
    writer (engine/loop_files.py), so the app adopts them as it adopts the engine's own."""
    from engine.codec import DEFAULT_PARAMS, encode_audio
    from engine.codec.audio_io import read_audio
    from engine.codec.image_file import write_spectrogram_image
    from engine.loop_files import plain_audio, write_loop
    from engine.process.results import IMAGE_NAME, audio_name

    jobs = []
    now = time.time()
    for number, (prompt, clip, start_s, _bpm, _bars, _rating, _fav) in enumerate(CLIPS):
        samples, rate = read_audio(REPO / "tests" / "data" / "audio" / clip) if "/" not in clip \
            else read_audio(REPO / "tests" / "data" / clip)
        mono = samples.mean(axis=1, keepdims=True) if samples.ndim == 2 else samples[:, None]
        first = int(start_s * rate)
        mono = mono[first:first + int(5.11 * rate)]
        encoded = encode_audio(mono, rate, DEFAULT_PARAMS)
        job = f"demo{number:02d}"
        folder = results / job
        folder.mkdir(parents=True)
        settings = {"prompt": prompt, "negative_prompt": "", "seed": 1000 + number * 7919, "guidance": 7.0,
                    "width": 512, "init_audio": None, "strength": 0.75, **SPEED_PRESETS["full"]}
        write_loop(folder / audio_name("wav"), plain_audio(mono, rate),
                   {"settings": settings, "bundle": {"identity": "demo"}, "provider": "cpu"},
                   image=folder / IMAGE_NAME, write_image=lambda path, encoded=encoded: write_spectrogram_image(
                       path, encoded))
        os.utime(folder, (now - number * 1900, now - number * 1900))
        jobs.append(job)
    return jobs


def render(out: Path, theme: str = "dark", size: tuple[int, int] = (1480, 860)) -> None:
    home = _private_home()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from engine.process.paths import results_dir
    from ui.app.library import Intent, Library
    from ui.app.settings import AppSettings
    from ui.app.theme import apply_theme
    from ui.app.window import MainWindow, library_path

    jobs = _fill_results(results_dir())
    library = Library(library_path())
    for job, (_p, _c, _s, bpm, bars, _r, _f) in zip(jobs, CLIPS, strict=True):
        library.remember_intent(job, Intent(bpm=bpm, bars=bars))
    library.close()

    app = QApplication(sys.argv[:1])
    apply_theme(app, theme)
    window = MainWindow(AppSettings(export_dir=str(home / "exports"), theme=theme))
    window.set_bundle(str(home / "riffusion-v1-int8"), check=False)
    window.model_label.setText("Model: riffusion-v1-int8 · runs on the CPU")
    for job, (_p, _c, _s, _b, _bars, rating, favourite) in zip(jobs, CLIPS, strict=True):
        window.library.set_rating(job, rating)
        window.library.set_favourite(job, favourite)
    window.refresh_library()
    window.resize(*size)
    window.show()
    first = window.library.get(jobs[0])
    window._show_loop(first)
    window._select_in_library(jobs[0])
    window.result_pane.set_playhead(1.9)
    window.generate_panel.prompt.setText("funky slap bass, 100 bpm")
    window.generate_panel.negative.setText("vocals")
    window.generate_panel.bpm.setValue(100)

    from PySide6.QtGui import QImage

    from ui.app.spectrogram_view import coloured

    for job in reversed(jobs[1:4]):
        loop = window.library.get(job)
        row = window.queue.add(job, loop.prompt)
        row.set_preview(coloured(QImage(loop.image), "heat").scaled(64, 64))
        row.finish("done", f"done in {2.1 + len(loop.prompt) % 5 * 0.7:.1f} s · seed {loop.seed}")
    running = window.queue.add("demo-running", "funky slap bass, 100 bpm")
    running.set_progress("denoise", 0.6)
    running.set_preview(coloured(QImage(first.image), "heat").scaled(64, 64))

    def grab() -> None:
        if not all(window.library.get(job).export for job in jobs):  # the DAW files, written on workers
            QTimer.singleShot(200, grab)
            return
        window.statusBar().showMessage(f"Ready to drag: {Path(window.library.get(jobs[0]).export).name}")
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        print(f"wrote {out}")
        window.shutdown()
        app.quit()

    QTimer.singleShot(800, grab)
    app.exec()


def window_size(text: str) -> tuple[int, int]:
    """"560x900" -> (560, 900)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 560x900") from None
    if width < 200 or height < 200:
        raise argparse.ArgumentTypeError(f"{text!r} is smaller than 200x200")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.app.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--theme", choices=("dark", "light"), default="dark")
    parser.add_argument("--size", type=window_size, default=(1480, 860), metavar="WxH",
                        help="the window's size (default 1480x860; 560x900 is the strip beside a DAW)")
    args = parser.parse_args(argv)
    render(args.out, args.theme, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
