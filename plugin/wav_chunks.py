"""The WAV chunks DAWs read for loops, written by us (no library writes `acid`), placed before `data`.

    data = add_loop_chunks(wav_bytes, LoopInfo(...))   # a RIFF/WAVE file from soundfile, chunks added

- `acid` (ACID / Sony): loop (not one-shot), stretch on, root note (the key's tonic, when one was found:
  0x30 = C3 ... 0x3B = B3, with the 'root note set' flag; otherwise unset), beats, meter, tempo.
  Cubase switches such files to musical mode; FL Studio and Pro Tools read the tempo.
- `smpl`: one forward loop over the whole file, played forever (FL Studio and samplers); its MIDI unity
  note is the acid root note when a key was found (a sampler then maps the loop to its key), else 60.
- `cue ` + `LIST/adtl` labels: a marker at the start of every bar ("Bar 1", "Bar 2", ...).
- `LIST/INFO`: INAM (the name), ICMT (the prompt), ISFT (riffstudio and its version), IKEY (seed,
  tempo, bars, meter, key), ICRD (date).

Layouts: the ACID chunk as libsndfile reads it (wav.c `wav_read_acid_chunk`), `smpl` and `cue ` as
in the Microsoft/IBM RIFF spec (Multimedia Programming Interface and Data Specifications 1.0).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

ACID_ONE_SHOT = 0x01
ACID_ROOT_NOTE_SET = 0x02
ACID_STRETCH = 0x04


@dataclass(frozen=True)
class LoopInfo:
    """What the chunks say. `bar_starts`: sample index of each bar (cue markers)."""

    num_samples: int
    sample_rate: int
    bpm: float
    beats: int
    meter_numerator: int = 4
    meter_denominator: int = 4
    bar_starts: tuple[int, ...] = ()
    name: str = ""
    comment: str = ""
    software: str = ""
    keywords: str = ""
    created: str = ""  # YYYY-MM-DD
    extra_info: dict[str, str] = field(default_factory=dict)
    root_note: int | None = None  # MIDI-style note of the key's tonic (48 = C3 .. 59 = B3), None = unknown


def acid_chunk(info: LoopInfo) -> bytes:
    flags = ACID_STRETCH  # a loop (no one-shot bit), stretched to tempo
    root = 60  # what we wrote before keys were found; readers ignore it without the flag
    if info.root_note is not None:
        flags |= ACID_ROOT_NOTE_SET
        root = int(info.root_note)
    body = struct.pack("<IHHfIHHf", flags, root, 0x8000, 0.0, max(int(info.beats), 0),
                       info.meter_denominator, info.meter_numerator, float(info.bpm))
    return _chunk(b"acid", body)


def smpl_chunk(info: LoopInfo) -> bytes:
    period_ns = round(1e9 / info.sample_rate)
    unity = 60 if info.root_note is None else int(info.root_note)  # a sampler plays the loop at its key's tonic
    header = struct.pack("<IIIIIIIII", 0, 0, period_ns, unity, 0, 0, 0, 1, 0)
    loop = struct.pack("<IIIIII", 0, 0, 0, max(info.num_samples - 1, 0), 0, 0)  # forward, whole file, forever
    return _chunk(b"smpl", header + loop)


def cue_chunk(info: LoopInfo) -> bytes:
    points = b"".join(struct.pack("<II4sIII", index + 1, start, b"data", 0, 0, start)
                      for index, start in enumerate(info.bar_starts))
    return _chunk(b"cue ", struct.pack("<I", len(info.bar_starts)) + points)


def adtl_list(info: LoopInfo) -> bytes:
    labels = b"".join(_chunk(b"labl", struct.pack("<I", index + 1) + _zstring(f"Bar {index + 1}"))
                      for index in range(len(info.bar_starts)))
    return _chunk(b"LIST", b"adtl" + labels)


def info_list(info: LoopInfo) -> bytes:
    fields = {"INAM": info.name, "ICMT": info.comment, "ISFT": info.software, "IKEY": info.keywords,
              "ICRD": info.created, **info.extra_info}
    body = b"".join(_chunk(tag.encode("ascii"), _zstring(text)) for tag, text in fields.items() if text)
    return _chunk(b"LIST", b"INFO" + body)


def loop_chunks(info: LoopInfo) -> bytes:
    chunks = [acid_chunk(info), smpl_chunk(info)]
    if info.bar_starts:
        chunks += [cue_chunk(info), adtl_list(info)]
    chunks.append(info_list(info))
    return b"".join(chunks)


def add_loop_chunks(wav: bytes, info: LoopInfo) -> bytes:
    """`wav` (a RIFF/WAVE file) with our chunks inserted just before `data` (and any of the same kind
    it had dropped), RIFF size updated."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    ours = {b"acid", b"smpl", b"cue ", b"LIST"}
    before, data, after = [], None, []
    position = 12
    while position + 8 <= len(wav):
        tag = wav[position : position + 4]
        size = struct.unpack("<I", wav[position + 4 : position + 8])[0]
        end = position + 8 + size + (size & 1)
        chunk = wav[position:end]
        if tag == b"data":
            data = chunk
        elif tag not in ours:
            (before if data is None else after).append(chunk)
        position = end
    if data is None:
        raise ValueError("the WAVE file has no data chunk")
    body = b"WAVE" + b"".join(before) + loop_chunks(info) + data + b"".join(after)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _zstring(text: str) -> bytes:
    """A NUL-terminated string: UTF-8 (what current DAWs and wavinfo read), unencodable parts dropped."""
    return text.encode("utf-8", "replace") + b"\0"
