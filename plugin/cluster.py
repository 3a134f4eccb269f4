"""`riffstudio batch --cluster ADDRESS`: the same batch items rendered by Ray actors, each result written once.

    connection = connect("auto", say=print)          # RAY_ADDRESS, a running `ray start`, else a local Ray
    renderer = ClusterRenderer(workers=4)            # or cpus_per_worker=8: one actor per 8 CPUs of the cluster
    run_batch(Path("pack.toml"), Path("out"), renderer)
    renderer.close(); connection.close()

The only module that imports Ray (the cluster extra), and only when called: the app and a local batch never do.

Exactly once on an at-least-once engine: a Ray actor may die mid-item and its item run again elsewhere, so the
actors only render and return bytes (plugin/cluster_worker.py); this driver hands each result to run_batch,
which writes it atomically under the name the summary planned before anything rendered, keyed by the item's
settings and bundle. A result that comes back twice is one file; a run killed and started again (here or
locally) renders only what is missing, exactly as a local batch does.

Failures: an actor that dies (killed, its node lost, out of memory) is replaced and its item given to the next
free actor; an item whose worker died three times fails alone. An item that fails for its own reasons (a bad
init audio) is tried once more, then fails alone in the summary. Ctrl+C: the first stops handing out items and
waits for those running; a second (or an error) kills the actors at once; what finished is kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import engine.errors as errors
from engine.bundle.manifest import bundle_identity
from engine.errors import RiffstudioError
from plugin.batch import Outcome, Progress, Rendered
from plugin.cluster_worker import BundleServer, ItemFailed, RenderedBytes, RenderWorker
from plugin.presets import BatchItem

INSTALL = 'pip install "riffstudio[cluster]"'
NO_RAY = (f"--cluster needs Ray, which is not installed here: {INSTALL} (Ray has no wheel for Windows on ARM64: "
          "there, render without --cluster)")
ITEM_TRIES = 2  # an item failing for its own reasons: tried once more, then failed in the summary
DEATHS_PER_ITEM = 3  # workers lost while rendering one item before it is failed (it may be what kills them)
DEFAULT_CPUS_PER_WORKER = 4.0  # one model in memory per 4 CPUs; lowered to the largest node's CPUs


class ClusterError(RiffstudioError):
    """The Ray cluster cannot be used: Ray missing, the address unreachable, no worker able to start."""

    exit_code = 7


def require_ray():
    """The `ray` module, or ClusterError with how to install it (one line)."""
    try:
        import ray
    except ImportError:
        raise ClusterError(NO_RAY) from None
    return ray


@dataclass(frozen=True)
class Connection:
    """The cluster this process joined: its address, whether it was started here for this run, and whether
    `connect` joined it (else the caller had, and leaves it)."""

    address: str
    started_here: bool
    cpus: float
    nodes: int
    joined_here: bool = True

    def close(self) -> None:
        """Leave the cluster (which stops it, if this run started it); a caller's own connection stays."""
        ray = require_ray()
        if self.joined_here and ray.is_initialized():
            ray.shutdown()


def connect(address: str, *, say: Callable[[str], None] = lambda text: None,
            timeout: float = 5.0) -> Connection:
    """Join the Ray cluster at `address`: "auto" (RAY_ADDRESS, else a cluster started here with `ray start`,
    else a new local one for this run, said so), "ray://host:10001" (Ray Client) or "host:6379" (a node's
    address). An address nobody answers at is one ClusterError within `timeout` seconds, before any output
    is written (Ray's own client retries for about a minute)."""
    ray = require_ray()
    if ray.is_initialized():  # joined already (a test's cluster, or a caller's own ray.init)
        return replace(_connection(ray, "(joined)", started_here=False), joined_here=False)
    chosen = os.environ.get("RAY_ADDRESS", "").strip() if address == "auto" else address.strip()
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if chosen:
        check_reachable(chosen, timeout)
        try:
            ray.init(address=chosen, **({} if chosen.startswith("ray://") else options))
        except Exception as error:
            raise ClusterError(f"cannot join the Ray cluster at {chosen} ({errors.reason(error, 200)}): check the "
                               "address (ray://HEAD:10001 or HEAD:6379) and that Ray's versions match") from None
        return _connection(ray, chosen, started_here=False)
    try:
        ray.init(address="auto", **options)  # a cluster started on this machine with `ray start --head`
        return _connection(ray, "auto", started_here=False)
    except ConnectionError:
        pass
    ray.init(**options)
    connection = _connection(ray, "local", started_here=True)
    say(f"cluster: no RAY_ADDRESS and no running Ray here: started a local Ray for this run "
        f"({connection.cpus:g} CPUs); it stops when the batch ends")
    return connection


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """ClusterError unless something accepts a TCP connection at the address's host and port."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    default = 10001 if address.startswith("ray://") else 6379
    if not host:
        host, port = rest, str(default)
    try:
        port_number = int(port)
    except ValueError:
        raise ClusterError(f"--cluster {address}: not an address; give auto, ray://HOST:10001 or HOST:6379") from None
    try:
        with socket.create_connection((host.strip("[]"), port_number), timeout=timeout):
            pass
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({errors.reason(error, 120)}): check the "
                           "address and that the head node is up (`ray status` on it)") from None


def _connection(ray, address: str, *, started_here: bool) -> Connection:
    return Connection(address=address, started_here=started_here,
                      cpus=float(ray.cluster_resources().get("CPU", 0)), nodes=len(ray.nodes()))


@dataclass(frozen=True)
class WorkerStatus:
    """One actor as the progress shows it."""

    name: str
    node: str = ""
    done: int = 0
    failed: int = 0
    running: str | None = None  # the item's label
    alive: bool = True


@dataclass(frozen=True)
class ClusterStatus:
    """The whole run at one moment: items done / failed / running, per worker, and how many are left."""

    total: int
    done: int
    failed: int
    workers: tuple[WorkerStatus, ...] = field(default_factory=tuple)
    replaced: int = 0  # actors that died and were replaced

    @property
    def running(self) -> int:
        return sum(1 for worker in self.workers if worker.running is not None)


@dataclass
class _Slot:
    """A worker's place: its current actor (replaced when it dies), status, and the item it renders."""

    status: WorkerStatus
    actor: Any = None
    item: BatchItem | None = None


class ClusterRenderer:
    """Batch items on Ray actors (the `ManyRenderer` of plugin/batch.py): `workers` actors of `cpus_per_worker`
    CPUs each, or as many as the cluster has room for. `report` is told of every change (the progress bar)."""

    def __init__(self, *, workers: int | None = None, cpus_per_worker: float | None = None,
                 report: Callable[[ClusterStatus], None] | None = None,
                 say: Callable[[str], None] | None = None, worker_env: dict[str, str] | None = None) -> None:
        if workers is not None and workers < 1:
            raise errors.InvalidInputError(f"--workers must be 1 or more, not {workers}")
        if cpus_per_worker is not None and cpus_per_worker <= 0:
            raise errors.InvalidInputError(f"--cpus-per-worker must be more than 0, not {cpus_per_worker:g}")
        self.ray = require_ray()
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.worker_env = dict(worker_env or {})  # environment variables for the workers (Ray's runtime env)
        self.report = report or (lambda status: None)
        self.say = say or (lambda text: None)
        self.slots: list[_Slot] = []
        self.replaced = 0  # actors that died and were replaced
        self.retried = 0  # items tried again after failing for their own reasons
        self.where: list[dict[str, Any]] = []  # each started actor's `where()`: node, pid, threads, code path
        self._actor_class = None
        self._bundle_server = None  # BundleServer actor (render_many)
        self.cancel_now = threading.Event()  # a second Ctrl+C (plugin/batch.py Interrupt): kill the actors now

    def render(self, item: BatchItem, progress: Progress) -> Rendered:
        """One item on the cluster (the `Renderer` interface); run_batch uses `render_many`."""
        outcomes = self.render_many([item], lambda: False)
        try:
            outcome = next(outcomes)
        finally:
            outcomes.close()
        if outcome.error is not None:
            raise outcome.error
        assert outcome.rendered is not None
        return outcome.rendered

    def render_many(self, items: list[BatchItem], stop: Callable[[], bool]) -> Iterator[Outcome]:
        """The items' outcomes as they finish, each item's exactly once (a retry's result replaces nothing:
        an item is yielded once, when its first good result or its final failure is in)."""
        if not items:
            return
        ray = self.ray
        identities = {item.bundle: _identity(item.bundle) for item in items}
        self._serve_bundles(identities)
        queue = deque(items)
        tries: dict[str, int] = {}
        deaths: dict[str, int] = {}
        running: dict[Any, _Slot] = {}
        done = failed = 0
        self._start(min(self._worker_count(), len(items)))

        def publish() -> None:
            self.report(ClusterStatus(total=len(items), done=done, failed=failed,
                                      workers=tuple(slot.status for slot in self.slots), replaced=self.replaced))

        def hand_out() -> None:
            for slot in self.slots:
                if stop() or not queue:
                    break
                if slot.item is None and slot.actor is not None:
                    slot.item = queue.popleft()
                    running[slot.actor.render.remote(slot.item, identities[slot.item.bundle])] = slot
                    slot.status = replace(slot.status, running=slot.item.label)
            publish()

        try:
            hand_out()
            while running:
                if self.cancel_now.is_set():
                    raise KeyboardInterrupt
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in ready:
                    slot = running.pop(ref)
                    item, slot.item = slot.item, None
                    assert item is not None
                    slot.status = replace(slot.status, running=None)
                    result = self._result(ref, slot, item)
                    if result is None:  # the worker died: the item goes first to the next free worker
                        deaths[item.key] = deaths.get(item.key, 0) + 1
                        if deaths[item.key] < DEATHS_PER_ITEM:
                            queue.appendleft(item)
                            hand_out()
                            continue
                        result = ItemFailed(f"{DEATHS_PER_ITEM} workers died rendering it (out of memory? see "
                                            "`ray logs`)", "RiffstudioError", slot.status.name)
                    if isinstance(result, ItemFailed):
                        tries[item.key] = tries.get(item.key, 0) + 1
                        if tries[item.key] < ITEM_TRIES:
                            self.retried += 1
                            queue.append(item)  # once more, most likely on another worker
                            hand_out()
                            continue
                        failed += 1
                        slot.status = replace(slot.status, failed=slot.status.failed + 1)
                        hand_out()  # the next item starts before this one's summary is written
                        kind = getattr(errors, result.kind, RiffstudioError)
                        if not (isinstance(kind, type) and issubclass(kind, RiffstudioError)):
                            kind = RiffstudioError
                        yield Outcome(item, None, kind(result.message))
                        continue
                    done += 1
                    slot.status = replace(slot.status, done=slot.status.done + 1)
                    hand_out()
                    yield Outcome(item, Rendered(image=result.image_array(), audio=result.audio_array(),
                                                 sample_rate=result.sample_rate, record=_record(result)),
                                  seconds=result.seconds)
                if not any(slot.actor is not None for slot in self.slots) and (queue or running):
                    raise ClusterError("every cluster worker died and none could be started again: see `ray logs` "
                                       "and `ray status`; run the same command again to carry on")
        finally:
            self.close()
            publish()

    def close(self) -> None:
        """Stop every actor (their items, if any, stay pending for the next run)."""
        for slot in self.slots:
            if slot.actor is not None:
                self._kill(slot.actor)
                slot.actor = None
            slot.item = None
            slot.status = replace(slot.status, running=None, alive=False)
        if self._bundle_server is not None:
            self._kill(self._bundle_server)
            self._bundle_server = None

    def _kill(self, actor) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(actor)

    def _worker_count(self) -> int:
        if self.workers is not None:
            return self.workers
        resources = self.ray.cluster_resources()
        cpus = self._cpus()
        return max(1, int(resources.get("CPU", cpus) // cpus))

    def _cpus(self) -> float:
        """CPUs per actor: as asked, else 4, but no more than the largest node has (an actor lives on one node)."""
        largest = max((node.get("Resources", {}).get("CPU", 0) for node in self.ray.nodes() if node.get("Alive")),
                      default=1) or 1
        if self.cpus_per_worker is not None:
            if self.cpus_per_worker > largest:
                raise ClusterError(f"--cpus-per-worker {self.cpus_per_worker:g}: the cluster's largest node has "
                                   f"{largest:g} CPUs; ask for at most that")
            return self.cpus_per_worker
        if self.workers is not None:
            total = self.ray.cluster_resources().get("CPU", largest)
            return max(1.0, min(largest, total // self.workers))
        return min(DEFAULT_CPUS_PER_WORKER, largest)

    def _start(self, count: int) -> None:
        cpus = self._cpus()
        self.slots = [_Slot(WorkerStatus(name=f"worker {number}")) for number in range(1, count + 1)]
        for slot in self.slots:
            self._new_actor(slot, cpus)
        try:
            found = self.ray.get([slot.actor.where.remote() for slot in self.slots], timeout=600)
        except Exception as error:
            self.close()
            raise ClusterError(f"the cluster's workers did not start ({errors.reason(error, 200)}): is riffstudio "
                               "installed on every node? (docs/cluster.md)") from None
        for slot, where in zip(self.slots, found, strict=True):
            slot.status = replace(slot.status, node=where["node"])
        self.where = list(found)
        self.say(f"cluster: {count} worker(s) of {cpus:g} CPU(s) on {len({w['node'] for w in found})} node(s)")

    def _serve_bundles(self, identities: dict[str, str]) -> None:
        """A BundleServer actor on this (the driver's) node, for workers on nodes without the bundle folder: they
        fetch it through Ray once per node. Costs nothing where every node has the folder."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._bundle_server is not None:  # a previous call's: this call's bundles may differ
            self._kill(self._bundle_server)
        here = NodeAffinitySchedulingStrategy(node_id=self.ray.get_runtime_context().get_node_id(), soft=False)
        server = self.ray.remote(num_cpus=0, max_restarts=-1)(BundleServer)
        self._bundle_server = server.options(scheduling_strategy=here).remote(
            {identity: folder for folder, identity in identities.items()})

    def _new_actor(self, slot: _Slot, cpus: float) -> None:
        if self._actor_class is None:
            # max_restarts=0 and no task retries: this driver replaces a dead actor itself and decides where
            # its item goes, so Ray never reruns an item behind our back.
            self._actor_class = self.ray.remote(max_restarts=0, max_task_retries=0)(RenderWorker)
        options: dict[str, Any] = {"num_cpus": cpus}
        if self.worker_env:
            options["runtime_env"] = {"env_vars": self.worker_env}
        slot.actor = self._actor_class.options(**options).remote(slot.status.name, cpus, self._bundle_server)
        slot.status = replace(slot.status, alive=True)

    def _result(self, ref, slot: _Slot, item: BatchItem) -> RenderedBytes | ItemFailed | None:
        """The item's result, or None if the worker died under it (then replaced, within a budget)."""
        ray = self.ray
        try:
            return ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError):
            pass
        except ray.exceptions.RayTaskError as error:  # a bug in the worker's code, not the item: say it plainly
            return ItemFailed(f"the worker failed: {errors.reason(error.cause or error, 300)}", "RiffstudioError",
                              slot.status.name)
        self._kill(slot.actor)
        slot.actor = None
        slot.status = replace(slot.status, alive=False)
        if self.replaced < 2 * max(len(self.slots), 1) + 2:
            self.replaced += 1
            self.say(f"cluster: {slot.status.name} died rendering {item.label}; starting another, the item "
                     "goes to the next free worker")
            self._new_actor(slot, self._cpus())
        return None


def _identity(bundle: str) -> str:
    try:
        return bundle_identity(bundle)
    except OSError as error:
        raise errors.ModelBundleError(f"cannot read the bundle {bundle} ({errors.reason(error)}): check the "
                                      "preset's model") from None


def _record(result: RenderedBytes) -> dict[str, Any]:
    return json.loads(result.record)

