"""Loops made outside the app while it is open join its library as they land: `riffstudio generate` loops and
batch renders, without a restart.

Why a watch and not a poll: the CLI and batch record every loop they write in an append-only registry
(plugin/made_loops.py), and a batch rewrites its OUT/summary.json after each loop; the file system says when
either changes, so an idle app reads nothing. What is watched:

- the registry's folder (the registry may not exist yet, and a writer that replaces the file instead of
  appending ends the watch on the old file), and the registry itself (appended lines change no folder);
- the batch output folders still rendering (a batch registers its folder when it starts; its loops land
  after, one summary rewrite each): of the newest registered, those whose summary has items pending and was
  rewritten within the hour (or has none yet). A finished batch's folder is let go: on Windows a watched
  folder cannot be deleted or renamed, and the producer moves a finished pack where it belongs.

A burst (a batch's many lines, a writer's pieces) is one import, once the watched paths have been quiet for
`settle_ms`. Importing is ui/app/library_imports.py's; this only says when, and which batch folders moved.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from ui.app.library import Library
from ui.app.library_imports import import_batch, import_made_elsewhere

SETTLE_MS = 300
BATCHES_WATCHED = 16  # of the newest registered batch folders: older runs are long finished
STALLED_S = 3600  # a batch whose summary has not changed for this long is not rendering (stopped, or killed)


class MadeLoopsWatch(QObject):
    """Watches the registry of loops made outside the app (and the batch folders rendering) and imports what is
    new into `library`; `added(job ids)` after an import that brought loops in."""

    added = Signal(list)

    def __init__(self, library: Library, parent: QObject | None = None, *, registry: Path | None = None,
                 settle_ms: int = SETTLE_MS) -> None:
        super().__init__(parent)
        from plugin.made_loops import registry_path

        self.library = library
        self.registry = Path(registry) if registry is not None else registry_path()
        self.watcher = QFileSystemWatcher(self)
        self.settle = QTimer(self, singleShot=True, interval=settle_ms)
        self._touched: set[str] = set()
        self._batches: list[Path] = []
        self.watcher.fileChanged.connect(self._changed)
        self.watcher.directoryChanged.connect(self._changed)
        self.settle.timeout.connect(self._settled)
        self._watch()

    def watched(self) -> list[str]:
        """Every path watched now (files and folders)."""
        return [*self.watcher.files(), *self.watcher.directories()]

    def stop(self) -> None:
        """Watch nothing more and import nothing more (the window's library closes next)."""
        self.settle.stop()
        paths = self.watched()
        if paths:
            self.watcher.removePaths(paths)
        self.watcher.blockSignals(True)

    def _watch(self) -> None:
        """Watch the registry's folder, the registry once it exists (again after a writer replaced it) and the
        batch folders still rendering; let go of the batches that are not."""
        from plugin.made_loops import made_loops

        folder = self.registry.parent
        folder.mkdir(parents=True, exist_ok=True)
        registered = [made.path for made in made_loops() if made.batch][-BATCHES_WATCHED:]
        before, self._batches = self._batches, [path for path in registered if rendering(path)]
        have = set(self.watched())
        gone = [str(path) for path in before if path not in self._batches and str(path) in have]
        if gone:
            self.watcher.removePaths(gone)
        new = [str(path) for path in [folder, self.registry, *self._batches]
               if path.exists() and str(path) not in have]
        if new:
            self.watcher.addPaths(new)

    def _changed(self, path: str) -> None:
        self._touched.add(path)
        self.settle.start()  # (re)started: a burst is one import

    def _settled(self) -> None:
        touched, self._touched = self._touched, set()
        batches = {str(path): path for path in self._batches}  # before _watch lets a finished one go
        self._watch()
        if touched - set(batches):  # the registry (or its folder): new lines, new batch folders
            added = import_made_elsewhere(self.library)
        else:  # only batch folders: their new loops, without reading every registered batch again
            known = self.library.known_jobs()
            added = [job for path in sorted(touched) for job in import_batch(self.library, batches[path],
                                                                              known=known)]
        if added:
            self.added.emit(added)


def rendering(out: Path) -> bool:
    """A batch output folder still being rendered into, as its summary says: items pending, rewritten within
    STALLED_S; or no summary yet (the batch has just started)."""
    import json
    import time

    from ui.app.batch_runner import SUMMARY

    summary = out / SUMMARY
    try:
        counts = json.loads(summary.read_text(encoding="utf-8")).get("counts") or {}
        fresh = time.time() - summary.stat().st_mtime < STALLED_S
    except FileNotFoundError:
        return out.is_dir()
    except (OSError, ValueError, AttributeError):
        return False
    return fresh and bool(counts.get("pending"))
