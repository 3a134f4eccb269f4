"""`riffstudio batch PRESETS.toml --out DIR --engine --json` as a child process, its JSON lines as Qt signals:
the batch window's only talker to a batch (the child is ui/app/child_output.py's RiffstudioChild, as "Get
Riffusion"'s is). The app never renders a batch in its own process.

- Checked first: the child reads and expands the preset file and opens each model's manifest before it asks
  for the engine or writes anything (the check is plugin/batch.py's, which imports the generation settings
  this window's process never loads: tests/test_layers.py). A bad preset file is refused with the parser's
  one line ("pack.toml:12: bpm: ..."): the child ends at once, no engine is asked for, nothing is written.
- Rendered in the engine (`--engine`): the app's own engine process and its warm model (on the NPU where it
  runs there), at batch priority, so the producer's own loops still go first. Presets that name no model
  render with the app's (`--model`).
- One batch at a time: a second start is refused with a line that says which one is rendering.
- Stop: the child is told `stop`; it cancels the item under way (in the engine too) and ends, keeping every
  finished loop; killed if it has not ended within STOP_GRACE_MS. Either way the batch resumes: rendering the
  same preset file into the same folder again carries on where it stopped, nothing rendered twice.
- `finished(out)`: the run is complete (a failed item is said, and the rest are there): the output folder, for
  the library to take the loops from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from ui.app.child_output import RiffstudioChild
from ui.app.model_get_runner import clock

STOP_GRACE_MS = 10_000  # a stopped batch's time to cancel its item and end by itself before it is killed
SUMMARY = "summary.json"  # plugin/batch.py's record of a batch in its output folder (not imported here: see above)


@dataclass(frozen=True)
class BatchRun:
    """A preset file rendered into a folder; `bundle`, the app's model, for the presets that name none."""

    presets: Path
    out: Path
    bundle: str = ""

    def arguments(self) -> list[str]:
        model = ["--model", self.bundle] if self.bundle else []
        return ["batch", str(self.presets), "--out", str(self.out), *model, "--engine", "--json"]


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch is: `finished` of `total` loops complete (those kept from an earlier run count), the one
    rendering (`label`, "funk bass (seed 1)"), the whole batch's fraction, and the seconds left (-1: not known)."""

    total: int
    finished: int
    label: str = ""
    fraction: float = 0.0
    eta: float = -1.0

    def describe(self) -> str:
        """"3 of 6 loops · now funk bass (seed 1) · 0:42 left"."""
        parts = [f"{self.finished} of {self.total} loops"]
        if self.label and self.finished < self.total:
            parts.append(f"now {self.label}")
        if self.eta >= 0 and self.finished < self.total:
            parts.append(f"{clock(self.eta)} left")
        return " · ".join(parts)


@dataclass(frozen=True)
class BatchOutcome:
    """The child's `done` line: loops rendered now, kept from before, failed, and still to render."""

    done: int
    skipped: int
    failed: int
    remaining: int

    def describe(self, out: Path) -> str:
        failed = f"; {self.failed} failed (see summary.csv there)" if self.failed else ""
        if not self.done and self.skipped and not self.failed:  # a run of a batch already complete
            return f"Nothing to render: all {self.skipped} loops were already in {out}"
        kept = f" ({self.skipped} were already there)" if self.skipped else ""
        return f"Rendered {self.done + self.skipped} loops into {out}{kept}{failed}"


def default_out_folder(presets: Path, export_folder: Path) -> Path:
    """Where a preset file's loops go unless the producer says: beside the export folder, named after the file
    (`pack.toml` -> `pack`). A folder of that name holding other things is left alone: `pack-batch` then (or
    `-batch-2`...); one holding this preset file's earlier batch is the one to carry on in."""
    parent = export_folder.parent
    stem = presets.stem
    for name in (stem, f"{stem}-batch", *(f"{stem}-batch-{n}" for n in range(2, 100))):
        folder = parent / name
        if not folder.exists() or (folder.is_dir() and (_batch_of(folder) == presets.name or
                                                        not any(folder.iterdir()))):
            return folder
    return parent / f"{stem}-batch-100"


def _batch_of(folder: Path) -> str:
    """The preset file's name an earlier batch in `folder` recorded ("" if none)."""
    try:
        return str(json.loads((folder / SUMMARY).read_text(encoding="utf-8")).get("presets", ""))
    except (OSError, ValueError, AttributeError):
        return ""


class BatchRunner(QObject):
    started = Signal(object)  # BatchRun: the child has started (it checks the preset file first)
    refused = Signal(str)  # not rendered: a bad preset file's line, or a batch already rendering
    planned = Signal(object)  # BatchProgress: the preset file is good: N loops, with those kept from before
    progress = Signal(object)  # BatchProgress
    note = Signal(str)  # a line for the log: each loop as it starts, a failure, leftovers removed
    finished = Signal(str)  # the output folder: the batch is complete (the library takes its loops from there)
    failed = Signal(str)  # the child's one line
    stopped = Signal(str)  # the output folder: stopped by the producer, resumable

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self.child = RiffstudioChild(self, command)
        self.child.event.connect(self._event)
        self.child.ended.connect(self._ended)
        self.run: BatchRun | None = None  # the batch under way (or the last one)
        self.outcome: BatchOutcome | None = None  # the last complete run's
        self._stopping = False
        self._planned = False  # the child's `planned` line came: it got past checking the preset file
        self._progress = BatchProgress(0, 0)

    @property
    def state(self) -> str:
        """"idle", "rendering" or "stopping"."""
        if not self.child.running:
            return "idle"
        return "stopping" if self._stopping else "rendering"

    def busy_line(self) -> str:
        """Why another batch cannot start now ("" when one can)."""
        if not self.child.running or self.run is None:
            return ""
        return (f"A batch is already rendering ({self.run.presets.name} into {self.run.out}): wait for it, or "
                "stop it, before starting another")

    def start(self, run: BatchRun) -> bool:
        """Start rendering `run` (`started`; then `planned`, or `refused` with the preset file's mistake), or
        refuse it at once (`refused`) while another batch renders or a file is not a folder. True if started."""
        problem = self.busy_line()
        if not problem and run.out.exists() and not run.out.is_dir():
            problem = f"riffstudio: {run.out} is a file: choose a folder for the loops"
        if problem:
            self.refused.emit(problem)
            return False
        self.run, self.outcome, self._stopping, self._planned = run, None, False, False
        self._progress = BatchProgress(total=0, finished=0)
        self.child.start(run.arguments())
        self.started.emit(run)
        return True

    def cancel(self) -> None:
        """Stop the batch now (`stopped`): the loop under way is cancelled, the finished ones kept; rendering it
        again carries on from there."""
        if self.state != "rendering":
            return
        self._stopping = True
        self.child.tell("stop")
        pid = self.child.pid()
        QTimer.singleShot(STOP_GRACE_MS, lambda: self._kill_if_still(pid))

    def stop(self, wait_ms: int = 5000) -> None:
        """Shutdown: stop the batch (as Stop does, killed after `wait_ms`) without news; it resumes later."""
        self.blockSignals(True)
        self.child.stop(wait_ms, asking="stop")

    def _kill_if_still(self, pid: int) -> None:
        if self._stopping and self.child.running and self.child.pid() == pid:
            self.child.kill()

    def _event(self, event: dict) -> None:
        kind = event.get("event")
        p = self._progress
        if kind == "planned":
            self._planned = True
            total = int(event.get("total", p.total))
            complete = int(event.get("complete", 0))
            self._progress = BatchProgress(total=total, finished=complete,
                                           fraction=complete / total if total else 0.0)
            self.planned.emit(self._progress)
        elif kind == "item":
            self._progress = BatchProgress(total=p.total, finished=p.finished, label=str(event.get("label", "")),
                                           fraction=p.fraction, eta=p.eta)
            self.progress.emit(self._progress)
        elif kind == "progress":
            self._progress = BatchProgress(total=p.total, finished=p.finished, label=p.label,
                                           fraction=min(max(float(event.get("fraction", 0.0)), 0.0), 1.0),
                                           eta=float(event.get("eta", -1.0)))
            self.progress.emit(self._progress)
        elif kind == "ended":
            self._progress = BatchProgress(total=p.total, finished=p.finished + 1, label=p.label,
                                           fraction=(p.finished + 1) / p.total if p.total else 1.0, eta=p.eta)
            self.progress.emit(self._progress)
        elif kind == "note":  # "[3/6] funk bass (seed 1)", "  failed: ...": the batch's own words, for the log
            message = str(event.get("message", ""))
            if message:
                self.note.emit(message)
        elif kind == "done":
            self.outcome = BatchOutcome(done=int(event.get("done", 0)), skipped=int(event.get("skipped", 0)),
                                        failed=int(event.get("failed", 0)), remaining=int(event.get("remaining", 0)))

    def _ended(self, code: int, crashed: bool, last_line: str) -> None:
        run, stopping, outcome = self.run, self._stopping, self.outcome
        self._stopping = False
        if run is None:
            return
        if stopping:
            self.stopped.emit(str(run.out))
        elif not self._planned and code != 0:  # ended while checking: a bad preset file (nothing was written)
            self.refused.emit(last_line or f"riffstudio: the batch could not start (exit code {code})")
        elif outcome is not None and outcome.remaining == 0 and code in (0, 1) and not crashed:
            self.finished.emit(str(run.out))  # exit 1: some loops failed (said in the log); the rest are there
        else:
            self.failed.emit(last_line or f"riffstudio: the batch stopped unexpectedly (exit code {code}"
                             f"{', crashed' if crashed else ''}); render it again to carry on")
