"""`riffstudio model get --json` as a child process (QProcess), its JSON lines as Qt signals: the app's only
talker to the model download and build, which never run in the window's process (they import ONNX Runtime,
numpy's heavy paths and huggingface_hub, and take minutes).

One child at a time, read as it writes (never waited on, except by `stop` at shutdown):

- `plan(request)`: `model get --plan --json`, one `plan` line: the bytes and the build time, before "Get".
- `get(request)`: `model get --json`; with precision `auto` a plan first, which says the precision this
  machine gets, so the bundle's folder (`--out`, from the models folder setting) is known before the get.
  Then `started(request)` (resolved: remember it to resume), `progress`, `note`, and `done(bundle)`.
- `pause()`: the child is killed; `model get` keeps its partial download and the next get of the same
  source continues it (an HTTP Range). `cancel(source)`: killed, then `model get --discard` removes it.

A failing child's message is its last stderr line (`riffstudio: <what went wrong and what to do>`; a crash's
last line otherwise), never a traceback. The child itself is ui/app/child_output.py's RiffstudioChild, as the
batch window's is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.model_get.download import DEFAULT_REPO
from engine.model_get.installed import bundle_name
from ui.app.child_output import RiffstudioChild

AUTO = "auto"


@dataclass(frozen=True)
class GetRequest:
    """What to get: `source` at `precision` into `folder` (the models folder). Precision `auto` is resolved by
    the child's plan (qnn where a Snapdragon NPU is, else int8); then the bundle's folder is known."""

    source: str = DEFAULT_REPO
    precision: str = AUTO
    folder: str = ""

    @property
    def out(self) -> str:
        """The bundle folder (`--out`), "" while the precision is `auto`."""
        return "" if self.precision == AUTO else str(Path(self.folder) / bundle_name(self.source, self.precision))

    def arguments(self, *extra: str) -> list[str]:
        out = ["--out", self.out] if self.out else []
        return ["model", "get", self.source, "--precision", self.precision, *out, "--json", *extra]

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> GetRequest | None:
        """The request `to_text` wrote, or None (empty or unreadable: nothing to resume)."""
        try:
            data = json.loads(text)
            request = cls(**{key: str(data[key]) for key in ("source", "precision", "folder")})
        except (ValueError, TypeError, KeyError):
            return None
        return request if request.source and request.folder else None


@dataclass(frozen=True)
class GetPlan:
    """The child's `plan` line: what the get will download and build."""

    source: str
    precision: str
    total_bytes: int
    remaining_bytes: int
    needed_bytes: int
    free_bytes: int
    estimated_build_seconds: float

    @property
    def resuming(self) -> bool:
        return 0 < self.remaining_bytes < self.total_bytes or (self.total_bytes > 0 and self.remaining_bytes == 0)

    @classmethod
    def from_event(cls, event: dict) -> GetPlan:
        return cls(source=str(event.get("source", "")), precision=str(event.get("precision", "")),
                   total_bytes=int(event.get("total_bytes", 0)), remaining_bytes=int(event.get("remaining_bytes", 0)),
                   needed_bytes=int(event.get("needed_bytes", 0)), free_bytes=int(event.get("free_bytes", 0)),
                   estimated_build_seconds=float(event.get("estimated_build_seconds", 0)))


@dataclass(frozen=True)
class GetProgress:
    """One `progress` line: the stage, the whole get's fraction, and while downloading the bytes (of every
    file, done and in all), the rate (bytes/s) and the seconds left (-1: not known yet)."""

    stage: str
    fraction: float
    bytes: int | None = None
    total: int | None = None
    rate: float = 0.0
    eta: float = -1.0

    @classmethod
    def from_event(cls, event: dict) -> GetProgress:
        fraction = min(max(float(event.get("fraction", 0.0)), 0.0), 1.0)
        if "bytes" not in event:
            return cls(stage=str(event.get("stage", "")), fraction=fraction)
        return cls(stage=str(event.get("stage", "")), fraction=fraction, bytes=int(event["bytes"]),
                   total=int(event.get("total", 0)), rate=float(event.get("rate", 0.0)),
                   eta=float(event.get("eta", -1.0)))

    def describe(self) -> str:
        """"downloading unet/diffusion_pytorch_model.safetensors 1.20 / 2.10 GB, 35 MB/s, 0:25 left"; a build
        stage as it is ("quantising the vae_decoder")."""
        if self.bytes is None:
            return self.stage
        total = self.total or 0
        unit, scale, digits = ("GB", 1e9, 2) if total >= 1e9 else ("MB", 1e6, 1)
        parts = [f"{self.stage} {self.bytes / scale:.{digits}f} / {total / scale:.{digits}f} {unit}"]
        if self.rate > 0:
            parts.append(f"{self.rate / 1e6:.0f} MB/s" if self.rate >= 10e6 else f"{self.rate / 1e6:.1f} MB/s")
        if self.eta >= 0:
            parts.append(f"{clock(self.eta)} left")
        return ", ".join(parts)


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class ModelGetRunner(QObject):
    planned = Signal(object)  # GetPlan
    plan_failed = Signal(str)  # the child's one line
    started = Signal(object)  # GetRequest, precision resolved: the get is under way (remember it to resume)
    progress = Signal(object)  # GetProgress
    note = Signal(str)
    done = Signal(str)  # the bundle folder
    failed = Signal(str)  # the child's one line (a get or a discard)
    paused = Signal()  # the get was stopped; its partial download is kept
    cancelled = Signal()  # the get was stopped and its download discarded

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self.child = RiffstudioChild(self, command)
        self.child.event.connect(self._event)
        self.child.ended.connect(self._ended)
        self.request: GetRequest | None = None  # the get under way (or the last one)
        self._action = ""  # "plan", "get" or "discard"
        self._stopping = ""  # why we killed the child we still report on: "pause" or "cancel"
        self._discard_source = DEFAULT_REPO
        self._then_get: GetRequest | None = None  # a get waiting for its plan (precision auto)
        self._plan: GetPlan | None = None
        self._bundle = ""

    @property
    def command(self) -> list[str]:
        return self.child.command

    @property
    def state(self) -> str:
        """"idle", "planning", "getting" (a plan before a get counts as getting) or "discarding"."""
        if not self.child.running:
            return "idle"
        if self._action == "plan":
            return "getting" if self._then_get is not None else "planning"
        return {"get": "getting", "discard": "discarding"}[self._action]

    # -- what the window asks for --------------------------------------------------------------------

    def plan(self, request: GetRequest) -> None:
        """Ask what getting `request` takes (`planned` or `plan_failed`); nothing when a child is running."""
        if not self.child.running:
            self._start("plan", request.arguments("--plan"))

    def get(self, request: GetRequest) -> None:
        """Get `request`'s bundle (a plan first when its precision is `auto`). A plan under way is dropped."""
        if self.state in ("getting", "discarding"):
            return
        self.child.abandon()  # a plan the window no longer waits for
        self.request = request
        if request.precision == AUTO:
            self._then_get = request
            self._start("plan", request.arguments("--plan"))
        else:
            self._start_get(request)

    def drop_plan(self) -> None:
        """Forget a plan under way (a bundle was chosen meanwhile): the child is ended, nothing reported."""
        if self.state == "planning":
            self.child.abandon()

    def pause(self) -> None:
        """Stop the get; its download so far is kept for the next get of the same source (`paused`)."""
        if self.state == "getting":
            self._then_get = None
            self._stopping = "pause"
            self.child.kill()

    def cancel(self, source: str | None = None) -> None:
        """Stop the get (if one runs) and remove its kept download (`cancelled`, or `failed`)."""
        source = source or (self.request.source if self.request else DEFAULT_REPO)
        self._then_get = None
        if self.child.running and self._action != "discard":
            self._discard_source = source
            self._stopping = "cancel"
            self.child.kill()  # the discard starts once it has ended
        elif not self.child.running:
            self._start("discard", ["model", "get", source, "--discard", "--json"])

    def stop(self, wait_ms: int = 3000) -> None:
        """Shutdown: end any child, without news (the window is closing). A partial download is kept."""
        self._then_get = None
        self.blockSignals(True)
        self.child.stop(wait_ms)

    # -- the child -----------------------------------------------------------------------------------

    def _start_get(self, request: GetRequest) -> None:
        self.request = request
        self._start("get", request.arguments())
        self.started.emit(request)

    def _start(self, action: str, arguments: list[str]) -> None:
        self._action, self._stopping, self._plan, self._bundle = action, "", None, ""
        self.child.start(arguments)

    def _event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "progress":
            self.progress.emit(GetProgress.from_event(event))
        elif kind == "note":
            self.note.emit(str(event.get("message", "")))
        elif kind == "plan":
            self._plan = GetPlan.from_event(event)
            self.planned.emit(self._plan)
        elif kind == "done":
            self._bundle = str(event.get("bundle", ""))

    def _ended(self, code: int, crashed: bool, last_line: str) -> None:
        action, stopping = self._action, self._stopping
        if code == -1:  # could not start: `last_line` says so
            self._then_get = None
            (self.plan_failed if action == "plan" else self.failed).emit(last_line)
            return
        if stopping == "pause":
            self.paused.emit()
            return
        if stopping == "cancel":
            self._start("discard", ["model", "get", self._discard_source, "--discard", "--json"])
            return
        failure = last_line or (f"riffstudio: model get stopped unexpectedly (exit code {code}"
                                f"{', crashed' if crashed else ''})")
        if action == "plan":
            then, self._then_get = self._then_get, None
            if code != 0 or crashed or self._plan is None:
                (self.failed if then is not None else self.plan_failed).emit(failure)
            elif then is not None:
                self._start_get(GetRequest(source=then.source, precision=self._plan.precision, folder=then.folder))
        elif action == "get":
            if code == 0 and not crashed and self._bundle:
                self.done.emit(self._bundle)
            else:
                self.failed.emit(failure)
        elif action == "discard":
            if code == 0 and not crashed:
                self.cancelled.emit()
            else:
                self.failed.emit(failure)
