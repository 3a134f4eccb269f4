"""The engine's wire protocol: every message as a frozen dataclass, and the one JSON encoding of each.

This module is the single source of truth for `docs/protocol.md`: a message is a JSON object whose
`type` names one of the classes below (`TYPE`) and whose other keys are that class's fields. Requests
carry the client's `id`; replies carry it back as `re`; job events carry `job`. JSON, never pickle, so
that a message can only ever be data: whatever arrives, decoding it runs no code.

Compatibility: `PROTOCOL_VERSION` is "major.minor". A minor version only adds optional fields and new
message types, so decoders ignore keys they do not know; a different major is refused at `hello`.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from engine.errors import EngineError

PROTOCOL_VERSION = "1.2"  # 1.1: model_loaded.reason; 1.2: welcome/engine_status notes, codes storage and lost
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a preview is ~12 KB; anything near this is a bug or an attack
# Ids, job ids and idempotency keys are echoed in replies: longer ones are refused (a 16 MiB id made a reply
# too large to send, and the engine dropped the connection with a traceback in its log).
MAX_ID_CHARS = 256
ID_FIELDS = ("id", "job", "key")

PRIORITIES: tuple[str, ...] = ("interactive", "batch")  # order = who runs first


class ProtocolError(EngineError):
    """A message that is not one: not JSON, too big, of an unknown type, or with wrong fields.

    `code` is what the engine's `error` reply says (see ERROR_CODES)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# The `code` of an `error` reply, and of a `failed` event, and what each means.
ERROR_CODES = {
    "bad_message": "not a JSON object, or a field is missing or has the wrong type",
    "too_large": f"longer than {MAX_MESSAGE_BYTES} bytes; the connection is closed after this reply",
    "unknown_type": "a `type` this engine does not know",
    "protocol_mismatch": "the client speaks another major protocol version; the connection is closed",
    "not_ready": "a request other than `hello` before the handshake",
    "unknown_job": "no job with that id",
    "invalid_input": "settings the engine refuses (the message says which and why)",
    "model_bundle": "a bundle that is missing, damaged or of the wrong kind",
    "provider": "an execution provider that cannot run here",
    "memory": "the job cannot fit in the engine's memory ceiling",
    "engine_crashed": "the job stopped the engine twice; it will not be tried again",
    "cancelled": "the work was cancelled (by the client, or the engine stopping) and produced nothing",
    "storage": "the engine cannot write its journal or a job's results (a full or unwritable data folder, named)",
    "lost": "the job journal that held the job was damaged and moved aside; the job was not run",
    "internal": "a bug in the engine; the message names it",
}


# -- pieces of messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """A small look at the latents during denoising: raw RGB bytes, row-major, base64 in JSON."""

    width: int
    height: int
    rgb: str  # base64 of height * width * 3 uint8

    @classmethod
    def from_array(cls, pixels: np.ndarray) -> Preview:
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        return cls(width=int(pixels.shape[1]), height=int(pixels.shape[0]),
                   rgb=base64.b64encode(pixels.tobytes()).decode("ascii"))

    def to_array(self) -> np.ndarray:
        """uint8 [height, width, 3]."""
        return np.frombuffer(base64.b64decode(self.rgb), np.uint8).reshape(self.height, self.width, 3)


@dataclass(frozen=True)
class RunningJob:
    job: str
    step: int
    total: int
    stage: str = ""


@dataclass(frozen=True)
class JobInfo:
    """One job as the journal knows it (`jobs` and `subscribed` replies)."""

    job: str
    state: str
    priority: str
    prompt: str
    created: float  # seconds since the epoch
    updated: float
    attempts: int
    crashes: int
    folder: str | None = None  # the results folder, once done
    error: str | None = None  # "code: message" once failed
    key: str | None = None


# -- the messages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""


# Client -> engine (requests: each has the client's `id`, echoed as `re` in the replies).


@dataclass(frozen=True)
class Hello(Message):
    TYPE: ClassVar[str] = "hello"
    id: str
    protocol: str
    client: str = ""


@dataclass(frozen=True)
class Submit(Message):
    """A loop to make. `settings` is GenerationSettings.to_dict(); `key` makes retries safe (same key = one job)."""

    TYPE: ClassVar[str] = "submit"
    id: str
    settings: dict[str, Any]
    bundle: str
    provider: str = "auto"
    priority: str = "interactive"
    key: str | None = None
    previews: bool = False
    audio_format: str = "wav"  # wav, flac, aiff or ogg: the suffix of the loop file in the results folder
    session_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    id: str
    job: str


@dataclass(frozen=True)
class Subscribe(Message):
    """Follow these jobs again (after a reconnect): a `subscribed` reply, then each job's terminal event at
    once if it has one, or its latest `progress` if it is running, then its events as they happen."""

    TYPE: ClassVar[str] = "subscribe"
    id: str
    jobs: list[str]


@dataclass(frozen=True)
class Status(Message):
    TYPE: ClassVar[str] = "status"
    id: str


@dataclass(frozen=True)
class Jobs(Message):
    TYPE: ClassVar[str] = "jobs"
    id: str
    limit: int = 20


@dataclass(frozen=True)
class Ping(Message):
    TYPE: ClassVar[str] = "ping"
    id: str


@dataclass(frozen=True)
class LoadModel(Message):
    """Open (or keep) a bundle on a provider now, so the next job starts warm; `model_progress` then
    `model_loaded` (or `error`)."""

    TYPE: ClassVar[str] = "load_model"
    id: str
    bundle: str
    provider: str = "auto"
    session_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Shutdown(Message):
    """Stop the engine: a running job goes back to the queue (not counted as a crash) and every queued job
    stays in the journal for the next engine."""

    TYPE: ClassVar[str] = "shutdown"
    id: str


# Engine -> client: replies (with `re`).


@dataclass(frozen=True)
class Welcome(Message):
    TYPE: ClassVar[str] = "welcome"
    re: str
    protocol: str
    engine_version: str
    pid: int
    notes: list[str] = field(default_factory=list)  # as engine_status.notes: each client hears them once


@dataclass(frozen=True)
class Error(Message):
    """A request the engine could not act on; `re` is null when the request had no readable id."""

    TYPE: ClassVar[str] = "error"
    re: str | None
    code: str
    message: str


@dataclass(frozen=True)
class Queued(Message):
    """The job is in the journal (it survives any crash from here on). `duplicate`: the key was known."""

    TYPE: ClassVar[str] = "queued"
    re: str
    job: str
    state: str
    position: int  # jobs ahead of it (0 = next), at the time of the reply
    duplicate: bool = False


@dataclass(frozen=True)
class Ack(Message):
    TYPE: ClassVar[str] = "ack"
    re: str
    job: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class Subscribed(Message):
    TYPE: ClassVar[str] = "subscribed"
    re: str
    jobs: list[JobInfo]


@dataclass(frozen=True)
class EngineStatus(Message):
    TYPE: ClassVar[str] = "engine_status"
    re: str
    pid: int
    protocol: str
    engine_version: str
    uptime_s: float
    running: RunningJob | None
    queue: list[str]  # job ids, in the order they will run
    bundle: str | None  # the warm bundle's path
    provider: str | None
    intra_op_threads: int
    memory_limit_mb: int  # 0 = no ceiling
    idle_timeout_s: float
    clients: int
    notes: list[str] = field(default_factory=list)  # what the engine did about its own state (a damaged journal)


@dataclass(frozen=True)
class JobList(Message):
    TYPE: ClassVar[str] = "job_list"
    re: str
    jobs: list[JobInfo]  # newest first


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    re: str
    time: float


@dataclass(frozen=True)
class ModelProgress(Message):
    TYPE: ClassVar[str] = "model_progress"
    re: str
    stage: str
    fraction: float


@dataclass(frozen=True)
class ModelLoaded(Message):
    TYPE: ClassVar[str] = "model_loaded"
    re: str
    bundle: str
    provider: str
    seconds: float
    reason: str = ""  # why this provider runs (choose_provider's sentence), for the app's model manager; 1.1


@dataclass(frozen=True)
class Goodbye(Message):
    """Sent to every client when the engine stops on purpose (`shutdown`, a signal): not a crash, so a
    supervising client does not restart it. Queued jobs stay in the journal for the next engine."""

    TYPE: ClassVar[str] = "goodbye"
    reason: str


# Engine -> client: job events (with `job`), sent to every connection following the job.


@dataclass(frozen=True)
class Started(Message):
    TYPE: ClassVar[str] = "started"
    job: str
    attempt: int


@dataclass(frozen=True)
class Progress(Message):
    """`stage` in ("load", "text", "denoise", "decode", "audio"); one `denoise` event per step."""

    TYPE: ClassVar[str] = "progress"
    job: str
    stage: str
    step: int
    total: int
    fraction: float
    preview: Preview | None = None


@dataclass(frozen=True)
class Done(Message):
    """`paths`: "audio", "image" and "sidecar" (absolute), all inside `folder`."""

    TYPE: ClassVar[str] = "done"
    job: str
    folder: str
    paths: dict[str, str]
    seed: int
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Failed(Message):
    TYPE: ClassVar[str] = "failed"
    job: str
    code: str
    message: str  # one line a producer can act on


@dataclass(frozen=True)
class Cancelled(Message):
    TYPE: ClassVar[str] = "cancelled"
    job: str
    reason: str = "cancelled"


TERMINAL_EVENTS = (Done, Failed, Cancelled)

MESSAGES: dict[str, type[Message]] = {cls.TYPE: cls for cls in (
    Hello, Submit, Cancel, Subscribe, Status, Jobs, Ping, LoadModel, Shutdown,
    Welcome, Error, Queued, Ack, Subscribed, EngineStatus, JobList, Pong, ModelProgress, ModelLoaded, Goodbye,
    Started, Progress, Done, Failed, Cancelled)}
REQUESTS = ("hello", "submit", "cancel", "subscribe", "status", "jobs", "ping", "load_model", "shutdown")


# -- encoding ------------------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    """The message as compact UTF-8 JSON; a ProtocolError if it would exceed MAX_MESSAGE_BYTES."""
    data = json.dumps({"type": message.TYPE, **dataclasses.asdict(message)}, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"a {message.TYPE} message of {len(data)} bytes is over the "
                            f"{MAX_MESSAGE_BYTES}-byte limit")
    return data


def decode(data: bytes) -> Message:
    """The message in `data`, checked field by field; a ProtocolError (with its code) otherwise."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"a message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # RecursionError: nested too deep
        raise ProtocolError("bad_message", f"not a JSON message ({str(error)[:80]})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError("bad_message", "a message must be a JSON object with a string `type`")
    cls = MESSAGES.get(obj["type"])
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {obj['type'][:40]!r}")
    for name in ID_FIELDS:
        if isinstance(obj.get(name), str) and len(obj[name]) > MAX_ID_CHARS:
            raise ProtocolError("bad_message", f"{cls.TYPE}.{name} is {len(obj[name])} characters long; at most "
                                f"{MAX_ID_CHARS}")
    return _build(cls, obj, cls.TYPE)


def request_id(data: bytes) -> str | None:
    """The `id` of a message that did not decode, when it has a readable one (for the error reply)."""
    try:
        value = json.loads(data.decode("utf-8")).get("id")
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) and len(value) <= MAX_ID_CHARS else None


def major(version: str) -> str:
    return str(version).split(".", 1)[0]


def _build(cls: type, obj: dict[str, Any], where: str) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in obj:
            kwargs[f.name] = _checked(obj[f.name], _hints(cls)[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError("bad_message", f"{where} needs a `{f.name}` field")
    return cls(**kwargs)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _checked(value: Any, hint: Any, where: str) -> Any:
    """`value` if it has the JSON shape `hint` describes (nested dataclasses built); else bad_message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _checked(value, inner, where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ProtocolError("bad_message", f"{where} must be an object")
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolError("bad_message", f"{where} must be a list")
        return [_checked(item, args[0], f"{where}[]") for item in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ProtocolError("bad_message", f"{where} must be an object")
        return {key: _checked(item, args[1], f"{where}.{key}") for key, item in value.items()}
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise ProtocolError("bad_message", f"{where} must be {getattr(hint, '__name__', hint)}, "
                        f"not {type(value).__name__}")
