"""Reading `.safetensors` checkpoints into numpy, one tensor at a time, without torch.

The format: 8 bytes of little-endian header length, a JSON header mapping each tensor's name to its
dtype, shape and `data_offsets` (byte range in the data after the header), then the data. We check the
header ourselves before the `safetensors` library sees it, so a file that lies about itself (offsets
outside the file or overlapping, sizes that do not fit the shape, a huge header length) is one line
naming the file, never a library traceback. Tensors are read with `safetensors.safe_open(...,
framework="numpy")`, except bfloat16, which numpy cannot hold: we read its bytes and widen to float32.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelBundleError, reason
from engine.model_get.weight_file import (
    ClosedOnExit,
    bfloat16_to_float32,
    damaged,
    missing_weight,
    unsupported_number_type,
)

# safetensors' dtype codes -> (numpy-style name, bytes per element, numpy can hold it). The float8 codes
# get torch's names; numpy has no float8, so reading them is refused with a clear message.
_NUMBER_TYPES: dict[str, tuple[str, int, bool]] = {
    "BOOL": ("bool", 1, True),
    "U8": ("uint8", 1, True),
    "I8": ("int8", 1, True),
    "U16": ("uint16", 2, True),
    "I16": ("int16", 2, True),
    "F16": ("float16", 2, True),
    "BF16": ("bfloat16", 2, True),
    "U32": ("uint32", 4, True),
    "I32": ("int32", 4, True),
    "F32": ("float32", 4, True),
    "U64": ("uint64", 8, True),
    "I64": ("int64", 8, True),
    "F64": ("float64", 8, True),
    "F8_E4M3": ("float8_e4m3fn", 1, False),
    "F8_E5M2": ("float8_e5m2", 1, False),
}
# The safetensors library refuses longer headers; a larger length is a damaged file, not a big model.
_MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header describes it; `start`/`stop` are absolute byte offsets in the file."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    stop: int
    readable: bool


def read_header(path: Path) -> dict[str, TensorEntry]:
    """The header's tensors in data order, checked against the file: every byte of data belongs to exactly
    one tensor, and each tensor's byte count is its shape times its element size.

    Raises ModelBundleError (`damaged`) for any header that lies about the file.
    """
    try:
        with path.open("rb") as file:
            file_size = file.seek(0, 2)
            file.seek(0)
            if file_size < 8:
                raise damaged(path, f"only {file_size} bytes")
            header_size = int.from_bytes(file.read(8), "little")
            if header_size > _MAX_HEADER_BYTES or 8 + header_size > file_size:
                raise damaged(path, f"its header claims {header_size} bytes, the file has {file_size}")
            text = file.read(header_size)
    except OSError as error:
        raise ModelBundleError(f"{path} cannot be read ({reason(error)}): check the path") from None
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise damaged(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise damaged(path, "its header is not a JSON object")
    data_start = 8 + header_size
    entries = {name: _entry(path, name, value, data_start)
               for name, value in header.items() if name != "__metadata__"}
    if not isinstance(header.get("__metadata__", {}), dict):
        raise damaged(path, "its __metadata__ is not a JSON object")
    # Sorted by position, each tensor must start where the previous one stopped, and the last must end
    # at the end of the file: overlaps, holes and data past the end are all lies.
    ordered = sorted(entries.items(), key=lambda item: (item[1].start, item[1].stop))
    position = data_start
    for name, entry in ordered:
        if entry.start != position:
            what = "overlaps another" if entry.start < position else "leaves a gap before it"
            raise damaged(path, f"tensor {name!r} {what}")
        position = entry.stop
    if position != file_size:
        raise damaged(path, f"its tensors end at byte {position}, the file at byte {file_size}")
    return dict(ordered)


def _entry(path: Path, name: str, value: Any, data_start: int) -> TensorEntry:
    """One header record, checked for form and for a byte count that fits its shape and dtype."""
    if not isinstance(value, dict):
        raise damaged(path, f"tensor {name!r} has no description")
    code, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if not (isinstance(shape, list) and all(_is_count(n) for n in shape)):
        raise damaged(path, f"tensor {name!r} has a malformed shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(n) for n in offsets)
            and offsets[0] <= offsets[1]):
        raise damaged(path, f"tensor {name!r} has malformed data_offsets")
    if code not in _NUMBER_TYPES:
        raise ModelBundleError(f"{path}: tensor {name!r} has the unknown number type {code!r}: "
                               "use a float32, float16 or bfloat16 checkpoint")
    dtype, itemsize, readable = _NUMBER_TYPES[code]
    if offsets[1] - offsets[0] != math.prod(shape) * itemsize:
        raise damaged(path, f"tensor {name!r} holds {offsets[1] - offsets[0]} bytes, its shape needs "
                            f"{math.prod(shape) * itemsize}")
    return TensorEntry(dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1], readable)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SafetensorsFile(ClosedOnExit):
    """A `.safetensors` checkpoint as a `WeightFile`: the header is read and checked at open, each tensor
    when asked for (the library memory-maps the file, so nothing else is held)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._entries = read_header(self.path)
        # Imported here so that importing this module stays cheap for callers that only sniff files.
        from safetensors import SafetensorError, safe_open

        self._library_error = SafetensorError
        try:
            self._handle: Any = safe_open(str(self.path), framework="numpy")
        except SafetensorError as error:  # our checks passed, the library's did not
            raise damaged(self.path, reason(error)) from None
        except OSError as error:
            raise ModelBundleError(f"{self.path} cannot be read ({reason(error)}): check the path") from None

    def names(self) -> list[str]:
        """In data order, so reading them in turn reads the file front to back."""
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def dtype(self, name: str) -> str:
        return self._entry(name).dtype

    def read(self, name: str) -> np.ndarray:
        entry = self._entry(name)
        if self._handle is None:
            raise ValueError(f"{self.path} is closed")
        if not entry.readable:
            raise unsupported_number_type(self.path, name, entry.dtype)
        if entry.dtype == "bfloat16":
            return self._read_bfloat16(entry)
        try:
            return self._handle.get_tensor(name)
        except (self._library_error, OSError, TypeError, ValueError) as error:
            raise damaged(self.path, f"tensor {name!r}: {reason(error)}") from None

    def _read_bfloat16(self, entry: TensorEntry) -> np.ndarray:
        """The library's numpy side cannot give bfloat16: read its little-endian bits ourselves, widen."""
        bits = np.empty(math.prod(entry.shape), np.dtype("<u2"))
        try:
            with self.path.open("rb") as file:
                file.seek(entry.start)
                got = file.readinto(bits.view(np.uint8))
        except OSError as error:
            raise ModelBundleError(f"{self.path} cannot be read ({reason(error)}): check the path") from None
        if got != entry.stop - entry.start:
            raise damaged(self.path, "a tensor's data ends early")
        if sys.byteorder == "big":
            bits = bits.astype(np.uint16)
        return bfloat16_to_float32(bits).reshape(entry.shape)

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise missing_weight(self.path, name) from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.__exit__(None, None, None)  # safe_open releases its memory map on exit
            self._handle = None
