"""The library: every loop the producer made, in SQLite in the user data dir, searchable with FTS5.

Why SQLite and not a folder scan: search, favourites and ratings must be instant on thousands of loops,
and survive app restarts and engine crashes. The audio and image stay in the engine's results folder
(written atomically by the engine); the library stores paths plus what the producer adds (rating,
favourite, BPM/bars). `import_results` adopts results the engine finished while the app was closed.

Pure Python (sqlite3, json): no Qt here, so it is tested and reused without a window.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS loops (
    job TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    negative TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL,          -- GenerationSettings as JSON (the seed actually used)
    seed INTEGER,
    bundle_identity TEXT NOT NULL DEFAULT '',
    folder TEXT NOT NULL,
    audio TEXT NOT NULL,
    image TEXT NOT NULL,
    export TEXT NOT NULL DEFAULT '',  -- the WAV in the permanent export folder (what a drag hands out)
    duration_s REAL NOT NULL DEFAULT 0,
    bpm REAL,
    bars REAL,
    rating INTEGER NOT NULL DEFAULT 0,
    favourite INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS loops_fts USING fts5(job UNINDEXED, prompt, negative);
CREATE TABLE IF NOT EXISTS pending (   -- submitted, not finished: the app's own choices for the result
    job TEXT PRIMARY KEY,
    intent TEXT NOT NULL               -- JSON: bpm, bars
);
"""


@dataclass(frozen=True)
class LibraryLoop:
    """One finished loop as the library shows it."""

    job: str
    prompt: str
    negative: str
    settings: dict[str, Any]
    seed: int | None
    bundle_identity: str
    folder: str
    audio: str
    image: str
    export: str
    duration_s: float
    bpm: float | None
    bars: float | None
    rating: int
    favourite: bool
    created: float

    @property
    def drag_file(self) -> str:
        """The file a drag or copy hands to the DAW: the finished export in the export folder, or "" when there
        is none (its export failed, or the file was moved): never the engine's own results WAV, which a DAW
        project would then point into and lose when results are cleared."""
        return self.export if self.export and Path(self.export).is_file() else ""

    @property
    def playable_file(self) -> str:
        """What the app itself plays and reveals: the export, else the engine's WAV."""
        return self.drag_file or self.audio


@dataclass(frozen=True)
class Intent:
    """What the app asked for beyond GenerationSettings (kept until the job is done)."""

    bpm: float | None = None
    bars: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Library:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path))
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- writing -------------------------------------------------------------------------------------

    def remember_intent(self, job: str, intent: Intent) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?)",
                             (job, json.dumps({"bpm": intent.bpm, "bars": intent.bars, **intent.extra})))

    def pending_jobs(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT job FROM pending")]

    def intent(self, job: str) -> Intent:
        row = self._db.execute("SELECT intent FROM pending WHERE job = ?", (job,)).fetchone()
        if row is None:
            return Intent()
        data = json.loads(row[0])
        return Intent(bpm=data.pop("bpm", None), bars=data.pop("bars", None), extra=data)

    def add_result(self, job: str, paths: dict[str, str], sidecar: dict[str, Any], *, export: str = "",
                   created: float | None = None) -> LibraryLoop:
        """A finished job (its results folder's paths and sidecar); idempotent."""
        existing = self.get(job)
        if existing is not None:
            return existing
        intent = self.intent(job)
        settings = dict(sidecar.get("settings", {}))
        audio = sidecar.get("audio", {})
        duration = audio.get("samples", 0) / max(audio.get("sample_rate", 1), 1)
        identity = str(sidecar.get("bundle", {}).get("identity", ""))
        folder = str(Path(paths["audio"]).parent)
        with self._db:
            self._db.execute(
                "INSERT INTO loops (job, prompt, negative, settings, seed, bundle_identity, folder, audio, image,"
                " export, duration_s, bpm, bars, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job, settings.get("prompt", ""), settings.get("negative_prompt", ""), json.dumps(settings),
                 settings.get("seed"), identity, folder, paths["audio"], paths["image"], export, duration,
                 intent.bpm, intent.bars, created if created is not None else time.time()))
            self._db.execute("INSERT INTO loops_fts (job, prompt, negative) VALUES (?,?,?)",
                             (job, settings.get("prompt", ""), settings.get("negative_prompt", "")))
            self._db.execute("DELETE FROM pending WHERE job = ?", (job,))
        loop = self.get(job)
        assert loop is not None
        return loop

    def set_export(self, job: str, export: str) -> None:
        with self._db:
            self._db.execute("UPDATE loops SET export = ? WHERE job = ?", (export, job))

    def set_favourite(self, job: str, favourite: bool) -> None:
        with self._db:
            self._db.execute("UPDATE loops SET favourite = ? WHERE job = ?", (int(favourite), job))

    def set_rating(self, job: str, rating: int) -> None:
        with self._db:
            self._db.execute("UPDATE loops SET rating = ? WHERE job = ?", (max(0, min(5, rating)), job))

    def delete(self, job: str) -> LibraryLoop | None:
        """Forget a loop; returns it so the caller can delete its files (after the producer confirmed)."""
        loop = self.get(job)
        with self._db:
            self._db.execute("DELETE FROM loops WHERE job = ?", (job,))
            self._db.execute("DELETE FROM loops_fts WHERE job = ?", (job,))
        return loop

    # -- reading -------------------------------------------------------------------------------------

    def get(self, job: str) -> LibraryLoop | None:
        row = self._db.execute("SELECT * FROM loops WHERE job = ?", (job,)).fetchone()
        return _loop(row) if row is not None else None

    def search(self, text: str = "", *, favourites_only: bool = False, limit: int = 2000) -> list[LibraryLoop]:
        """Newest first; `text` is matched by FTS5 on prompt and negative prompt (each word as a prefix)."""
        where, args = [], []
        query = _fts_query(text)
        if query:
            where.append("job IN (SELECT job FROM loops_fts WHERE loops_fts MATCH ?)")
            args.append(query)
        if favourites_only:
            where.append("favourite = 1")
        sql = "SELECT * FROM loops" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created DESC LIMIT ?"
        return [_loop(row) for row in self._db.execute(sql, (*args, limit))]

    def prompts(self, limit: int = 200) -> list[str]:
        """Distinct prompts, newest first: the prompt box's completion."""
        rows = self._db.execute("SELECT prompt, MAX(created) AS c FROM loops GROUP BY prompt ORDER BY c DESC LIMIT ?",
                                (limit,))
        return [row[0] for row in rows]

    def negatives(self, limit: int = 100) -> list[str]:
        rows = self._db.execute("SELECT negative, MAX(created) AS c FROM loops WHERE negative != '' "
                                "GROUP BY negative ORDER BY c DESC LIMIT ?", (limit,))
        return [row[0] for row in rows]

    def known_jobs(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT job FROM loops")}


def import_results(library: Library, results_dir: Path, *, known: Iterable[str] | None = None) -> list[str]:
    """Adopt every complete results folder the library does not have yet (loops the engine finished while
    the app was closed, or after it lost track); returns their job ids. Reads files only: no engine needed."""
    from engine.process.results import read_results

    known_set = set(known if known is not None else library.known_jobs())
    added = []
    if not results_dir.is_dir():
        return added
    for folder in sorted(results_dir.iterdir()):
        if folder.name in known_set or not folder.is_dir():
            continue
        found = read_results(folder)
        if found is None:
            continue
        library.add_result(folder.name, found.paths(), found.sidecar, created=folder.stat().st_mtime)
        added.append(folder.name)
    return added


def _fts_query(text: str) -> str:
    words = ["".join(ch for ch in word if ch.isalnum()) for word in text.split()]
    return " ".join(f'"{word}"*' for word in words if word)


def _loop(row: sqlite3.Row) -> LibraryLoop:
    return LibraryLoop(job=row["job"], prompt=row["prompt"], negative=row["negative"],
                       settings=json.loads(row["settings"]), seed=row["seed"], bundle_identity=row["bundle_identity"],
                       folder=row["folder"], audio=row["audio"], image=row["image"], export=row["export"],
                       duration_s=row["duration_s"], bpm=row["bpm"], bars=row["bars"], rating=row["rating"],
                       favourite=bool(row["favourite"]), created=row["created"])
