"""Where loops made outside the app were written: `riffstudio generate --engine` files and batch output folders,
one line each in a small registry in the user data dir, so the app's library lists them as they were written.

Why a registry: the engine only knows its own results folder, where it leaves the raw painting of every job;
the loop a producer keeps (fitted to the grid, named, with its sidecar) is written by the CLI or batch where
they asked. Without this the app adopted the raw 5.1 s painting and never saw the loop itself, nor any batch.
The library (ui/app/library_imports.py) reads each registered loop with engine.loop_files.read_loop and
leaves the engine job it came from (`engine_job`) out.

Append-only JSON lines, each written in one call (so two runs finishing together do not interleave a line);
a reader skips a line it cannot read. Recording never fails a run: the loop is written already, and the
one-line note says why the app will not list it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REGISTRY_NAME = "made-loops.jsonl"


@dataclass(frozen=True)
class Made:
    """A registered loop file, or a batch output folder (`batch`), with the engine job a loop came from."""

    path: Path
    batch: bool = False
    engine_job: str = ""


def registry_path() -> Path:
    """The registry, in the user data dir beside the app's library (platformdirs, as the rest of the app)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("riffstudio", appauthor=False)) / REGISTRY_NAME


def remember_loop(audio: str | os.PathLike[str], *, engine_job: str | None = None) -> str:
    """Record a finished loop file (its audio) for the app's library; returns "" or a one-line note."""
    return _append({"loop": str(Path(audio).resolve()), "engine_job": engine_job or ""})


def remember_batch(out: str | os.PathLike[str]) -> str:
    """Record a batch output folder (OUT/<preset>/<loop> with sidecars); returns "" or a one-line note."""
    return _append({"batch": str(Path(out).resolve())})


def made_loops() -> list[Made]:
    """Everything registered, each path once (the latest line for it), in the order first registered."""
    found: dict[tuple[bool, str], Made] = {}
    try:
        lines = registry_path().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
            if "batch" in entry:
                made = Made(Path(str(entry["batch"])), batch=True)
            else:
                made = Made(Path(str(entry["loop"])), engine_job=str(entry.get("engine_job") or ""))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        found[(made.batch, str(made.path))] = made
    return list(found.values())


def _append(entry: dict[str, str]) -> str:
    path = registry_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as error:
        return f"the app's library will not list this (cannot write {path}: {error.strerror or error})"
    return ""
