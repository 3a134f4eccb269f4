"""Finished jobs for the library tests: a results folder written by the one loop writer (engine/loop_files.py),
handed to the window as the controller hands a finished job (its `job_queued` and `job_done` signals), so the
window's own wiring files it in the library. No engine: the files are real, the painting is silence."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

_jobs = itertools.count(1)


def write_result(folder: Path, settings: dict, *, seconds: float = 0.5, key: dict | None = None) -> dict:
    """A results folder as the engine leaves it (loop.wav, loop.png, loop.json); returns the loop's paths."""
    from engine.loop_files import plain_audio, spectrogram_image, write_loop

    folder.mkdir(parents=True)
    pixels = np.full((512, 64, 3), 90, np.uint8)
    record = {"settings": settings, **({"fit": {"key": key}} if key else {})}
    write_loop(folder / "loop.wav", plain_audio(np.zeros((int(44100 * seconds), 2), np.float32), 44100), record,
               image=folder / "loop.png", write_image=spectrogram_image(pixels))
    return {"audio": str(folder / "loop.wav"), "image": str(folder / "loop.png"), "sidecar": str(folder / "loop.json")}


def finish(window, request, tmp_path: Path, *, seed: int | None = None, export: str = "",
           key: dict | None = None) -> str:
    """`request` (a JobRequest the window asked for) queued and finished as the controller reports it (with the
    seed the engine used: `seed`, else the request's); its job."""
    import json

    from ui.app.controller import FinishedJob

    job = f"job{next(_jobs)}"
    settings = {"prompt": "warm keys", **request.settings}
    settings["seed"] = seed if seed is not None else settings.get("seed", 1)
    paths = write_result(tmp_path / "results" / job, settings, key=key)
    window.controller.job_queued.emit(job, request)
    sidecar = json.loads(Path(paths["sidecar"]).read_text())
    window.controller.job_done.emit(job, FinishedJob(job=job, paths=paths, sidecar=sidecar, export=export))
    return job
