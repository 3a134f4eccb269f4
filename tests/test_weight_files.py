"""Checkpoint weights read without torch (engine/model_get): safetensors and torch zip files give torch's own
values, and a file that lies about itself or would run code is one line naming the file."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

from engine.errors import ModelBundleError
from engine.model_get.weight_file import WeightFile, open_weight_file


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """What a reader must give for `tensor`: its values, with bfloat16 widened to float32."""
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def assert_reads_as(file: WeightFile, reference: dict[str, torch.Tensor]) -> None:
    """Same names, shapes, stored dtypes and values, bit for bit (bfloat16 too)."""
    assert sorted(file.names()) == sorted(reference)
    for name, tensor in reference.items():
        expected = as_numpy(tensor)
        assert file.shape(name) == tuple(tensor.shape), name
        assert file.dtype(name) == str(tensor.dtype).removeprefix("torch."), name
        value = file.read(name)
        assert value.dtype == expected.dtype and value.shape == expected.shape, name
        assert value.flags.c_contiguous and value.flags.writeable, name
        assert value.tobytes() == expected.tobytes(), name


def one_line_error(path: Path, *needles: str) -> str:
    """The ModelBundleError opening `path` (and reading every tensor) raises: one line, naming the file."""
    with pytest.raises(ModelBundleError) as caught, open_weight_file(path) as file:
        for name in file.names():
            file.read(name)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    for needle in needles:
        assert needle in message, message
    return message


def mixed_state() -> dict[str, torch.Tensor]:
    """Every form a state dict entry takes: the number types, views with strides and storage offsets."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=generator)
    return {
        "float32": torch.randn(3, 5, generator=generator),
        "float16": torch.randn(2, 3, 4, generator=generator).half(),
        "bfloat16": torch.randn(7, 3, generator=generator).bfloat16(),
        "int64": torch.arange(-5, 7).reshape(3, 4),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.empty(0, 3),
        "transposed": base.t(),  # non-contiguous: a view with swapped strides
        "rows": base[2:5],  # shares base's storage, from a storage offset
        "base": base,
        "bfloat16_transposed": torch.randn(4, 2, generator=generator).bfloat16().t(),
    }


# safetensors


def test_safetensors_from_numpy_reads_back_names_shapes_dtypes_and_values(tmp_path):
    arrays = {"w.float32": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
              "w.float16": np.linspace(-2, 2, 5, dtype=np.float16),
              "steps.int64": np.arange(8, dtype=np.int64).reshape(2, 2, 2) - 3,
              "empty": np.zeros((0, 3), np.float32)}
    save_numpy(arrays, tmp_path / "model.safetensors")
    with open_weight_file(tmp_path / "model.safetensors") as file:
        assert_reads_as(file, {name: torch.from_numpy(array) for name, array in arrays.items()})


def test_safetensors_bfloat16_is_widened_exactly_as_torch_does(tmp_path):
    special = torch.tensor([0.0, -0.0, 1e-40, -3.5, float("inf"), float("-inf"), float("nan"), 3.3895e38])
    state = {"special": special.bfloat16(), "random": torch.randn(4, 9).bfloat16(), "plain": torch.randn(3)}
    save_torch(state, tmp_path / "model.safetensors")
    with open_weight_file(tmp_path / "model.safetensors") as file:
        assert file.dtype("special") == "bfloat16"
        assert file.read("special").dtype == np.float32
        assert_reads_as(file, state)  # compares bytes: NaN and -0.0 included


def f32(shape: list[int], start: int, stop: int) -> dict[str, Any]:
    return {"dtype": "F32", "shape": shape, "data_offsets": [start, stop]}


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def length(size: int) -> bytes:
    """A safetensors header length field."""
    return size.to_bytes(8, "little")


def write_safetensors(path: Path, header: dict[str, Any], data: bytes) -> Path:
    """A safetensors file written by hand, so that its header can say anything."""
    text = json.dumps(header).encode()
    return written(path, length(len(text)) + text + data)


# Each takes the path to write and a good file's bytes.
DAMAGED_SAFETENSORS: dict[str, Callable[[Path, bytes], Path]] = {
    "truncated": lambda path, good: written(path, good[:-3]),
    "header length too big": lambda path, good: written(path, length(1 << 40) + good[8:]),
    "header length past the end": lambda path, good: written(path, length(len(good) - 4) + good[8:]),
    "header not JSON": lambda path, _: written(path, length(8) + b"{not js!" + bytes(8)),
    "offsets past the end": lambda path, _: write_safetensors(
        path, {"a": f32([2], 0, 8), "b": f32([2], 8, 16)}, bytes(8)),
    "overlapping offsets": lambda path, _: write_safetensors(
        path, {"a": f32([2], 0, 8), "b": f32([2], 4, 12)}, bytes(12)),
    "size not the shape's": lambda path, _: write_safetensors(path, {"a": f32([3], 0, 8)}, bytes(8)),
    "negative offsets": lambda path, _: write_safetensors(path, {"a": f32([2], -8, 0)}, bytes(8)),
}


@pytest.mark.parametrize("damage", DAMAGED_SAFETENSORS)
def test_damaged_safetensors_is_one_line_naming_the_file(tmp_path, damage):
    save_numpy({"a": np.ones(4, np.float32), "b": np.ones(2, np.float16)}, tmp_path / "good.safetensors")
    path = DAMAGED_SAFETENSORS[damage](tmp_path / "model.safetensors", (tmp_path / "good.safetensors").read_bytes())
    one_line_error(path, "damaged or incomplete", "download it again")


# torch zip checkpoints


def test_torch_zip_values_equal_torch_load(tmp_path):
    torch.save(mixed_state(), tmp_path / "model.bin")
    reference = torch.load(tmp_path / "model.bin", weights_only=True)
    with open_weight_file(tmp_path / "model.bin") as file:
        assert file.names() == list(reference)  # the state dict's own order
        assert_reads_as(file, reference)


def test_module_state_dict_with_its_metadata_reads_like_torch(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.GroupNorm(1, 3), torch.nn.BatchNorm2d(3),
                                torch.nn.Linear(4, 5))
    state = model.state_dict()
    assert state._metadata  # the OrderedDict attribute BUILD sets on load
    torch.save(state, tmp_path / "model.pt")
    with open_weight_file(tmp_path / "model.pt") as file:
        assert file.dtype("2.num_batches_tracked") == "int64" and file.shape("2.num_batches_tracked") == ()
        assert_reads_as(file, torch.load(tmp_path / "model.pt", weights_only=True))


def test_lightning_checkpoint_gives_its_state_dict(tmp_path):
    state = mixed_state()
    # Besides the weights, what torch's weights_only load also allows: sizes, sets, bytes, nested dicts.
    extras = {"size": torch.Size([2, 3]), "tags": {"music", "loops"}, "blob": b"\x00\xff", "lr": 1e-4}
    torch.save({"state_dict": state, "global_step": 5, "epoch": 1, "extras": extras}, tmp_path / "model.ckpt")
    reference = torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]
    with open_weight_file(tmp_path / "model.ckpt") as file:
        assert file.names() == list(state)
        assert_reads_as(file, reference)


def test_a_lightning_training_checkpoint_with_its_callback_state_gives_its_state_dict(tmp_path, monkeypatch):
    """SD 1.x's and riffusion's .ckpt files are PyTorch Lightning checkpoints: beside "state_dict" they keep the
    ModelCheckpoint callback's state keyed by its class, with numpy scalars in it. torch's weights_only refuses
    them; we name those few globals as inert records (never called) and keep only the weights."""
    package = tmp_path / "lib" / "pytorch_lightning" / "callbacks"
    package.mkdir(parents=True)
    for folder in (package.parent, package):
        (folder / "__init__.py").write_text("")
    (package / "model_checkpoint.py").write_text("class ModelCheckpoint:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    from pytorch_lightning.callbacks.model_checkpoint import ModelCheckpoint

    state = {"model.diffusion_model.conv_in.weight": torch.randn(4, 3), "first_stage_model.decoder.x": torch.ones(2)}
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": state, "global_step": 7, "epoch": 1,
                "callbacks": {ModelCheckpoint: {"best_model_score": np.float64(0.25), "best_k": np.int64(3),
                                                "dirpath": "logs/"}}}, path)
    assert b"ModelCheckpoint" in zipfile.ZipFile(path).read("lightning/data.pkl")
    with open_weight_file(path) as weights:
        assert sorted(weights.names()) == sorted(state)
        assert np.array_equal(weights.read("model.diffusion_model.conv_in.weight"),
                              state["model.diffusion_model.conv_in.weight"].numpy())


def test_number_types_numpy_lacks_are_named_and_refused_alone(tmp_path):
    # torch.save writes these with _rebuild_tensor_v3: an untyped storage plus the dtype.
    state = {"scale": torch.ones(3, dtype=torch.float8_e4m3fn), "ids": torch.tensor([1, 70000]).to(torch.uint32),
             "w": torch.randn(2)}
    torch.save(state, tmp_path / "model.bin")
    with open_weight_file(tmp_path / "model.bin") as file:
        assert [file.dtype(name) for name in file.names()] == ["float8_e4m3fn", "uint32", "float32"]
        with pytest.raises(ModelBundleError, match=r"'scale' is stored as float8_e4m3fn"):
            file.read("scale")
        assert file.read("ids").tolist() == [1, 70000] and file.read("w").tobytes() == state["w"].numpy().tobytes()


def rewrite_zip(source: Path, out: Path, *, big_endian: bool = False, compression: int = zipfile.ZIP_STORED,
                itemsizes: dict[str, int] | None = None) -> Path:
    """`source` as another writer would store it: big-endian (each storage swapped, `itemsizes` by key),
    or compressed."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(out, "w", compression) as new:
        for info in old.infolist():
            data = old.read(info)
            key = info.filename.partition("/data/")[2]
            if big_endian and info.filename.endswith("/byteorder"):
                data = b"big"
            elif big_endian and key:
                data = np.frombuffer(data, f"<u{itemsizes[key]}").astype(f">u{itemsizes[key]}").tobytes()
            new.writestr(info.filename, data)
    return out


def test_big_endian_and_compressed_zips_read_the_same_values(tmp_path):
    # Storage keys follow pickling order: "0" for the first tensor, "1" for the next...
    state = {"w": torch.randn(3, 4), "steps": torch.arange(5), "h": torch.randn(2, 2).half(),
             "b": torch.randn(6).bfloat16(), "w_rows": None}
    state["w_rows"] = state["w"][1:]  # shares storage "0"
    torch.save(state, tmp_path / "model.bin")
    itemsizes = {"0": 4, "1": 8, "2": 2, "3": 2}
    for path in (rewrite_zip(tmp_path / "model.bin", tmp_path / "big.bin", big_endian=True, itemsizes=itemsizes),
                 rewrite_zip(tmp_path / "model.bin", tmp_path / "deflated.bin", compression=zipfile.ZIP_DEFLATED)):
        with open_weight_file(path) as file:
            assert_reads_as(file, state)


class Gadget:
    """Pickles as the call `function(*args)` (then BUILD with `state`, if any): the shape of every pickle
    that runs code on load, and of torch's own tensor records."""

    def __init__(self, function: Any, *args: Any, state: Any = None) -> None:
        self.function, self.args, self.state = function, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)

    def __call__(self, *args: Any) -> None:  # pickle insists that what it will call is callable
        raise AssertionError("a gadget is never called here")


GADGETS: dict[str, tuple[Callable[[str], Gadget], str]] = {
    "os.system": (lambda command: Gadget(os.system, command), f"{os.system.__module__}.system"),
    "eval": (lambda command: Gadget(eval, f"__import__('os').system({command!r})"), "builtins.eval"),
    "getattr": (lambda command: Gadget(Gadget(getattr, Gadget(__import__, "os"), "system"), command),
                "builtins.getattr"),
}


@pytest.mark.parametrize("gadget", GADGETS)
def test_pickle_that_would_run_code_is_refused_before_it_runs(tmp_path, gadget):
    make, global_name = GADGETS[gadget]
    marker = tmp_path / "MARKER"
    torch.save({"weight": torch.ones(2), "payload": make(f"touch {marker}")}, tmp_path / "evil.bin")
    one_line_error(tmp_path / "evil.bin", f"asks to run code ({global_name})", ".safetensors")
    assert not marker.exists()


class StorageRef:
    """A storage as torch's pickler refers to it: the persistent id `("storage", class, key, location, numel)`."""

    def __init__(self, key: str, numel: int, kind: str = "storage") -> None:
        self.key, self.numel, self.kind = key, numel, kind


class CheckpointPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> tuple[Any, ...] | None:
        if isinstance(obj, StorageRef):
            return obj.kind, torch.FloatStorage, obj.key, "cpu", obj.numel
        return None


def write_checkpoint(path: Path, state: dict[str, Any], storages: dict[str, bytes]) -> Path:
    """A torch zip checkpoint written by hand, so that its pickle can say anything."""
    pickled = io.BytesIO()
    CheckpointPickler(pickled, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled.getvalue())
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")  # torch's reader insists on it (ours does not)
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


def float_tensor(storage: StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                 state: Any = None) -> Gadget:
    return Gadget(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, OrderedDict(), state=state)


FOUR_FLOATS = np.arange(4, dtype="<f4").tobytes()
LYING_PICKLES: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {
    "tensor past its storage": ({"w": float_tensor(StorageRef("0", 4), 2, (3,), (1,))}, {"0": FOUR_FLOATS}),
    "stride past its storage": ({"w": float_tensor(StorageRef("0", 4), 0, (2, 2), (3, 1))}, {"0": FOUR_FLOATS}),
    "negative stride": ({"w": float_tensor(StorageRef("0", 4), 3, (4,), (-1,))}, {"0": FOUR_FLOATS}),
    "size and stride disagree": ({"w": float_tensor(StorageRef("0", 4), 0, (2, 2), (1,))}, {"0": FOUR_FLOATS}),
    "storage data missing": ({"w": float_tensor(StorageRef("1", 4), 0, (4,), (1,))}, {"0": FOUR_FLOATS}),
    "storage shorter than declared": ({"w": float_tensor(StorageRef("0", 400), 0, (4,), (1,))}, {"0": FOUR_FLOATS}),
    "persistent id not a storage": ({"w": float_tensor(StorageRef("0", 4, "module"), 0, (4,), (1,))},
                                    {"0": FOUR_FLOATS}),
    "tensor altered after it is built": (
        {"w": float_tensor(StorageRef("0", 4), 0, (4,), (1,), state={"offset": 3})}, {"0": FOUR_FLOATS}),
}


def test_hand_written_checkpoint_reads_like_torch(tmp_path):
    """The writer the lying pickles below use is faithful: a truthful file reads the same in torch and here."""
    path = write_checkpoint(tmp_path / "model.bin", {"w": float_tensor(StorageRef("0", 4), 1, (2, 1), (1, 1))},
                            {"0": FOUR_FLOATS})
    with open_weight_file(path) as file:
        assert_reads_as(file, torch.load(path, weights_only=True))
        assert file.read("w").tolist() == [[1.0], [2.0]]


@pytest.mark.parametrize("lie", LYING_PICKLES)
def test_checkpoint_whose_pickle_lies_is_damaged(tmp_path, lie):
    state, storages = LYING_PICKLES[lie]
    one_line_error(write_checkpoint(tmp_path / "model.bin", state, storages), "damaged or incomplete")


def test_zip_without_data_pkl_is_not_a_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "model.bin", "w") as archive:
        archive.writestr("model/weights.npy", b"\x93NUMPY")
    one_line_error(tmp_path / "model.bin", "no data.pkl")


def test_legacy_torch_file_asks_for_conversion(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    one_line_error(tmp_path / "old.pt", "old torch format", "riffstudio model convert")


def test_truncated_torch_zip_is_damaged(tmp_path):
    torch.save(mixed_state(), tmp_path / "model.ckpt")
    data = (tmp_path / "model.ckpt").read_bytes()
    (tmp_path / "model.ckpt").write_bytes(data[: len(data) // 2])
    one_line_error(tmp_path / "model.ckpt", "download it again")


def test_checkpoint_without_tensors_holds_no_weights(tmp_path):
    torch.save({"global_step": 5, "epoch": 1}, tmp_path / "model.ckpt")
    one_line_error(tmp_path / "model.ckpt", "holds no weights")


def test_other_files_are_not_weight_files(tmp_path):
    (tmp_path / "model.safetensors").write_text("<html>rate limited</html>")
    one_line_error(tmp_path / "model.safetensors", "not a model weight file")


def test_readers_never_import_torch(tmp_path):
    """In a child interpreter where `import torch` fails, both readers read every tensor torch wrote."""
    blocked = tmp_path / "blocked" / "torch"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    state = mixed_state()
    torch.save({"state_dict": state, "global_step": 1}, tmp_path / "model.ckpt")
    save_torch({name: tensor.contiguous() for name, tensor in state.items() if name != "rows"},
               tmp_path / "model.safetensors")
    child = (
        "import sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "try:\n"
        "    import torch\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('the torch blocker did not block')\n"
        "from engine.model_get.weight_file import open_weight_file\n"
        "for source in sys.argv[1:]:\n"
        "    with open_weight_file(Path(source)) as file:\n"
        "        np.savez(source + '.npz', **{name: file.read(name) for name in file.names()})\n"
        "assert 'torch' not in sys.modules\n"
    )
    sources = [str(tmp_path / "model.ckpt"), str(tmp_path / "model.safetensors")]
    result = subprocess.run(
        [sys.executable, "-c", child, *sources], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked.parent), str(REPO)])})
    assert result.returncode == 0, result.stderr
    for source in sources:
        with np.load(source + ".npz") as read:
            assert set(read.files) == set(state) - ({"rows"} if source.endswith(".safetensors") else set())
            for name in read.files:
                assert read[name].tobytes() == as_numpy(state[name]).tobytes(), (source, name)
