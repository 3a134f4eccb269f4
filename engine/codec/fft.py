"""The codec's FFTs: scipy's pocketfft, without the cost of importing `scipy.fft`.

scipy's pocketfft is ~3-4x faster than numpy's FFT on the codec's batches of frames (it vectorises
across rows: 2.9 against 11.1 ms for a (568, 2560) float32 rfft), so the codec keeps it. But
`import scipy.fft` costs ~200 ms of a cold `codec decode` of ~1 s: it imports scipy's array-API layer
(which star-imports numpy and so pulls in numpy.f2py and numpy.testing) and scipy.special, none of which
an FFT needs. The transforms themselves live in one compiled module, `scipy.fft._pocketfft.pypocketfft`,
that imports only numpy; this module loads that file directly (under its own name, so the scipy package
is not imported) and checks it on a small transform against the plain DFT before trusting it. Where it
cannot be loaded, or a future scipy changes what it computes, the public `scipy.fft` serves instead
(`BACKEND` says which). The results are scipy.fft's to the bit either way: scipy.fft calls the same
functions with the same arguments.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from engine.cpu_features import usable_cpus

_MODULE = "pypocketfft"
_BACKWARD, _BY_N = 0, 2  # pocketfft's scaling modes: none (forward transform), 1 / n (inverse)


def _load_pocketfft() -> ModuleType | None:
    """scipy's compiled pocketfft module, loaded from its file without importing the scipy package."""
    spec = importlib.util.find_spec("scipy")  # finds the package, does not run it
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    folder = package / "fft" / "_pocketfft"
    _allow_scipys_dlls(package)
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    try:
        files = sorted(p for p in folder.iterdir() if p.name.startswith(_MODULE + ".") and p.name.endswith(suffixes))
    except OSError:
        return None
    for path in files:
        try:
            loader = importlib.machinery.ExtensionFileLoader(_MODULE, str(path))
            module_spec = importlib.util.spec_from_file_location(_MODULE, path, loader=loader)
            if module_spec is None:
                continue
            module = importlib.util.module_from_spec(module_spec)
            loader.exec_module(module)
        except (ImportError, OSError):
            continue
        if _computes_the_dft(module):
            return module
    return None


_dll_folders: list[Any] = []  # handles that keep the folders on Windows' DLL search path


def _allow_scipys_dlls(package: Path) -> None:
    """On Windows, scipy's wheels keep the DLLs its modules link against (the C++ runtime among them) in
    `scipy.libs` beside the package, which `import scipy` adds to the DLL search path (delvewheel's
    patch in its `__init__`). Loading a module of it without that import needs the same folder."""
    libs = package.parent / "scipy.libs"
    if os.name == "nt" and libs.is_dir() and hasattr(os, "add_dll_directory"):
        _dll_folders.append(os.add_dll_directory(str(libs)))


def _computes_the_dft(module: ModuleType) -> bool:
    """True when `module`'s real transforms agree with the plain DFT (and its inverse) on a small case."""
    n = 12
    signal = np.cos(np.arange(2 * n, dtype=np.float32).reshape(2, n) * np.float32(0.7)) + np.float32(0.25)
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n), np.arange(n // 2 + 1)) / n)
    expected = signal.astype(np.float64) @ dft
    try:
        spectrum = module.r2c(signal, (1,), True, _BACKWARD, None, 1)
        back = module.c2r(spectrum, (1,), n, False, _BY_N, None, 1)
        sizes = (module.good_size(2521, True), module.good_size(17, False))
    except Exception:  # any failure to call it means "not the module we know": use scipy.fft
        return False
    return (spectrum.dtype == np.complex64 and back.dtype == np.float32 and sizes == (2560, 18)
            and np.allclose(spectrum, expected, atol=1e-4) and np.allclose(back, signal, atol=1e-5))


_pocketfft = _load_pocketfft()
BACKEND = "pocketfft" if _pocketfft is not None else "scipy.fft"
_WORKERS = usable_cpus()


def rfft(frames: np.ndarray, n: int) -> np.ndarray:
    """Spectra of each row of real `frames` (rows, <= n) zero-padded to n: (rows, n // 2 + 1).

    float32 in -> complex64 out (float64 -> complex128); every core works on the rows.
    """
    if frames.ndim != 2 or frames.shape[1] > n:
        raise ValueError(f"rfft needs 2-D frames at most {n} wide, not {frames.shape}")
    if frames.shape[1] < n:
        padded = np.zeros((frames.shape[0], n), dtype=frames.dtype)
        padded[:, : frames.shape[1]] = frames
        frames = padded
    if _pocketfft is None:
        return _scipy_fft().rfft(frames, axis=1, workers=_WORKERS)
    return _pocketfft.r2c(frames, (1,), True, _BACKWARD, None, _WORKERS)


def irfft(spectra: np.ndarray, n: int) -> np.ndarray:
    """Real signals of length n from each row of one-sided `spectra` (rows, n // 2 + 1), scaled by 1 / n
    (the inverse of `rfft`)."""
    if spectra.ndim != 2 or spectra.shape[1] != n // 2 + 1:
        raise ValueError(f"irfft of length {n} needs 2-D spectra {n // 2 + 1} wide, not {spectra.shape}")
    if _pocketfft is None:
        return _scipy_fft().irfft(spectra, n=n, axis=1, workers=_WORKERS)
    return _pocketfft.c2r(spectra, (1,), n, False, _BY_N, None, _WORKERS)


def next_fast_len(target: int) -> int:
    """The smallest length >= target whose real FFT is fast (only factors 2, 3 and 5)."""
    if _pocketfft is None:
        return int(_scipy_fft().next_fast_len(target, real=True))
    return int(_pocketfft.good_size(target, True))


def _scipy_fft() -> Any:
    import scipy.fft

    return scipy.fft
