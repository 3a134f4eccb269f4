"""The library: every loop the producer made, in SQLite in the user data dir, searchable with FTS5.

Why SQLite and not a folder scan: search, sort, filters, favourites and ratings must be instant on thousands
of loops, and survive app restarts and engine crashes. The audio and image stay where they were written
(the engine's results folder, or the file a CLI or batch run wrote); the library stores paths plus what
the producer adds (rating, favourite) and what a browser shows: the grid (BPM, bars), the kind of loop
(draft, refined, riff, longer, variation) and the loop it came from (`parent`), where it was made
(`origin`: the app, the CLI, a batch, another engine client), the batch collection, and its musical key
(the fit record's, from the loop's DAW file's sidecar). A database made before these columns existed is
brought up to date when opened (ALTER TABLE ADD COLUMN; kind and key filled in from what is on disk).
Bringing in loops the app did not see finish is ui/app/library_imports.py's job.

Pure Python (sqlite3, json): no Qt here, so it is tested and reused without a window.
"""

from __future__ import annotations

import json
import sqlite3
import time
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
    intent TEXT NOT NULL               -- JSON: bpm, bars, kind, parent
);
CREATE TABLE IF NOT EXISTS forgotten (  -- loops deleted or removed: never imported again
    job TEXT PRIMARY KEY
);
"""

# Columns added since the first schema, with their SQL: a database without them gets them when opened.
BROWSER_COLUMNS = {
    "kind": "TEXT NOT NULL DEFAULT ''",          # draft, refined, riff, longer, variation, or '' (a new loop)
    "parent": "TEXT NOT NULL DEFAULT ''",        # the job it came from, or the file it riffs on
    "origin": "TEXT NOT NULL DEFAULT ''",        # app, cli, batch, engine (another client), '' (before this)
    "collection": "TEXT NOT NULL DEFAULT ''",    # a batch render's preset file (its stem)
    "musical_key": "TEXT NOT NULL DEFAULT ''",   # plugin.musical_key's name ('Amin'), '' when not known
    "engine_job": "TEXT NOT NULL DEFAULT ''",    # the engine job a CLI or batch loop was fitted from
}
KINDS = ("draft", "refined", "riff", "longer", "variation")
ORIGINS = ("app", "cli", "batch", "engine")
SORTS = ("new", "rating", "bpm", "length")
GONE_PARENT = "a loop no longer in the library"  # the parent label of a loop whose parent was deleted
# A loop's length in seconds: the grid's exact span (4/4, as ui/app/loop_length.py), else the audio's.
_LENGTH_SQL = "(CASE WHEN l.bpm > 0 AND l.bars > 0 THEN l.bars * 240.0 / l.bpm ELSE l.duration_s END)"
_ORDER_SQL = {"new": "l.created DESC", "rating": "l.rating DESC, l.created DESC",
              "bpm": "l.bpm IS NULL, l.bpm ASC, l.created DESC", "length": f"{_LENGTH_SQL} ASC, l.created DESC"}


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
    kind: str = ""
    parent: str = ""
    origin: str = ""
    collection: str = ""
    musical_key: str = ""
    engine_job: str = ""
    parent_label: str = ""  # the parent's prompt and seed (or the riffed file's name), for the row and tooltip
    parent_listed: bool = False  # the parent is a loop in the library (the result pane's header links to it)

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

    @property
    def made_elsewhere(self) -> bool:
        """Written by the CLI or a batch run where the producer asked: the app only lists it (never deletes it)."""
        return self.origin in ("cli", "batch")


@dataclass(frozen=True)
class Intent:
    """What the app asked for beyond GenerationSettings (kept until the job is done): the grid, what kind of
    loop it is and the loop (job) or file it came from."""

    bpm: float | None = None
    bars: float | None = None
    kind: str = ""
    parent: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopQuery:
    """What the library pane asks for: search words, filters, and the order.

    bpm_min / bpm_max: a BPM range (None: open); bars: an exact length in bars; key: a key name as written
    ('Am', 'F# major'); fits: also the keys that fit it (plugin.musical_key). A loop without a grid matches no
    BPM or bars filter, and a loop without a key no key filter."""

    text: str = ""
    favourites_only: bool = False
    sort: str = "new"
    bpm_min: float | None = None
    bpm_max: float | None = None
    bars: float | None = None
    key: str = ""
    fits: bool = False


class Library:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path))
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the browser's columns to a database made before them, and fill in what the files say: each old
        loop's kind from its settings (a draft, a riff) and its key from its export's sidecar."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(loops)")}
        missing = [name for name in BROWSER_COLUMNS if name not in have]
        if not missing:
            return
        with self._db:
            for name in missing:
                self._db.execute(f"ALTER TABLE loops ADD COLUMN {name} {BROWSER_COLUMNS[name]}")
            rows = self._db.execute("SELECT job, settings, export FROM loops").fetchall()
            for row in rows:
                settings = json.loads(row["settings"])
                self._db.execute("UPDATE loops SET kind = ?, musical_key = ? WHERE job = ?",
                                 (kind_of(settings), key_of_file(row["export"]), row["job"]))

    def close(self) -> None:
        self._db.close()

    # -- writing -------------------------------------------------------------------------------------

    def remember_intent(self, job: str, intent: Intent) -> None:
        data = {"bpm": intent.bpm, "bars": intent.bars, "kind": intent.kind, "parent": intent.parent, **intent.extra}
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?)", (job, json.dumps(data)))

    def pending_jobs(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT job FROM pending")]

    def intent(self, job: str) -> Intent:
        row = self._db.execute("SELECT intent FROM pending WHERE job = ?", (job,)).fetchone()
        if row is None:
            return Intent()
        data = json.loads(row[0])
        return Intent(bpm=data.pop("bpm", None), bars=data.pop("bars", None), kind=data.pop("kind", "") or "",
                      parent=data.pop("parent", "") or "", extra=data)

    def add_result(self, job: str, paths: dict[str, str], sidecar: dict[str, Any], *, export: str = "",
                   created: float | None = None, origin: str = "app", collection: str = "",
                   engine_job: str = "") -> LibraryLoop:
        """A finished loop (its files' paths and sidecar); idempotent.

        The grid is the app's intent for its own jobs, else the sidecar's (a CLI or batch loop written on the
        grid); the kind is the intent's, else what the settings say; the key is the fit record's, of the
        sidecar or of the export's."""
        existing = self.get(job)
        if existing is not None:
            return existing
        intent = self.intent(job)
        settings = dict(sidecar.get("settings", {}))
        audio = sidecar.get("audio", {})
        duration = audio.get("samples", 0) / max(audio.get("sample_rate", 1), 1)
        identity = str(sidecar.get("bundle", {}).get("identity", ""))
        folder = str(Path(paths["audio"]).parent)
        grid = sidecar.get("grid") or {}
        bpm = intent.bpm if intent.bpm is not None else grid.get("bpm")
        bars = intent.bars if intent.bars is not None else grid.get("bars")
        key = key_of(sidecar) or key_of_file(export)
        with self._db:
            self._db.execute(
                "INSERT INTO loops (job, prompt, negative, settings, seed, bundle_identity, folder, audio, image,"
                " export, duration_s, bpm, bars, created, kind, parent, origin, collection, musical_key, engine_job)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job, settings.get("prompt", ""), settings.get("negative_prompt", ""), json.dumps(settings),
                 settings.get("seed"), identity, folder, paths["audio"], paths.get("image", ""), export, duration,
                 bpm, bars, created if created is not None else time.time(), intent.kind or kind_of(settings),
                 intent.parent or str(settings.get("init_audio") or ""), origin, collection, key, engine_job))
            self._db.execute("INSERT INTO loops_fts (job, prompt, negative) VALUES (?,?,?)",
                             (job, settings.get("prompt", ""), settings.get("negative_prompt", "")))
            self._db.execute("DELETE FROM pending WHERE job = ?", (job,))
        loop = self.get(job)
        assert loop is not None
        return loop

    def set_export(self, job: str, export: str) -> None:
        """The loop's DAW file; its key comes with it (the fit's, in the file's sidecar) when not known yet."""
        key = key_of_file(export)
        with self._db:
            self._db.execute("UPDATE loops SET export = ? WHERE job = ?", (export, job))
            if key:
                self._db.execute("UPDATE loops SET musical_key = ? WHERE job = ? AND musical_key = ''", (key, job))

    def set_favourite(self, job: str, favourite: bool) -> None:
        with self._db:
            self._db.execute("UPDATE loops SET favourite = ? WHERE job = ?", (int(favourite), job))

    def set_rating(self, job: str, rating: int) -> None:
        with self._db:
            self._db.execute("UPDATE loops SET rating = ? WHERE job = ?", (max(0, min(5, rating)), job))

    def delete(self, job: str) -> LibraryLoop | None:
        """Forget a loop, for good (an import never brings it back); returns it so the caller can delete its
        files (after the producer confirmed)."""
        loop = self.get(job)
        with self._db:
            self._db.execute("DELETE FROM loops WHERE job = ?", (job,))
            self._db.execute("DELETE FROM loops_fts WHERE job = ?", (job,))
            for forgotten in {job, loop.engine_job if loop else ""} - {""}:
                self._db.execute("INSERT OR IGNORE INTO forgotten VALUES (?)", (forgotten,))
        return loop

    def replace_adopted(self, engine_job: str, job: str) -> None:
        """The engine's raw painting of `engine_job`, adopted before the CLI or batch loop fitted from it was
        known, gives way to that loop (`job`), which keeps the producer's rating and favourite."""
        old = self.get(engine_job)
        if old is None or old.made_elsewhere:
            return
        with self._db:
            self._db.execute("UPDATE loops SET rating = ?, favourite = ? WHERE job = ?",
                             (old.rating, int(old.favourite), job))
            self._db.execute("DELETE FROM loops WHERE job = ?", (engine_job,))
            self._db.execute("DELETE FROM loops_fts WHERE job = ?", (engine_job,))

    # -- reading -------------------------------------------------------------------------------------

    def get(self, job: str) -> LibraryLoop | None:
        row = self._db.execute(f"{_SELECT} WHERE l.job = ?", (job,)).fetchone()
        return _loop(row) if row is not None else None

    def count(self) -> int:
        """How many loops the library holds (what a search or filter narrows from)."""
        return self._db.execute("SELECT count(*) FROM loops").fetchone()[0]

    def search(self, query: LoopQuery | str = "", *, favourites_only: bool = False,
               limit: int = 2000) -> list[LibraryLoop]:
        """The loops `query` asks for, in its order (newest first by default); its words are matched by FTS5 on
        prompt and negative prompt (each word as a prefix). A plain string is the words alone."""
        if isinstance(query, str):
            query = LoopQuery(text=query, favourites_only=favourites_only)
        where, args = [], []
        words = _fts_query(query.text)
        if words:
            where.append("l.job IN (SELECT job FROM loops_fts WHERE loops_fts MATCH ?)")
            args.append(words)
        if query.favourites_only:
            where.append("l.favourite = 1")
        if query.bpm_min:
            where.append("l.bpm >= ?")
            args.append(query.bpm_min)
        if query.bpm_max:
            where.append("l.bpm <= ?")
            args.append(query.bpm_max)
        if query.bars:
            where.append("abs(l.bars - ?) < 1e-6")
            args.append(query.bars)
        if query.key:
            names = keys_matching(query.key, fits=query.fits)
            where.append(f"l.musical_key IN ({','.join('?' * len(names))})")
            args.extend(names)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY {_ORDER_SQL.get(query.sort, _ORDER_SQL['new'])} LIMIT ?"
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
        """Every job the library has or has forgotten, and the engine jobs its CLI and batch loops came from:
        what an import must not bring in (again)."""
        known = {row[0] for row in self._db.execute("SELECT job FROM loops")}
        known |= {row[0] for row in self._db.execute("SELECT engine_job FROM loops WHERE engine_job != ''")}
        return known | {row[0] for row in self._db.execute("SELECT job FROM forgotten")}


def kind_of(settings: dict[str, Any]) -> str:
    """What a loop's settings alone say it is: a riff (audio-to-audio), a draft (the draft speed), or ''."""
    from ui.app.library_drafts import is_draft

    if settings.get("init_audio"):
        return "riff"
    return "draft" if is_draft(settings) else ""


def key_of(sidecar: dict[str, Any]) -> str:
    """The key a loop's sidecar records (the fit's estimate, plugin/fit.py), as MusicalKey.name, or ''."""
    from plugin.musical_key import MusicalKey

    fit = sidecar.get("fit") if isinstance(sidecar, dict) else None
    try:
        key = MusicalKey.from_record(fit.get("key") if isinstance(fit, dict) else None)
    except (TypeError, ValueError, AttributeError):
        return ""
    return key.name if key is not None else ""


def key_of_file(audio: str) -> str:
    """The key in the sidecar beside the DAW file `audio` ('' without one)."""
    if not audio:
        return ""
    try:
        return key_of(json.loads(Path(audio).with_suffix(".json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return ""


def keys_matching(text: str, *, fits: bool) -> list[str]:
    """The key names a key filter matches: `text`'s key, or every key that fits it. Not a key: none."""
    from plugin.musical_key import MusicalKey, NotAKey

    try:
        key = MusicalKey.parse(text)
    except NotAKey:
        return []
    return [k.name for k in key.fitting()] if fits else [key.name]


def _fts_query(text: str) -> str:
    words = ["".join(ch for ch in word if ch.isalnum()) for word in text.split()]
    return " ".join(f'"{word}"*' for word in words if word)


# Each loop with its parent's prompt and seed (when the parent is in the library) for the parent's label.
_SELECT = ("SELECT l.*, p.prompt AS parent_prompt, p.seed AS parent_seed FROM loops l "
           "LEFT JOIN loops p ON p.job = l.parent AND l.parent != ''")


def _loop(row: sqlite3.Row) -> LibraryLoop:
    parent = row["parent"]
    if row["parent_prompt"] is not None:
        label = f"{row['parent_prompt']} · seed {row['parent_seed']}"
    elif parent.startswith("file:") or Path(parent).is_absolute():  # a riffed file, or a CLI loop since removed
        label = Path(parent).name
    else:  # a job id means nothing to a producer
        label = GONE_PARENT if parent else ""
    return LibraryLoop(job=row["job"], prompt=row["prompt"], negative=row["negative"],
                       settings=json.loads(row["settings"]), seed=row["seed"], bundle_identity=row["bundle_identity"],
                       folder=row["folder"], audio=row["audio"], image=row["image"], export=row["export"],
                       duration_s=row["duration_s"], bpm=row["bpm"], bars=row["bars"], rating=row["rating"],
                       favourite=bool(row["favourite"]), created=row["created"], kind=row["kind"], parent=parent,
                       origin=row["origin"], collection=row["collection"], musical_key=row["musical_key"],
                       engine_job=row["engine_job"], parent_label=label,
                       parent_listed=row["parent_prompt"] is not None)
