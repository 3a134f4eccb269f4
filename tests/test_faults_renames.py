"""A kill -9 at every rename of our writers leaves one complete version: the loop writer (audio, then the
sidecar naming its hash), the folder writer (bundles: the old one moved aside until the new one is in
place), and the journal's set-aside of a damaged database.

Each case runs the writer in a child process whose `os.replace` ends the process (os._exit, as a kill
would: no clean-up runs) just before its Nth rename, for every N the write makes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO

from engine.atomic import atomic_path, leftover_temporaries, recover_replaced

KILLED = 137

# Runs in the child: `os.replace` dies before rename number RENAME (1-based), then WRITE runs.
PRELUDE = """
import os, sys
sys.path.insert(0, {tests!r})
target = {rename}
count = 0
real = os.replace
def replace(src, dst, **kw):
    global count
    count += 1
    if count == target:
        os._exit({killed})
    return real(src, dst, **kw)
os.replace = replace
"""


def run_killed(body: str, rename: int) -> int:
    script = PRELUDE.format(tests=str(REPO / "tests"), rename=rename, killed=KILLED) + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, KILLED), result.stderr
    return result.returncode


def every_rename(body: str) -> list[int]:
    """Kill before each rename in turn until the write completes untouched; the exit codes."""
    codes = []
    for rename in range(1, 20):
        codes.append(run_killed(body, rename))
        if codes[-1] == 0:
            return codes
    raise AssertionError("the write never completed")


LOOP = """
from pathlib import Path
from engine.codec import encode_audio
from plugin.fit import fit_to_grid
from plugin.grid_loop import GridOptions, write_grid_loop
from plugin_audio import RATE, drum_loop
audio, _ = drum_loop(120, seconds=4.0, seed={seed})
options = GridOptions(bpm=120, bars=1, fit="length")
fitted = fit_to_grid(encode_audio(audio[:, None], RATE).pixels, options.grid(), analysis_audio=audio,
                     analysis_rate=RATE, mode="length")
write_grid_loop(Path({out!r}), fitted, options, {{"version": {seed}}})
"""


def test_a_kill_at_each_rename_of_the_loop_writer_leaves_whole_files(tmp_path):
    out = tmp_path / "loop.wav"
    assert run_killed(LOOP.format(seed=1, out=str(out)), rename=0) == 0
    first = {"audio": out.read_bytes(), "sidecar": out.with_suffix(".json").read_bytes()}
    (tmp_path / "reference").mkdir()
    assert run_killed(LOOP.format(seed=2, out=str(tmp_path / "reference" / "loop.wav")), rename=0) == 0
    second_audio = (tmp_path / "reference" / "loop.wav").read_bytes()
    codes = []
    for rename in range(1, 10):
        codes.append(run_killed(LOOP.format(seed=2, out=str(out)), rename))
        audio, sidecar = out.read_bytes(), json.loads(out.with_suffix(".json").read_text())
        assert audio in (first["audio"], second_audio)  # a whole file, old or new, never a torn one
        assert sidecar["version"] in (1, 2)
        from engine.file_hash import file_sha256
        from plugin.grid_loop import is_complete

        if is_complete(out):  # the sidecar vouches for the audio only when its hash matches
            assert file_sha256(out) == sidecar["audio"]["sha256"]
        # The next write of these names removes a killed one's temporary (by our marker): they never pile up,
        # whichever command writes next (not only a batch rerun).
        assert len(leftover_temporaries([out, out.with_suffix(".json")])) == (codes[-1] == KILLED)
        if codes[-1] == 0:
            break
    assert codes[-1] == 0 and codes[:-1] == [KILLED] * (len(codes) - 1) and len(codes) == 3
    assert json.loads(out.with_suffix(".json").read_text())["version"] == 2


FOLDER = """
from pathlib import Path
from engine.atomic import atomic_path
with atomic_path(Path({out!r}), directory=True) as folder:
    for name in ("manifest.json", "unet.onnx", "unet.onnx.data"):
        (folder / name).write_text({version!r} + name)
"""


def test_a_kill_at_each_rename_of_a_bundle_replacement_keeps_the_old_or_the_new(tmp_path):
    out = tmp_path / "bundle"
    assert run_killed(FOLDER.format(out=str(out), version="old "), rename=0) == 0
    codes = []
    for rename in range(1, 10):
        codes.append(run_killed(FOLDER.format(out=str(out), version="new "), rename))
        recover_replaced(out)  # what the next write and open_bundle do first
        contents = {path.name: path.read_text() for path in out.iterdir()}
        assert contents in ({n: "old " + n for n in contents}, {n: "new " + n for n in contents})
        assert len(contents) == 3
        if codes[-1] == 0:
            break
    assert codes == [KILLED, KILLED, 0]
    # Beside it only the killed writers' own temporaries (found by our marker), no second copy of a bundle.
    assert sorted(p for p in tmp_path.iterdir() if p.name.startswith(".bundle")) == sorted(
        leftover_temporaries([out]))


def test_open_bundle_finds_a_bundle_whose_replacement_was_killed(tmp_path, fp32_bundle):
    from engine.bundle import open_bundle

    out = tmp_path / "bundle"
    with atomic_path(out, directory=True) as folder:
        for path in fp32_bundle.iterdir():
            if path.is_file():
                shutil.copy2(path, folder / path.name)
    body = f"""
from pathlib import Path
from engine.atomic import atomic_path
with atomic_path(Path({str(out)!r}), directory=True) as folder:
    (folder / "manifest.json").write_text("half")
"""
    assert run_killed(body, rename=2) == KILLED  # the old bundle moved aside, the new one not in place
    assert not out.exists()
    assert open_bundle(out).precision == "fp32"


JOURNAL = """
from pathlib import Path
from engine.process.journal import open_journal
journal, note = open_journal(Path({path!r}))
journal.close()
"""


def test_a_kill_at_each_rename_of_the_journal_set_aside_leaves_an_engine_that_opens(tmp_path):
    from engine.process.journal import Journal, open_journal

    path = tmp_path / "journal.sqlite3"
    for rename in range(1, 10):
        for name in tmp_path.iterdir():
            name.unlink()
        journal = Journal(path)
        journal.submit({"settings": {"prompt": "x"}}, "batch", None)
        journal.close()
        Path(f"{path}-wal").write_bytes(os.urandom(4096))  # a WAL that is not this database's
        with open(path, "r+b") as file:
            file.seek(100)
            file.write(os.urandom(3000))  # the schema page: unreadable
        code = run_killed(JOURNAL.format(path=str(path)), rename)
        journal, note = open_journal(path)  # the next engine start
        journal.submit({"settings": {"prompt": "after"}}, "batch", None)
        journal.check()
        journal.close()
        assert note or code == 0
        if code == 0:
            break
    assert rename == 4  # -wal, -shm, the database: three renames, each killed once, then a whole run
