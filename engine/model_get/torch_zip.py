"""Reading torch's zip checkpoints (`.bin`, `.ckpt`, `.pt` from `torch.save`, torch 1.6 on) without torch.

The format (torch/serialization.py `_save`): a zip, every member stored uncompressed under one folder
named after the file (`<archive>/`):

- `data.pkl`: the pickled object, protocol 2. Each tensor is a call of `torch._utils._rebuild_tensor_v2`
  (storage, offset, size, stride, requires_grad, backward_hooks) whose storage is a persistent id
  `("storage", torch.FloatStorage, "<key>", "cpu", numel)`; number types numpy-era torch lacked a storage
  class for (uint16/32/64, float8) use `_rebuild_tensor_v3` with `torch.storage.UntypedStorage` (numel in
  bytes) and the dtype (`torch.uint16`) as a further argument.
- `data/<key>`: each storage's raw bytes, in the byte order of `byteorder` ("little" when absent).
- `version`, `.format_version`, `.storage_alignment`, `.data/serialization_id`: nothing we need.

A pickle can name any Python function and call it, so `data.pkl` is read by an unpickler whose
`find_class` knows only what `torch.load(weights_only=True)` allows for a plain state dict, mapped to
inert stand-ins of ours: a storage becomes a `_Storage` record, a tensor a `_Tensor` record (storage,
offset, shape, stride); no tensor data is read until `read(name)`. Any other global is refused before
anything runs: that is how a checkpoint that would run code (`os.system`, `eval`, a training library's
class) ends, as one line naming what it asked for.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from engine.errors import ModelBundleError, reason
from engine.model_get.weight_file import (
    ClosedOnExit,
    bfloat16_to_float32,
    damaged,
    missing_weight,
    unsupported_number_type,
)


class _Malformed(Exception):
    """The pickle is well-formed pickle but not a well-formed checkpoint; becomes `damaged`."""


class _Refused(Exception):
    """The pickle names a global outside the allowlist; becomes the "asks to run code" error."""

    def __init__(self, qualified_name: str) -> None:
        super().__init__(qualified_name)
        self.qualified_name = qualified_name


class _Inert:
    """Base of everything our unpickler puts on its stack: pickle's BUILD opcode sets attributes through
    `__setstate__` when an object has one, so ours refuses, and no record can be altered after it is made."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _Malformed(f"its pickle alters a {type(self).__name__.strip('_').lower()} record after making it")


@dataclass(frozen=True)
class _NumberType(_Inert):
    """A torch dtype as the file names it. `name` is torch's name and our `dtype()` answer; `readable` is
    whether numpy can hold it (bfloat16 is read as its uint16 bits and widened)."""

    name: str
    itemsize: int
    readable: bool = True

    @property
    def element(self) -> np.dtype:
        """The numpy dtype its bytes are read as."""
        return np.dtype(np.uint16 if self.name == "bfloat16" else self.name)


_NUMBER_TYPES = {
    number.name: number
    for number in (
        _NumberType("float32", 4), _NumberType("float16", 2), _NumberType("bfloat16", 2),
        _NumberType("float64", 8), _NumberType("int64", 8), _NumberType("int32", 4), _NumberType("int16", 2),
        _NumberType("int8", 1), _NumberType("uint8", 1), _NumberType("bool", 1),
        _NumberType("uint16", 2), _NumberType("uint32", 4), _NumberType("uint64", 8),
        _NumberType("float8_e4m3fn", 1, False), _NumberType("float8_e5m2", 1, False),
        _NumberType("float8_e4m3fnuz", 1, False), _NumberType("float8_e5m2fnuz", 1, False),
    )
}


@dataclass(frozen=True)
class _StorageClass(_Inert):
    """A storage class named in a persistent id (`torch.FloatStorage`, `torch.storage.UntypedStorage`)."""

    number_type: _NumberType


@dataclass(frozen=True)
class _Storage(_Inert):
    """A storage the pickle refers to: its bytes are the zip member `<archive>/data/<key>`."""

    key: str
    number_type: _NumberType
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * self.number_type.itemsize


@dataclass(frozen=True)
class _Tensor(_Inert):
    """A tensor as a view of a storage, in elements of `number_type` (as torch's `set_` takes them)."""

    storage: _Storage
    number_type: _NumberType
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def extent(self) -> int:
        """How many elements of the storage the view spans, from `offset` on (0 when it is empty)."""
        if 0 in self.shape:
            return 0
        return 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True))

    @property
    def contiguous(self) -> bool:
        """Whether the spanned elements are the tensor in C order, so no strided copy is needed."""
        expected = 1
        for n, s in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True


class _PickledOrderedDict(OrderedDict):
    """`collections.OrderedDict` as the pickle builds it. An nn.Module's state dict carries `_metadata`
    (per-module versions) as an attribute set by BUILD; we have no use for it and keep nothing."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise _Malformed("BUILD on an OrderedDict with a state that is not a dict")


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Malformed(f"{what} is negative or not a whole number")
    return value


def _counts(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list):
        raise _Malformed(f"{what} is not a tuple")
    return tuple(_count(n, what) for n in value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, number_type: _NumberType | None = None) -> _Tensor:
    """A checked `_Tensor`: the view must lie inside its storage, or `read` would read another tensor's
    bytes (or, through `as_strided`, memory outside the buffer)."""
    if not isinstance(storage, _Storage):
        raise _Malformed("a tensor's storage is not a storage")
    number_type = number_type or storage.number_type
    shape, strides = _counts(size, "a tensor's size"), _counts(stride, "a tensor's stride")
    if len(shape) != len(strides):
        raise _Malformed("a tensor's size and stride differ in length")
    tensor = _Tensor(storage, number_type, _count(offset, "a tensor's offset"), shape, strides)
    if tensor.extent and (tensor.offset + tensor.extent) * number_type.itemsize > storage.nbytes:
        raise _Malformed(f"a tensor reaches past the end of storage {storage.key!r}")
    return tensor


def _no_metadata(metadata: Any) -> None:
    # torch puts conj/neg bits and the like here; a state dict of real weights has none.
    if metadata not in (None, {}):
        raise _Malformed("a tensor carries metadata riffstudio does not know")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _Tensor:
    """torch._utils._rebuild_tensor: the oldest zip form."""
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any, backward_hooks: Any,
    metadata: Any = None,
) -> _Tensor:
    """torch._utils._rebuild_tensor_v2: what torch.save writes for every tensor with a storage class."""
    _no_metadata(metadata)
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any, backward_hooks: Any,
    dtype: Any, metadata: Any = None,
) -> _Tensor:
    """torch._utils._rebuild_tensor_v3: an untyped (byte) storage read as `dtype` (uint16/32/64, float8)."""
    _no_metadata(metadata)
    if not isinstance(dtype, _NumberType):
        raise _Malformed("a tensor's dtype is not a dtype")
    return _tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> _Tensor:
    """torch._utils._rebuild_parameter: an nn.Parameter saved as such; its tensor is all we keep."""
    if not isinstance(data, _Tensor):
        raise _Malformed("a parameter without a tensor")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> _Tensor:
    """torch._utils._rebuild_parameter_with_state: allowed only with no extra Python state (which would
    be set as attributes on the parameter)."""
    if state not in (None, {}, ()):
        raise _Malformed("a parameter carries Python state")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _size(dims: Any) -> tuple[int, ...]:
    """torch.Size, as a plain tuple."""
    return _counts(dims, "a torch.Size")


def _set(items: Any) -> set[Any]:
    """builtins.set, from a list or tuple only (protocol 2 pickles sets as `set([...])`)."""
    if not isinstance(items, list | tuple):
        raise _Malformed("a set from something other than a list")
    return set(items)


def _encode(text: Any, encoding: Any = "latin1") -> bytes:
    """_codecs.encode, as protocol 2 pickles bytes (`encode(str, "latin1")`); no other codec is looked up."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Malformed("bytes in a form riffstudio does not know")
    return text.encode("latin1")


@dataclass(frozen=True)
class _TrainingRecord(_Inert):
    """A class a training checkpoint names beside its weights (PyTorch Lightning's `ModelCheckpoint` callback,
    used as the key of its saved state): kept as a name, never called (pickle refuses to call it)."""

    qualified_name: str


class _NumpyDtype(_Inert):
    """`numpy.dtype(...)` as a pickle builds it for a numpy scalar's type: only plain number types, and the
    state BUILD gives it is read for its byte order alone."""

    __slots__ = ("element",)

    def __init__(self, element: np.dtype) -> None:
        self.element = element

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "=")):
            raise _Malformed("a numpy dtype with a state riffstudio does not know")
        self.element = self.element.newbyteorder(state[1]) if state[1] in ("<", ">") else self.element


def _numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> _NumpyDtype:
    """numpy.dtype, for the plain number types training loops save scores in (`f8`, `i8`, ...)."""
    if not isinstance(name, str) or name.lstrip("<>|=") not in _NUMPY_SCALARS:
        raise _Malformed("a numpy dtype riffstudio does not know")
    return _NumpyDtype(np.dtype(name))


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """numpy's scalar reconstructor (`best_model_score` and the like): a number read from its bytes."""
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes) or len(data) != dtype.element.itemsize:
        raise _Malformed("a numpy scalar riffstudio does not know")
    return np.frombuffer(data, dtype=dtype.element)[0].item()


_NUMPY_SCALARS = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1", "float64", "float32",
                  "int64", "int32", "bool"}
# What a PyTorch Lightning checkpoint (SD 1.x's and riffusion's .ckpt) names outside its state dict: the
# callback class its state is keyed by, and numpy scalars. None of it is ever called; the weights are read
# from "state_dict" and everything else is dropped.
_TRAINING_RECORDS: dict[tuple[str, str], Any] = {
    ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"):
        _TrainingRecord("pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
    ("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint"):
        _TrainingRecord("lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint"),
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}

_STORAGE_CLASSES = {
    "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}
# Every global data.pkl may name: what `torch.load(weights_only=True)` allows for a plain state dict.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _PickledOrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch", "Size"): _size,
    ("builtins", "set"): _set,
    ("_codecs", "encode"): _encode,
    ("torch.storage", "UntypedStorage"): _StorageClass(_NUMBER_TYPES["uint8"]),
    **{("torch", name): _StorageClass(_NUMBER_TYPES[dtype]) for name, dtype in _STORAGE_CLASSES.items()},
    **{("torch", name): number for name, number in _NUMBER_TYPES.items()},
    **_TRAINING_RECORDS,
}
# Protocol 2 pickles name Python 2's modules; the C unpickler maps them only in its own find_class.
_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _StateDictUnpickler(pickle.Unpickler):
    """pickle's C unpickler with our allowlist. Every callable the pickle can reach comes from
    `find_class`, so every call REDUCE, NEWOBJ or OBJ makes is one of the checked functions above."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PYTHON2_MODULES.get(module, module)
        try:
            return _ALLOWED[module, name]
        except (KeyError, TypeError):
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> _Storage:
        """torch's storage reference `("storage", storage_class, key, location, numel)`, as a record; the
        location (cpu, cuda:0...) does not matter, every tensor is read to the CPU."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] in ("storage", b"storage")):
            raise _Malformed("a persistent id that is not a storage")
        _, storage_class, key, _, numel = pid
        if not isinstance(storage_class, _StorageClass) or not isinstance(key, str):
            raise _Malformed("a storage reference in a form riffstudio does not know")
        storage = _Storage(key, storage_class.number_type, _count(numel, "a storage's size"))
        if self.storages.setdefault(key, storage) != storage:
            raise _Malformed(f"storage {key!r} is described twice, differently")
        return storage


class TorchZipFile(ClosedOnExit):
    """A torch zip checkpoint as a `WeightFile`: the pickle is read (safely) at open, each tensor's bytes
    when asked for. One open file is shared by every read, so use one `TorchZipFile` per thread.

    The weights are the checkpoint's `state_dict` entry when it has one (PyTorch Lightning's `.ckpt`,
    riffusion's: `{"state_dict": {...}, "global_step": ...}`), else its top level (a `.bin` state dict);
    entries that are not tensors (step counts, versions) are not weights and are left out.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        try:
            self._file: io.BufferedReader | None = self.path.open("rb")
        except OSError as error:
            raise ModelBundleError(f"{self.path} cannot be read ({reason(error)}): check the path") from None
        try:
            try:
                # The zip keeps its own position in the shared file, so our direct reads do not disturb it.
                self._zip = zipfile.ZipFile(self._file)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as error:
                raise damaged(self.path, f"its zip index: {reason(error)}") from None
            self._open(self._zip)
        except BaseException:
            self.close()
            raise

    def _open(self, archive: zipfile.ZipFile) -> None:
        """Find data.pkl, read it through the allowlist, and check every storage it names is in the zip."""
        prefix = self._archive_prefix(archive)
        self._swap = self._byte_order(archive, prefix) != sys.byteorder
        result, storages = self._unpickle(archive, f"{prefix}/data.pkl")
        self._tensors = self._weights(result)
        self._members = {key: self._member(archive, f"{prefix}/data/{key}", storage)
                         for key, storage in storages.items()}
        self._data_starts: dict[str, int] = {}

    def _archive_prefix(self, archive: zipfile.ZipFile) -> str:
        """The folder holding data.pkl (torch names it after the file; any name will do)."""
        names = archive.namelist()
        pickles = [name for name in names if name.count("/") == 1 and name.endswith("/data.pkl")]
        if not pickles:
            raise ModelBundleError(
                f"{self.path} is a zip file but not a torch checkpoint (no data.pkl): use the model's "
                ".safetensors file")
        prefix = pickles[0].split("/")[0]
        if f"{prefix}/constants.pkl" in names:
            raise ModelBundleError(
                f"{self.path} is a TorchScript program, not a checkpoint of weights: use the model's "
                ".safetensors file")
        return prefix

    def _byte_order(self, archive: zipfile.ZipFile, prefix: str) -> str:
        try:
            order = archive.read(f"{prefix}/byteorder")
        except KeyError:
            return "little"  # torch wrote none before 1.13, and loads those as little-endian
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise damaged(self.path, reason(error)) from None
        if order not in (b"little", b"big"):
            raise damaged(self.path, "its byteorder record is neither little nor big")
        return order.decode()

    def _unpickle(self, archive: zipfile.ZipFile, member: str) -> tuple[Any, dict[str, _Storage]]:
        """data.pkl through the allowlist. Any failure of the pickle itself is a damaged file; a refused
        global is the "asks to run code" error, raised when the pickle names it, before any call."""
        try:
            with archive.open(member) as pickled:
                unpickler = _StateDictUnpickler(pickled)
                return unpickler.load(), unpickler.storages
        except _Refused as refused:
            raise ModelBundleError(
                f"{self.path} asks to run code ({refused.qualified_name}) while loading: refused; use a "
                ".safetensors file or a checkpoint saved as a plain state dict") from None
        except _Malformed as error:
            raise damaged(self.path, str(error)) from None
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, TypeError, ValueError, KeyError,
                IndexError, AttributeError, RecursionError, MemoryError) as error:
            # Whatever a malformed pickle makes the unpickler or our checked functions throw.
            raise damaged(self.path, f"its pickle: {reason(error, 120)}") from None

    def _weights(self, result: Any) -> dict[str, _Tensor]:
        if not isinstance(result, dict):
            raise ModelBundleError(f"{self.path} holds no state dict of weights: use the model's .safetensors file")
        inner = result.get("state_dict")
        source = inner if isinstance(inner, dict) else result
        tensors = {name: value for name, value in source.items()
                   if isinstance(name, str) and isinstance(value, _Tensor)}
        if not tensors:
            raise ModelBundleError(f"{self.path} holds no weights: use the model's .safetensors file")
        return tensors

    def _member(self, archive: zipfile.ZipFile, name: str, storage: _Storage) -> zipfile.ZipInfo:
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise damaged(self.path, f"the data of storage {storage.key!r} is missing") from None
        if info.file_size < storage.nbytes:
            raise damaged(self.path, f"storage {storage.key!r} holds {info.file_size} bytes of {storage.nbytes}")
        return info

    def names(self) -> list[str]:
        """In the state dict's order (the order the model's modules registered them)."""
        return list(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._tensor(name).shape

    def dtype(self, name: str) -> str:
        return self._tensor(name).number_type.name

    def read(self, name: str) -> np.ndarray:
        """Reads only the bytes the tensor spans, straight into the array that is returned when the tensor
        is contiguous (the usual case); a strided view (a transposed tensor) is copied once into C order."""
        tensor = self._tensor(name)
        number_type = tensor.number_type
        if not number_type.readable:
            raise unsupported_number_type(self.path, name, number_type.name)
        span = np.empty(tensor.extent, number_type.element)  # at most the storage: checked at open
        self._read_into(tensor.storage, tensor.offset * number_type.itemsize, span)
        if self._swap:
            span.byteswap(inplace=True)
        array = span.reshape(tensor.shape) if tensor.contiguous else self._copy_view(name, tensor, span)
        return bfloat16_to_float32(array) if number_type.name == "bfloat16" else array

    def _copy_view(self, name: str, tensor: _Tensor, span: np.ndarray) -> np.ndarray:
        """A strided view of the spanned elements, copied into C order. The strides were checked to stay
        inside `span` at open; a view repeating elements (stride 0) may still ask for more than memory."""
        itemsize = tensor.number_type.itemsize
        try:
            if math.prod(tensor.shape) == 0:
                return np.empty(tensor.shape, span.dtype)
            strides = tuple(s * itemsize for s in tensor.stride)
            view = np.lib.stride_tricks.as_strided(span, tensor.shape, strides, writeable=False)
            return np.ascontiguousarray(view)
        except (MemoryError, ValueError):
            raise ModelBundleError(
                f"{self.path}: weight {name!r} of shape {tensor.shape} does not fit in memory: "
                "use the model's .safetensors file") from None

    def _read_into(self, storage: _Storage, byte_offset: int, out: np.ndarray) -> None:
        """Fill `out` from a storage's bytes at `byte_offset`. torch stores members uncompressed, so we
        read from the file at the member's data offset; a re-compressed zip goes through zipfile."""
        if self._file is None or self._zip is None:
            raise ValueError(f"{self.path} is closed")
        info = self._members[storage.key]
        target = out.reshape(-1).view(np.uint8)
        try:
            if info.compress_type == zipfile.ZIP_STORED:
                self._file.seek(self._data_start(info) + byte_offset)
                got = self._file.readinto(target)
            else:
                with self._zip.open(info) as member:
                    member.seek(byte_offset)
                    data = member.read(target.nbytes)
                got = len(data)
                target[:got] = np.frombuffer(data, np.uint8)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise damaged(self.path, f"storage {storage.key!r}: {reason(error)}") from None
        if got != target.nbytes:
            raise damaged(self.path, f"the data of storage {storage.key!r} ends early")

    def _data_start(self, info: zipfile.ZipInfo) -> int:
        """Where a stored member's bytes begin: after its local header, whose name and extra field (torch
        pads with it to align data to 64 bytes) may differ from the central directory's."""
        start = self._data_starts.get(info.filename)
        if start is None:
            assert self._file is not None
            self._file.seek(info.header_offset)
            local = self._file.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise damaged(self.path, f"the zip entry {info.filename!r} has no local header")
            name_length = int.from_bytes(local[26:28], "little")
            extra_length = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_length + extra_length
            self._data_starts[info.filename] = start
        return start

    def _tensor(self, name: str) -> _Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            raise missing_weight(self.path, name) from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._file is not None:
            self._file.close()
            self._file = None
