"""Batch rendering of preset files: resumable, exactly once, through one interface in-process or in the engine.

    renderer = InProcessRenderer()          # or EngineRenderer(): the same items through engine.client
    run_batch(Path("pack.toml"), Path("out"), renderer)

A renderer with `render_many` (plugin/cluster.py's ClusterRenderer: Ray actors) renders many items at once and
hands them back as they finish; run_batch still plans, names, writes and summarises every one of them here.

Layout: OUT/<preset>/<prompt>_<bpm>bpm_<bars>bars[_<key>]_seed<N>.wav with its JSON sidecar (the key, "Amin",
when the detector found one: planned without it, added once the loop is fitted), and OUT/summary.json
(+ summary.csv): every item with its key, state and paths, and the seeds drawn for `count = N` presets.

Exactly once: an item is keyed by its settings (prompt, seed, model, grid, format...). Its audio is
written atomically first, then its sidecar (atomically, naming the audio's SHA-256, the key and, for a
`count = N` preset, which draw its seed was), so an item is done exactly when its sidecar reads back and
its audio has that hash: checked at every start, never assumed. The results themselves are the record
(`found_on_disk`); the summary only adds the names planned for items not rendered yet. Killed anywhere
(kill -9 included), or with the summary deleted, a rerun skips what is done, removes the temporaries a
killed writer left (ours alone: by our marker and the planned names, engine/atomic.py), and renders the
rest, so no result is ever duplicated and no seed drawn twice. Through the engine the item key is also
the job's idempotency key: a job the engine had already taken is followed, not queued again. A changed
preset file: changed items get new keys and render; unchanged ones are kept.

Every run records OUT in the user's registry of loops made outside the app (plugin/made_loops.py): the app's
library lists a batch's loops as a collection named after its preset file.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.atomic import atomic_path, check_writable, check_writable_folder, remove_leftovers, write_errors
from engine.errors import CancelledError, InvalidInputError, RiffstudioError
from engine.version import __version__
from plugin.grid_loop import fit_image, is_complete, write_grid_loop
from plugin.made_loops import remember_batch
from plugin.names import loop_name, unique_path
from plugin.presets import MAX_COUNT, BatchItem, expand, read_presets

if TYPE_CHECKING:
    from engine.sessions import SessionSettings

SUMMARY = "summary.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_SCHEMA = 1

Progress = Callable[[str, float], None]


@dataclass
class Rendered:
    """What a renderer gives back for an item: the painted image, its natural decode, and the record."""

    image: np.ndarray  # uint8 (512, width, 3)
    audio: np.ndarray  # float32 (samples, channels), the image decoded at its own length
    sample_rate: int
    record: dict[str, Any]  # settings (with the seed), bundle, provider, notes, timings


class Renderer(Protocol):
    def render(self, item: BatchItem, progress: Progress) -> Rendered: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """An item as it came back from a renderer: the loop, or the error it failed with. Only run_batch writes it,
    so a renderer that ran an item twice (a cluster retrying) still leaves one result under the planned name."""

    item: BatchItem
    rendered: Rendered | None
    error: RiffstudioError | None = None
    seconds: float = 0.0  # rendering time, where it ran


class BatchWatch(Protocol):
    """What a watcher hears of a run beside `say`'s words, as numbers (the CLI's `--json` lines, which the app's
    batch window reads): how many items and how many were already complete, each item as it starts (its number
    among all of them), and each as it ends ("done" or "failed", with the error's words)."""

    def planned(self, total: int, complete: int) -> None: ...

    def started(self, number: int, item: BatchItem) -> None: ...

    def ended(self, item: BatchItem, state: str, error: str) -> None: ...


class ManyRenderer(Renderer, Protocol):
    """A renderer that runs many items at once (a cluster): outcomes in the order they finish. It stops taking
    new items once `stop()` is true and ends when those it started are back; items it never yields stay pending."""

    def render_many(self, items: list[BatchItem], stop: Callable[[], bool]) -> Iterator[Outcome]: ...


class InProcessRenderer:
    """Items rendered in this process (one LoopGenerator per bundle, provider and NPU options, opened once).

    initial_noise: the latents every item starts from (`generate --latents`); say: told which provider runs
    and why, once per opened model; sessions: the session settings to start from (a cluster worker's thread
    count), else the defaults."""

    def __init__(self, *, initial_noise: np.ndarray | None = None, say: Callable[[str], None] | None = None,
                 sessions: SessionSettings | None = None) -> None:
        self._generators: dict[tuple[str, str, str], Any] = {}
        self.cancel_now = threading.Event()
        self.initial_noise = initial_noise
        self.say = say or (lambda text: None)
        self.sessions = sessions

    def render(self, item: BatchItem, progress: Progress) -> Rendered:
        from engine.generation.loop import render_loop

        generator = self._generator(item)
        loop = render_loop(generator, item.settings, should_cancel=self.cancel_now.is_set,
                           initial_noise=self.initial_noise,
                           progress=lambda e: progress(f"{e.stage} {e.step}/{e.total}", e.fraction))
        return Rendered(image=loop.image, audio=loop.audio, sample_rate=loop.sample_rate,
                        record=loop.record(generator))

    def _generator(self, item: BatchItem):
        key = (item.bundle, item.provider, json.dumps(item.session_options, sort_keys=True))
        if key not in self._generators:
            from engine.generation.providers import open_generator

            self._generators[key], why = open_generator(item.bundle, item.provider, item.session_options,
                                                        base=self.sessions)
            self.say(f"provider: {why}")
        return self._generators[key]

    def close(self) -> None:
        self._generators.clear()


class EngineRenderer:
    """Items rendered by the engine process (engine.client), as batch-priority jobs keyed by the item key."""

    def __init__(self, client=None) -> None:
        from engine.client import EngineClient

        self.client = client or EngineClient(name="riffstudio-batch")
        self.cancel_now = threading.Event()

    def render(self, item: BatchItem, progress: Progress, *, priority: str = "batch") -> Rendered:
        from engine.codec.audio_io import read_audio
        from engine.codec.image_file import read_spectrogram_image
        from engine.process import protocol as p
        from engine.process.results import results_of

        settings = item.settings
        def submit(key: str):
            return self.client.submit(settings, item.bundle, provider=item.provider, priority=priority, key=key,
                                      session_options=item.session_options)

        job = submit(f"batch-{item.key}")
        if job.queued.duplicate and job.queued.state in ("cancelled", "failed"):
            # An earlier run's job under this key was stopped or failed: this run asks afresh.
            job = submit(f"batch-{item.key}-{uuid.uuid4().hex[:8]}")

        def follow(event) -> None:
            if isinstance(event, p.Progress):
                progress(f"{event.stage} {event.step}/{event.total}", event.fraction)
            if self.cancel_now.is_set():
                self.client.cancel(job.id)

        done = job.outcome(follow)  # a failure raises with the same exit code as the work run here
        found = results_of(done)
        record = {**found.sidecar, "engine_job": done.job}
        image = read_spectrogram_image(found.image).pixels
        audio, rate = read_audio(found.audio)
        return Rendered(image=image, audio=audio, sample_rate=rate, record=record)

    def close(self) -> None:
        self.client.close()


@dataclass
class BatchResult:
    done: int
    skipped: int
    failed: int
    remaining: int
    interrupted: bool
    summary: Path


class Interrupt:
    """Ctrl+C: the first stops the batch after the current item; a second stops it at once."""

    def __init__(self, renderer=None, say: Callable[[str], None] | None = None) -> None:
        self.requested = False
        self.renderer = renderer
        self.say = say or (lambda text: print(text, file=sys.stderr))

    def __call__(self, signum, frame) -> None:
        if self.requested:
            if self.renderer is not None and hasattr(self.renderer, "cancel_now"):
                self.renderer.cancel_now.set()
            raise KeyboardInterrupt
        self.requested = True
        self.say("\nstopping after the current item (Ctrl+C again to stop now)")

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def plan(presets_path: Path, out: Path, *, default_bundle: str | None = None) -> tuple[list[BatchItem], dict]:
    """The items of a preset file with their planned paths, and the summary to write (nothing written)."""
    from engine.bundle import open_bundle

    presets = read_presets(presets_path, default_bundle=default_bundle)
    previous = _read_summary(out)
    drawn = {k: list(v) for k, v in previous.get("seeds", {}).items()}
    on_disk, draws = found_on_disk(out)
    for identity, seeds in draws.items():  # what the results' own sidecars say, where the summary is silent
        known_seeds = drawn.setdefault(identity, [])
        for index, seed in sorted(seeds.items()):
            known_seeds.extend([None] * (index + 1 - len(known_seeds)))
            if not isinstance(known_seeds[index], int):
                known_seeds[index] = seed

    def limits(bundle: str):
        try:
            return open_bundle(bundle).manifest
        except RiffstudioError as error:
            raise InvalidInputError(f"{presets_path.name}: model {bundle}: {error}") from None

    items = expand(presets_path, presets, drawn, bundle_limits=limits)
    known = {key: {"key": key, "audio": audio} for key, audio in on_disk.items()}
    known.update({entry["key"]: entry for entry in previous.get("items", [])
                  if isinstance(entry, dict) and "key" in entry})
    taken = {entry["audio"].casefold() for entry in known.values() if "audio" in entry}
    taken |= {Path(entry["audio"]).with_suffix(".json").as_posix().casefold() for entry in known.values()
              if "audio" in entry}
    entries = []
    seen: set[str] = set()
    for item in items:
        if item.key in seen:
            continue  # the same loop listed twice: rendered once
        seen.add(item.key)
        entry = known.get(item.key)
        if entry is None or "audio" not in entry:
            stem = item_stem(item)
            folder_taken = {name.split("/", 1)[1] for name in taken if name.startswith(item.folder.casefold() + "/")}
            path = unique_path(out / item.folder, stem, f".{item.audio_format}", taken=folder_taken)
            relative = f"{item.folder}/{path.name}"
            taken.add(relative.casefold())
            taken.add(Path(relative).with_suffix(".json").as_posix().casefold())
            entry = {"key": item.key, "audio": relative}
        entries.append({"key": item.key, "label": item.label, "preset": item.preset, "seed": item.settings.seed,
                        "audio": entry["audio"], "sidecar": str(Path(entry["audio"]).with_suffix(".json").as_posix()),
                        "state": "pending"})
    unique_items = list({item.key: item for item in items}.values())
    summary = {"schema": SUMMARY_SCHEMA, "riffstudio_version": __version__, "presets": str(presets_path.name),
               "seeds": drawn, "items": entries}
    return unique_items, summary


def run_batch(presets_path: Path, out: Path, renderer: Renderer, *, default_bundle: str | None = None,
              say: Callable[[str], None] | None = None, item_progress: Callable[[str, float], None] | None = None,
              interrupt: Interrupt | None = None, watch: BatchWatch | None = None) -> BatchResult:
    say = say or (lambda text: print(text, file=sys.stderr))
    items, summary = plan(presets_path, out, default_bundle=default_bundle)
    finals = [out / SUMMARY, out / SUMMARY_CSV]
    finals += [out / e[name] for e in summary["items"] for name in ("audio", "sidecar")]
    check_writable_folder(out)
    # The longest path this run will write, tried before the first loop renders: a preset's folder and loop
    # name past the system's limit (Windows' 260 characters) fails here in one line, not hours into a run. A loop
    # on the grid may take its key into its name once found (`keyed_path`): tried with the longest key's.
    entries = {entry["key"]: entry for entry in summary["items"]}
    planned = {item.key: out / entries[item.key]["audio"] for item in items}
    keyed = [planned[item.key].with_name(item_stem(item, LONGEST_KEY) + planned[item.key].suffix)
             for item in items if item.options is not None]
    check_writable(max([*finals, *keyed], key=lambda path: len(str(path))))
    out.mkdir(parents=True, exist_ok=True)
    note = remember_batch(out)  # the app's library lists the loops of every batch run
    if note:
        say(f"note: {note}")
    removed = remove_leftovers(finals)
    if removed:
        say(f"removed {removed} unfinished temporary file(s) from an interrupted run")
    skipped = 0
    for item in items:
        entry = entries[item.key]
        if is_complete(out / entry["audio"], item.key):
            entry["state"] = "done"
            skipped += 1
    write_summary(out, summary)
    interrupt = interrupt or Interrupt(renderer, say)
    done = failed = 0
    total = len(items)
    pending = [item for item in items if entries[item.key]["state"] != "done"]
    if skipped:
        say(f"{skipped} of {total} item(s) already complete: kept")
    if watch is not None:
        watch.planned(total, skipped)
    many = getattr(renderer, "render_many", None)
    outcomes = many(pending, lambda: interrupt.requested) if many else _one_by_one(
        renderer, pending, interrupt, say, skipped, total, item_progress or (lambda stage, fraction: None), watch)
    with interrupt.installed():
        try:
            for outcome in outcomes:
                item = outcome.item
                entry = entries[item.key]
                started = time.perf_counter()
                try:
                    if outcome.error is not None:
                        raise outcome.error
                    write_item(item, out / entry["audio"], outcome.rendered, presets_path,
                               named=lambda path, entry=entry: _renamed(out, summary, entry, path))
                except CancelledError:
                    raise
                except RiffstudioError as error:
                    entry["state"] = "failed"
                    entry["error"] = str(error)
                    failed += 1
                    say(f"  failed: {item.label}: {error}" if many else f"  failed: {error}")
                else:
                    entry["state"] = "done"
                    entry.pop("error", None)
                    entry["seconds"] = round(outcome.seconds + time.perf_counter() - started, 3)
                    done += 1
                write_summary(out, summary)
                if watch is not None:
                    watch.ended(item, entry["state"], entry.get("error", ""))
        except (CancelledError, KeyboardInterrupt):
            write_summary(out, summary)  # what finished is kept; the rest stays pending for the next run
            raise
    remaining = sum(1 for entry in entries.values() if entry["state"] == "pending")
    return BatchResult(done=done, skipped=skipped, failed=failed, remaining=remaining,
                       interrupted=interrupt.requested and remaining > 0, summary=out / SUMMARY)


def _one_by_one(renderer: Renderer, items: list[BatchItem], interrupt: Interrupt, say: Callable[[str], None],
                skipped: int, total: int, progress: Progress, watch: BatchWatch | None = None) -> Iterator[Outcome]:
    """The items rendered one at a time in order (in this process or the engine), each announced as it starts;
    a first Ctrl+C stops before the next one."""
    for number, item in enumerate(items, start=skipped + 1):
        if interrupt.requested:
            return
        say(f"[{number}/{total}] {item.label}")
        if watch is not None:
            watch.started(number, item)
        started = time.perf_counter()
        try:
            rendered = renderer.render(item, progress)
        except CancelledError:
            raise
        except RiffstudioError as error:
            yield Outcome(item, None, error)
        else:
            yield Outcome(item, rendered, seconds=time.perf_counter() - started)


LONGEST_KEY = "C#min"  # a key name as long as any ("F#maj", "D#min"...): what a keyed loop name may add


def item_stem(item: BatchItem, key: str | None = None) -> str:
    """The file stem of an item's loop (plugin/names.loop_name): prompt, tempo, length, key when found, seed."""
    options = item.options
    grid = options.grid() if options else None
    by_beats = options is not None and options.beats is not None
    return loop_name(item.settings.prompt, bpm=options.bpm if options else None,
                     bars=float(grid.bars) if grid and not by_beats else None,
                     beats=float(grid.beats) if grid and by_beats else None, key=key, seed=item.settings.seed)


def keyed_path(item: BatchItem, planned: Path, key: dict[str, Any] | None) -> Path:
    """Where a loop whose key was found goes: its planned name with the key ("..._2bars_Amin_seed7.wav"), a
    free one in its folder; the planned path itself when no key was found, or when it already holds the key
    (a rerun of a write that an earlier run recorded, or killed)."""
    if not key:
        return planned
    stem = item_stem(item, key["name"])
    if planned.stem == stem or planned.stem.startswith(f"{stem}-"):
        return planned
    return unique_path(planned.parent, stem, planned.suffix)


def render_item(item: BatchItem, path: Path, renderer: Renderer, presets_path: Path, progress: Progress) -> Path:
    return write_item(item, path, renderer.render(item, progress), presets_path)


def write_item(item: BatchItem, path: Path, rendered: Rendered, presets_path: Path,
               named: Callable[[Path], None] | None = None) -> Path:
    """An item's loop written at its planned path (with the loop's key in the name when one was found:
    `keyed_path`), with the batch's record (its key) in the sidecar: the one place batch results are written,
    whichever renderer made them. named(path) is told the final path before anything is written there (run_batch
    records it in the summary, so a killed write's files are known to the next run). Returns the path."""
    batch = {"key": item.key, "presets": presets_path.name, "item": item.label}
    if item.seed_draw is not None:
        batch["seed_draw"] = {"preset": item.seed_draw[0], "index": item.seed_draw[1]}
    record = {**rendered.record, "batch": batch}
    seed = rendered.record.get("settings", {}).get("seed", item.settings.seed)
    if item.options is None:
        write_plain_loop(path, rendered, record)
        return path
    fitted = fit_image(rendered.image, item.options, analysis_audio=rendered.audio,
                       analysis_rate=rendered.sample_rate, quality=item.settings.quality)
    path = keyed_path(item, path, fitted.report.key)
    if named is not None:
        named(path)
    write_grid_loop(path, fitted, item.options, record, prompt=item.settings.prompt, seed=seed)
    return path


def _renamed(out: Path, summary: dict[str, Any], entry: dict[str, Any], path: Path) -> None:
    """Record an item's final name (its key added) in the summary before its files are written there."""
    relative = path.relative_to(out).as_posix()
    if relative != entry["audio"]:
        entry["audio"], entry["sidecar"] = relative, Path(relative).with_suffix(".json").as_posix()
        write_summary(out, summary)


def write_plain_loop(path: Path, rendered: Rendered, record: dict[str, Any]) -> None:
    """A loop as painted (no bpm), through the one loop writer."""
    from engine.loop_files import plain_audio, write_loop

    with write_errors(path):
        write_loop(path, plain_audio(rendered.audio, rendered.sample_rate), record)


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    counts: dict[str, int] = {}
    for entry in summary["items"]:
        counts[entry["state"]] = counts.get(entry["state"], 0) + 1
    summary["counts"] = counts
    summary["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with write_errors(out / SUMMARY):
        with atomic_path(out / SUMMARY) as temporary:
            temporary.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["key", "preset", "item", "seed", "state", "audio", "sidecar", "error"])
        for entry in summary["items"]:
            writer.writerow([entry["key"], entry["preset"], entry["label"], entry["seed"], entry["state"],
                             entry["audio"], entry["sidecar"], entry.get("error", "")])
        with atomic_path(out / SUMMARY_CSV) as temporary:  # bytes: the csv module's own \r\n line ends, untranslated
            temporary.write_bytes(buffer.getvalue().encode("utf-8"))


def found_on_disk(out: Path) -> tuple[dict[str, str], dict[str, dict[int, int]]]:
    """What the results under OUT say of themselves: item key -> audio path (relative to OUT) for each
    sidecar naming an audio file that exists, and the seeds drawn for `count = N` presets (preset identity
    -> {draw index: seed}). The summary is a convenience; these are the truth, so a lost or damaged summary
    renders nothing twice and draws no new seeds. (Each result's hash is checked before it is skipped.)"""
    keys: dict[str, str] = {}
    draws: dict[str, dict[int, int]] = {}
    for sidecar in sorted(out.glob("*/*.json")):
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            batch, audio = data["batch"], sidecar.with_name(data["audio"]["file"])
            key = batch["key"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not isinstance(key, str) or audio.parent != sidecar.parent or not audio.is_file():
            continue
        keys.setdefault(key, audio.relative_to(out).as_posix())
        draw, seed = batch.get("seed_draw"), data.get("settings", {}).get("seed")
        if isinstance(draw, dict) and isinstance(draw.get("preset"), str) and isinstance(draw.get("index"), int) \
                and isinstance(seed, int) and 0 <= draw["index"] < MAX_COUNT:
            draws.setdefault(draw["preset"], {}).setdefault(draw["index"], seed)
    return keys, draws


def _read_summary(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("schema") == SUMMARY_SCHEMA else {}
