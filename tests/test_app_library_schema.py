"""The library's database gains the browser's columns (kind, parent, origin, collection, key) and a database made
by the first schema is brought up to date when the app opens it: real SQLite, real loop files (the one loop
writer), no Qt."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from engine.loop_files import plain_audio, write_loop
from engine.speeds import SPEED_PRESETS
from ui.app.library import Intent, Library, LoopQuery

# The schema as the app wrote it before the browser's columns (ui/app/library.py up to 7c29d25).
FIRST_SCHEMA = """
CREATE TABLE loops (
    job TEXT PRIMARY KEY, prompt TEXT NOT NULL, negative TEXT NOT NULL DEFAULT '', settings TEXT NOT NULL,
    seed INTEGER, bundle_identity TEXT NOT NULL DEFAULT '', folder TEXT NOT NULL, audio TEXT NOT NULL,
    image TEXT NOT NULL, export TEXT NOT NULL DEFAULT '', duration_s REAL NOT NULL DEFAULT 0, bpm REAL, bars REAL,
    rating INTEGER NOT NULL DEFAULT 0, favourite INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL
);
CREATE VIRTUAL TABLE loops_fts USING fts5(job UNINDEXED, prompt, negative);
CREATE TABLE pending (job TEXT PRIMARY KEY, intent TEXT NOT NULL);
"""
A_MINOR = {"name": "Amin", "tonic": 9, "mode": "minor", "confidence": 0.8}


def a_loop_file(path, *, key: dict | None = None, settings: dict | None = None) -> dict:
    """A loop written by the one loop writer (silence, 0.5 s), with a fit record naming `key`."""
    record = {"settings": settings or {"prompt": "bass", "seed": 1}, "fit": {"mode": "beat", "key": key}}
    return write_loop(path, plain_audio(np.zeros((22050, 2), np.float32), 44100), record)


def first_schema_database(path, tmp_path) -> None:
    """A library as the first schema left it: a draft with an export in A minor, and a plain loop."""
    export = tmp_path / "exports" / "draft.wav"
    export.parent.mkdir()
    a_loop_file(export, key=A_MINOR)
    draft = {"prompt": "dusty drums", "seed": 4, **SPEED_PRESETS["draft"]}
    db = sqlite3.connect(path)
    db.executescript(FIRST_SCHEMA)
    for job, settings, exported in (("draft-job", draft, str(export)), ("plain-job", {"prompt": "bass", "seed": 5},
                                                                        "")):
        db.execute("INSERT INTO loops (job, prompt, settings, seed, folder, audio, image, export, duration_s, created)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?)", (job, settings["prompt"], json.dumps(settings), settings["seed"],
                                                     str(tmp_path), str(tmp_path / "a.wav"), "", exported, 5.1, 1.0))
        db.execute("INSERT INTO loops_fts VALUES (?,?,?)", (job, settings["prompt"], ""))
    db.commit()
    db.close()


def test_a_first_schema_database_gains_the_columns_and_keeps_its_loops(tmp_path):
    path = tmp_path / "library.sqlite3"
    first_schema_database(path, tmp_path)
    library = Library(path)
    try:
        columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(loops)")}
        assert {"kind", "parent", "origin", "collection", "musical_key", "engine_job"} <= columns
        draft, plain = library.get("draft-job"), library.get("plain-job")
        assert (draft.kind, draft.musical_key, draft.prompt, draft.seed) == ("draft", "Amin", "dusty drums", 4)
        assert (plain.kind, plain.musical_key, plain.parent, plain.origin) == ("", "", "", "")
        assert [loop.job for loop in library.search(LoopQuery(key="Am"))] == ["draft-job"]
        assert [loop.job for loop in library.search("dusty")] == ["draft-job"]
    finally:
        library.close()
    reopened = Library(path)  # opening again changes nothing
    try:
        assert reopened.get("draft-job").kind == "draft" and len(reopened.search()) == 2
    finally:
        reopened.close()


def test_a_result_stores_its_kind_parent_origin_collection_and_key(tmp_path):
    library = Library(tmp_path / "library.sqlite3")
    try:
        parent = tmp_path / "parent" / "loop.wav"
        parent.parent.mkdir()
        sidecar = a_loop_file(parent, settings={"prompt": "warm keys", "seed": 9, **SPEED_PRESETS["draft"]})
        library.add_result("parent", {"audio": str(parent)}, sidecar)
        library.remember_intent("child", Intent(bpm=120.0, bars=2.0, kind="refined", parent="parent"))
        child = tmp_path / "child" / "loop.wav"
        child.parent.mkdir()
        sidecar = a_loop_file(child, key=A_MINOR, settings={"prompt": "warm keys", "seed": 9})
        loop = library.add_result("child", {"audio": str(child)}, sidecar, origin="app")
        assert (loop.kind, loop.parent, loop.origin, loop.musical_key) == ("refined", "parent", "app", "Amin")
        assert loop.parent_label == "warm keys · seed 9" and (loop.bpm, loop.bars) == (120.0, 2.0)
        assert library.get("parent").kind == "draft"
        batch = tmp_path / "pack" / "bass.wav"
        batch.parent.mkdir()
        sidecar = a_loop_file(batch, settings={"prompt": "bass", "seed": 2, "init_audio": str(tmp_path / "kick.wav")})
        loop = library.add_result("file:bass", {"audio": str(batch)}, sidecar, origin="batch", collection="pack",
                                  engine_job="e1")
        assert (loop.kind, loop.parent_label, loop.collection, loop.made_elsewhere) == ("riff", "kick.wav", "pack",
                                                                                         True)
        assert "e1" in library.known_jobs()  # the engine's raw painting of a batch loop is not adopted beside it
    finally:
        library.close()


@pytest.mark.parametrize("forget", ["app loop", "batch loop"])
def test_a_deleted_loop_is_never_imported_again(tmp_path, forget):
    library = Library(tmp_path / "library.sqlite3")
    try:
        audio = tmp_path / "loop.wav"
        sidecar = a_loop_file(audio)
        job = "j1" if forget == "app loop" else "file:x"
        library.add_result(job, {"audio": str(audio)}, sidecar, engine_job="" if forget == "app loop" else "e9")
        library.delete(job)
        assert library.get(job) is None
        assert job in library.known_jobs() and (forget == "app loop" or "e9" in library.known_jobs())
    finally:
        library.close()
