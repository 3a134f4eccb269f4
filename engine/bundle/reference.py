"""Reference outputs stored in a bundle, so `model check` can tell how much a quantised model loses on
*this* CPU, not only where it was converted.

The same int8 model computes different numbers on different CPUs: ONNX Runtime's x86 kernels sum
u8 x s8 products in saturating 16 bits on AVX2-only CPUs and in 32 bits with VNNI, so a VAE decoder
that scored 20 dB where it was converted scored 6-10 dB on an AVX2-only laptop. At convert time each
quantised model's inputs from real denoising runs, the fp32 model's outputs for them and the SNR the
quantised model reached on them are written to `reference/<component>.npz`; `model check` runs the
same inputs through the bundle's model on the provider and CPU at hand and compares.

Inputs are kept as they are (float32, int32); the fp32 outputs as float16 (its own error, about
-66 dB, is far below any quantisation loss we judge), cropped to a narrow width on dynamic-width models
so the check stays quick at full size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.bundle.manifest import TensorSpec
from engine.errors import InvalidInputError, ModelBundleError

REFERENCE_DIR = "reference"
# Latent columns kept of a dynamic-width input (8 = 64 px): convolutions see the same statistics.
REFERENCE_LATENT_WIDTH = 8
# How many feeds a reference holds (batch 1 each).
REFERENCE_SAMPLES = 2
# A model that scores this much worse here than where it was converted fails `model check`.
MAX_LOSS_DB = 3.0
_INPUT = "input/"
_EXPECTED = "expected"


@dataclass(frozen=True)
class Reference:
    feeds: tuple[dict[str, np.ndarray], ...]
    expected: np.ndarray  # the fp32 model's first output for every feed, concatenated on the batch axis


def reference_file(component: str) -> str:
    """The reference's path inside the bundle, as the manifest records it."""
    return f"{REFERENCE_DIR}/{component}.npz"


def crop_feeds(feeds: dict[str, np.ndarray], specs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    """`feeds` with every dynamic width ("latent_width", "8*latent_width") cut to REFERENCE_LATENT_WIDTH
    latent columns; fixed-shape inputs (QNN) stay whole."""
    cropped = dict(feeds)
    for spec in specs:
        if spec.name in feeds and spec.shape and isinstance(spec.shape[-1], str) and "width" in spec.shape[-1]:
            factor = 8 if spec.shape[-1].startswith("8*") else 1
            cropped[spec.name] = np.ascontiguousarray(feeds[spec.name][..., : factor * REFERENCE_LATENT_WIDTH])
    return cropped


def write_reference(path: Path, reference: Reference) -> None:
    """One .npz: `input/<index>/<name>` per feed and `expected`."""
    arrays = {f"{_INPUT}{index}/{name}": value for index, feeds in enumerate(reference.feeds)
              for name, value in feeds.items()}
    arrays[_EXPECTED] = reference.expected.astype(np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        np.savez_compressed(file, **arrays)


def read_reference(path: Path) -> Reference:
    try:
        with np.load(path) as data:
            grouped: dict[int, dict[str, np.ndarray]] = {}
            for key in data.files:
                if key.startswith(_INPUT):
                    index, name = key[len(_INPUT):].split("/", 1)
                    grouped.setdefault(int(index), {})[name] = data[key]
            expected = data[_EXPECTED].astype(np.float32)
    except (OSError, ValueError, KeyError) as error:
        raise ModelBundleError(f"reference outputs {path.name} are unreadable ({error}): "
                               "re-convert the model") from None
    return Reference(feeds=tuple(grouped[index] for index in sorted(grouped)), expected=expected)


def run_feeds(session: object, feeds: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """The session's first output for every feed, concatenated on the batch axis (like `expected`)."""
    return np.concatenate([session.run(None, feed)[0] for feed in feeds])  # type: ignore[attr-defined]


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-noise ratio of `test` against `reference` in dB (inf when they are identical)."""
    reference = np.asarray(reference, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if reference.shape != test.shape:
        raise InvalidInputError(f"cannot compare shapes {reference.shape} and {test.shape}")
    noise = float(np.sum((reference - test) ** 2))
    signal = float(np.sum(reference**2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))
