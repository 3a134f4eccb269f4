"""One interface over checkpoint weight files (`WeightFile`), and `open_weight_file`, which picks the reader.

Producers download checkpoints from anywhere, often renamed (a `.ckpt` that is really safetensors, a
`.bin` that is a zip), so the reader is chosen by the file's first bytes, never by its suffix. Both
readers are lazy: a tensor is read from disk when asked for, so a 3.4 GB UNet is never in memory twice.

Every failure is a one-line `ModelBundleError` naming the file and saying what to do; the helpers here
(`damaged`, `unsupported_number_type`) keep the two readers' messages the same.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import numpy as np

from engine.errors import ModelBundleError, reason

# What `torch.save` wrote before torch 1.6 (and with `_use_new_zipfile_serialization=False`): a pickle
# that starts with this magic number (pickled as an 80-bit LONG1) before the legacy storage records.
_LEGACY_TORCH_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty zip


class WeightFile(Protocol):
    """Named tensors in a checkpoint file, read one at a time.

    `dtype` is the number type as stored, in numpy's spelling ("float32", "float16", "bfloat16",
    "int64", ...); `read` gives the tensor with that dtype, except bfloat16, which numpy lacks: it is
    widened to float32 exactly (every bfloat16 value is a float32 value).
    """

    path: Path

    def names(self) -> list[str]:
        """Every tensor's name, in the file's order."""
        ...

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape, from the file's index (no data is read)."""
        ...

    def dtype(self, name: str) -> str:
        """The tensor's number type as stored, numpy-style (no data is read)."""
        ...

    def read(self, name: str) -> np.ndarray:
        """The tensor as a new C-contiguous array (bfloat16 widened to float32)."""
        ...

    def close(self) -> None:
        """Release the file; reading afterwards is a programming error."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...


class ClosedOnExit:
    """`with reader:` closes it: what both readers share of the protocol's context manager."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def open_weight_file(path: Path) -> WeightFile:
    """The right reader for `path`, chosen by content: a safetensors header, a torch zip, or a one-line error.

    Raises ModelBundleError for an unreadable file, an old (pre-1.6) torch pickle, or anything else.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            head = file.read(16)
    except OSError as error:
        raise ModelBundleError(f"{path} cannot be read ({reason(error)}): check the path") from None
    # Imported here: both readers import this module's helpers.
    if head[:4] in _ZIP_STARTS:
        from engine.model_get.torch_zip import TorchZipFile

        return TorchZipFile(path)
    if head[:1] == b"\x80" and head[2:14] == _LEGACY_TORCH_MAGIC:
        raise ModelBundleError(
            f"{path} is an old torch format riffstudio cannot read without torch: convert it with "
            "`riffstudio model convert` (needs the export extra) or use a .safetensors file"
        )
    if head[8:9] == b"{":  # 8 bytes of header length, then the JSON header
        from engine.model_get.safetensors_file import SafetensorsFile

        return SafetensorsFile(path)
    raise ModelBundleError(
        f"{path} is not a model weight file (neither safetensors nor a torch checkpoint): "
        "use the model's .safetensors file"
    )


def damaged(path: Path, detail: str) -> ModelBundleError:
    """The error for a file whose index or data contradicts itself: a broken or partial download."""
    detail = " ".join(detail.split())[:200]  # one line, even when a library's reason is not
    return ModelBundleError(f"{path} is damaged or incomplete ({detail}): download it again")


def unsupported_number_type(path: Path, name: str, dtype: str) -> ModelBundleError:
    """The error for a tensor stored in a number type numpy cannot hold (float8 and the like)."""
    return ModelBundleError(
        f"{path}: weight {name!r} is stored as {dtype}, which riffstudio cannot read: "
        "use a float32, float16 or bfloat16 checkpoint"
    )


def missing_weight(path: Path, name: str) -> ModelBundleError:
    """The error for asking a file for a tensor it does not hold: not the model the caller expected."""
    return ModelBundleError(f"{path} holds no weight named {name!r}: it is not the model riffstudio expected")


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (their raw bits as native uint16) as float32: the same number, exactly.

    bfloat16 is the top half of a float32, so shifting the bits up by 16 is the whole conversion (NaN
    payloads and signed zeros included), as torch's `.float()` does.
    """
    wide = bits.astype(np.uint32)
    wide <<= 16
    return wide.view(np.float32)
