"""Loops the app did not see finish join the library, each as it was written, with its sidecar.

Three kinds, read from files alone (no engine needed), in this order at every start:

1. loops written by `riffstudio generate --engine` and batch output folders, from the registry the CLI and
   batch keep (plugin/made_loops.py): each loop file read back and verified with engine.loop_files.read_loop,
   so it comes in gridded as written (BPM and bars from its sidecar's grid, its length the file's), its DAW
   file the file itself, and a batch's loops as a collection named after the preset file;
2. the engine's results folders the library does not have yet (`import_results`): the app's own jobs that
   finished while it was closed, and loops of other engine clients.

Why that order: a CLI or batch loop is fitted from an engine job whose results folder holds the raw
painting; the library records that job (`engine_job`) with the loop, so step 2 leaves it out, instead of
adopting the 5.1 s painting as a loop of its own (what #26 saw). A painting adopted before its loop was
registered (the app started while the CLI was fitting) gives way to the loop, keeping its rating.

A loop from outside the app is listed under a job id of its own, "file:" and its audio's absolute path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ui.app.library import Library

FILE_JOB = "file:"

__all__ = ["batch_loops", "file_job", "import_batch", "import_loop_file", "import_made_elsewhere", "import_results"]


def file_job(audio: str | Path) -> str:
    """The library's job id of a loop file written outside the app."""
    return FILE_JOB + str(Path(audio).resolve())


def import_made_elsewhere(library: Library) -> list[str]:
    """Every registered `generate --engine` loop and batch folder's loops the library does not have yet; their
    job ids."""
    from plugin.made_loops import made_loops

    added: list[str] = []
    known = library.known_jobs()  # read once: a start with thousands of registered loops reads files only for new ones
    for made in made_loops():
        if made.batch:
            added += import_batch(library, made.path, known=known)
        else:
            job = import_loop_file(library, made.path, origin="cli", engine_job=made.engine_job, known=known)
            added += [job] if job else []
    return added


def import_batch(library: Library, out_dir: str | Path, *, known: set[str] | None = None) -> list[str]:
    """The loops of a batch output folder (OUT/<preset>/<loop> with its sidecar, plugin/batch.py) the library does
    not have yet, as a collection named after their preset file; their job ids. For the in-app batch runner
    to call when a run ends (the app's next start finds every registered folder by itself)."""
    added = []
    known = known if known is not None else library.known_jobs()
    for audio, collection in batch_loops(out_dir, known=known):
        job = import_loop_file(library, audio, origin="batch", collection=collection, known=known)
        added += [job] if job else []
    return added


def batch_loops(out_dir: str | Path, *, known: set[str] | None = None) -> list[tuple[Path, str]]:
    """The loop files a batch output folder holds so far, each with its collection (its preset file's stem),
    as their sidecars say (the summary and foreign files are not loops). With `known` (job ids), a loop whose
    audio beside its sidecar is known already is left out unread: the app looks again at every batch folder
    when a loop lands, and reading a thousand sidecars each time took a second."""
    from engine.choices import LOOP_FILE_FORMATS

    found = []
    for sidecar in sorted(Path(out_dir).resolve().glob("*/*.json")):  # resolved once: each job id is the path
        if known and any(FILE_JOB + str(sidecar.with_suffix(f".{suffix}")) in known for suffix in LOOP_FILE_FORMATS):
            continue
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            audio, presets = sidecar.with_name(data["audio"]["file"]), str(data["batch"]["presets"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a batch loop (the summary, a foreign file)
        found.append((audio, Path(presets).stem))
    return found


def import_loop_file(library: Library, audio: str | Path, *, origin: str, collection: str = "",
                     engine_job: str = "", known: set[str] | None = None) -> str:
    """The finished loop at `audio` (verified: its sidecar reads back and names this audio with its hash) as a
    library loop whose DAW file is itself; its job id, or "" when the library has it (or forgot it) already
    or the file is not a whole loop."""
    from engine.loop_files import read_loop

    job = file_job(audio)
    if job in (known if known is not None else library.known_jobs()):
        return ""
    found = read_loop(audio)
    if found is None:
        return ""
    engine_job = engine_job or str(found.sidecar.get("engine_job") or "")
    paths = found.paths()
    if "image" not in paths and engine_job:
        paths.update(_painting_of(engine_job))
    library.add_result(job, paths, found.sidecar, export=str(found.audio.resolve()),
                       created=found.sidecar_file.stat().st_mtime, origin=origin, collection=collection,
                       engine_job=engine_job)
    if known is not None:
        known.add(job)
    if engine_job:
        library.replace_adopted(engine_job, job)
    return job


def _painting_of(engine_job: str) -> dict[str, str]:
    """{"image": the engine job's painting} when its results folder still holds one, else {}: the spectrogram a
    CLI or batch loop shows in the library (their writers keep only the audio and sidecar the producer asked
    for); a loop made in the CLI's own process has none."""
    from engine.process.paths import results_dir
    from engine.process.results import read_results

    found = read_results(results_dir() / engine_job) if engine_job.replace("-", "").isalnum() else None
    return {"image": str(found.image.resolve())} if found is not None and found.image is not None else {}


def import_results(library: Library, results_dir: Path, *, known: Iterable[str] | None = None) -> list[str]:
    """Adopt every complete results folder the library does not have yet (loops the engine finished while
    the app was closed, or after it lost track), except those a CLI or batch loop came from; returns their
    job ids."""
    from engine.process.results import read_results

    known_set = set(known if known is not None else library.known_jobs())
    asked = set(library.pending_jobs())  # the app's own jobs; the rest came from another engine client
    added: list[str] = []
    if not results_dir.is_dir():
        return added
    for folder in sorted(results_dir.iterdir()):
        if folder.name in known_set or not folder.is_dir():
            continue
        found = read_results(folder)
        if found is None:
            continue
        library.add_result(folder.name, found.paths(), found.sidecar, created=folder.stat().st_mtime,
                           origin="app" if folder.name in asked else "engine")
        added.append(folder.name)
    return added
