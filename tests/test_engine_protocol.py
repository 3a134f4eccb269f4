"""The engine protocol's messages and journal, without an engine: every message survives JSON, anything
that is not a message is refused with a code, and the journal keeps order, keys and crash counts."""

from __future__ import annotations

import dataclasses
import json
import typing

import numpy as np
import pytest
from conftest import REPO

from engine.process import protocol as p
from engine.process.journal import Journal


def example(cls: type) -> p.Message:
    """An instance of `cls` with every field filled (so the round trip checks every field)."""
    values = {}
    for f in dataclasses.fields(cls):
        values[f.name] = sample_value(typing.get_type_hints(cls)[f.name])
    return cls(**values)


def sample_value(hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and type(None) in args:
        return sample_value(next(a for a in args if a is not type(None)))
    if dataclasses.is_dataclass(hint):
        return example(hint)
    if origin is list:
        return [sample_value(args[0])]
    if origin is dict:
        return {"k": sample_value(args[1]) if args[1] is not typing.Any else 1}
    return {str: "text", int: 3, float: 0.5, bool: True}.get(hint, "x")


@pytest.mark.parametrize("type_name", sorted(p.MESSAGES))
def test_every_message_round_trips_through_json(type_name):
    message = example(p.MESSAGES[type_name])
    data = p.encode(message)
    assert json.loads(data)["type"] == type_name
    assert p.decode(data) == message


def test_preview_round_trips_pixels():
    pixels = np.random.default_rng(0).integers(0, 256, (64, 8, 3), dtype=np.uint8)
    event = p.Progress(job="j", stage="denoise", step=1, total=4, fraction=0.3, preview=p.Preview.from_array(pixels))
    assert np.array_equal(p.decode(p.encode(event)).preview.to_array(), pixels)


@pytest.mark.parametrize("data, code", [
    (b"\x00\xff not json", "bad_message"),
    (b'{"type": "submit", "id": "a", "settings": {"prompt"', "bad_message"),  # truncated
    (b"[1, 2]", "bad_message"),
    (b'{"type": "frobnicate", "id": "u"}', "unknown_type"),
    (b'{"type": "cancel", "id": "c"}', "bad_message"),  # no job
    (b'{"type": "cancel", "id": "c", "job": 5}', "bad_message"),
    (b'{"type": "jobs", "id": "c", "limit": true}', "bad_message"),
    (b"[" * 100_000, "bad_message"),  # nested too deep for the JSON decoder
    (b" " * (p.MAX_MESSAGE_BYTES + 1), "too_large"),
])
def test_what_is_not_a_message_is_refused_with_its_code(data, code):
    with pytest.raises(p.ProtocolError) as caught:
        p.decode(data)
    assert caught.value.code == code
    assert len(str(caught.value).splitlines()) == 1


def test_unknown_fields_are_ignored_for_minor_versions():
    message = p.decode(b'{"type": "ping", "id": "x", "added_in_1_1": [1]}')
    assert message == p.Ping(id="x")


def test_protocol_doc_covers_every_message_and_error_code():
    doc = (REPO / "docs" / "protocol.md").read_text()
    for type_name, cls in p.MESSAGES.items():
        assert f"`{type_name}`" in doc, type_name
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in doc, f"{type_name}.{f.name}"
    for code in p.ERROR_CODES:
        assert f"`{code}`" in doc, code
    assert f"`{p.PROTOCOL_VERSION}`" in doc


def test_journal_keeps_priority_order_keys_and_crash_counts(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    batch1, _ = journal.submit({"settings": {"prompt": "a"}}, "batch", "k1")
    batch2, _ = journal.submit({"settings": {"prompt": "b"}}, "batch", None)
    live, _ = journal.submit({"settings": {"prompt": "c"}}, "interactive", None)
    again, duplicate = journal.submit({"settings": {"prompt": "other"}}, "batch", "k1")
    assert duplicate and again.id == batch1.id
    assert [job.id for job in journal.queued()] == [live.id, batch1.id, batch2.id]

    journal.mark_running(live.id)
    assert journal.recover("the engine was killed by SIGKILL") == []
    assert journal.get(live.id).state == "queued" and journal.get(live.id).crashes == 1
    journal.mark_running(live.id)
    (failed,) = journal.recover("the engine was killed by SIGSEGV")
    assert failed.id == live.id and failed.state == "failed" and failed.attempts == 2
    assert failed.error_message == "this job stopped the engine twice (last: the engine was killed by SIGSEGV)"
    for _ in range(2):  # a job whose results were written before the engine died is never failed for it
        journal.mark_running(batch2.id)
        assert journal.recover("killed", finished=lambda job: job.id == batch2.id) == []
    assert journal.get(batch2.id).state == "queued" and journal.get(batch2.id).crashes == 2
    journal.close()
    reopened = Journal(tmp_path / "journal.sqlite3")  # what was committed is there after a restart
    assert [job.id for job in reopened.queued()] == [batch1.id, batch2.id]
    assert reopened.get(live.id).info().error.startswith("engine_crashed: this job stopped the engine twice")


def test_submit_carries_the_guidance_interval():
    from engine.generation.settings import GenerationSettings

    settings = GenerationSettings(prompt="bass", scheduler="unipc", steps=8, guidance_interval=(0.3, 5.0))
    submit = p.Submit(id="s", settings=settings.to_dict(), bundle="/b")
    received = p.decode(p.encode(submit))
    assert received.settings["guidance_interval"] == [0.3, 5.0]
    assert GenerationSettings.from_dict(received.settings).validate() == settings


def test_one_error_table_both_ways_and_every_code_documented():
    """The exception <-> code table lived in three copies that disagreed (batch turned `model_bundle` and
    `provider` failures into EngineError: exit 5 where generate exits 3 or 4). Now each class carries its
    code; the engine's code for an error comes back to the client as the same type and exit code."""
    from engine.client import error_for
    from engine.errors import WIRE_TYPES, EngineError, RiffstudioError
    from engine.process.memory import MemoryCeilingError
    from engine.process.server import error_code

    for cls in (*WIRE_TYPES, MemoryCeilingError):
        code = error_code(cls("what went wrong"))
        assert code in p.ERROR_CODES, code
        back = error_for(code, "what went wrong")
        assert type(back) is cls and back.exit_code == cls.exit_code and str(back) == "what went wrong"
    assert error_code(RuntimeError("a bug")) == "internal" and error_code(RiffstudioError("x")) == "internal"
    assert isinstance(error_for("internal", "a bug"), EngineError)
