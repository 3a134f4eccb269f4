"""A job's results folder: one loop (audio, spectrogram image, sidecar) written by engine/loop_files.py like
every other loop, and the folder appears complete or not at all.

The names inside are the engine's (`loop.<format>`, `loop.png`, `loop.json`); readers find them through
`read_results`, which reads the sidecar, never by guessing. A folder is never overwritten: if it exists,
the job already finished (an engine that died after writing it but before journaling `done`), and
`read_results` adopts it instead of rendering again."""

from __future__ import annotations

from pathlib import Path

from engine.atomic import atomic_path
from engine.errors import StorageError, reason
from engine.loop_files import LoopOnDisk, plain_audio, read_loop, spectrogram_image, write_loop

IMAGE_NAME = "loop.png"
SIDECAR_NAME = "loop.json"


def audio_name(audio_format: str) -> str:
    return f"loop.{audio_format}"


def write_results(folder: Path, loop, generator, audio_format: str) -> LoopOnDisk:
    """Write `loop` (engine.generation.loop.Loop) into `folder`, which must not exist."""
    import soundfile

    if folder.exists():
        raise FileExistsError(f"{folder} exists: results are never overwritten")
    try:
        with atomic_path(folder, directory=True) as temp:
            sidecar = write_loop(temp / audio_name(audio_format), plain_audio(loop.audio, loop.sample_rate),
                                 loop.record(generator), image=temp / IMAGE_NAME,
                                 write_image=spectrogram_image(loop.image))
    except (OSError, soundfile.SoundFileError) as error:  # a full disk: the engine's storage, not a bug
        raise StorageError(f"the engine cannot write this job's results in {folder.parent} ({reason(error, 80)}): "
                           "free some disk space there and run the job again") from None
    # What was just written and hashed, under the folder's final name (not read and hashed again).
    return LoopOnDisk(audio=folder / audio_name(audio_format), image=folder / IMAGE_NAME, sidecar=sidecar)


def results_of(done) -> LoopOnDisk:
    """The finished loop of a `done` event (engine.process.protocol.Done), for a client that uses its files;
    EngineError when they do not read back whole (a disk that lost them since)."""
    from engine.errors import EngineError

    found = read_results(Path(done.folder))
    if found is None or found.image is None:
        raise EngineError(f"the engine's results for job {done.job} in {done.folder} do not read back: run it again")
    return found


def read_results(folder: Path) -> LoopOnDisk | None:
    """The finished loop of a results folder, or None if there is none (or it is incomplete)."""
    return read_loop(folder / SIDECAR_NAME)
