"""The codec's FFTs: scipy's compiled pocketfft loaded without the scipy package, the same numbers as
scipy.fft, and a refusal of any module that does not compute the DFT."""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.fft

from engine.codec import fft


def test_the_fast_path_loads_on_this_install():
    """Where this fails, a scipy upgrade moved or changed its pocketfft module: the codec still works
    (through scipy.fft) but its cold start is ~0.2 s slower. Update `engine/codec/fft.py`."""
    assert fft.BACKEND == "pocketfft"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("width", "n"), [(2520, 2560), (2048, 17640), (9, 9), (1, 2)])
def test_transforms_are_scipys_to_the_bit(dtype, width, n):
    frames = np.random.default_rng(width).standard_normal((37, width)).astype(dtype)
    spectra = fft.rfft(frames, n)
    np.testing.assert_array_equal(spectra, scipy.fft.rfft(frames, n=n, axis=1, workers=-1))
    assert spectra.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    back = fft.irfft(spectra, n)
    np.testing.assert_array_equal(back, scipy.fft.irfft(spectra, n=n, axis=1, workers=-1))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back[:, :width], frames, atol=tolerance)
    np.testing.assert_allclose(back[:, width:], 0.0, atol=tolerance)


def test_fast_lengths_are_scipys():
    for target in [1, 2, 7, 17, 2519, 2520, 2521, 5041, 17640, 20000]:
        assert fft.next_fast_len(target) == scipy.fft.next_fast_len(target, real=True)


@pytest.mark.parametrize(("call", "shape"), [("rfft", (4,)), ("rfft", (2, 20)), ("irfft", (2, 5)),
                                             ("irfft", (3, 4, 9))])
def test_wrong_shapes_are_refused(call, shape):
    with pytest.raises(ValueError, match="2-D"):
        getattr(fft, call)(np.zeros(shape, dtype=np.float32 if call == "rfft" else np.complex64), 16)


def _module(r2c, c2r, good_size=lambda n, real: 2560 if real else 18) -> types.ModuleType:
    module = types.ModuleType("pypocketfft")
    module.r2c, module.c2r, module.good_size = r2c, c2r, good_size
    return module


def _numpy_r2c(a, axes, forward, inorm, out, nthreads):
    return np.fft.rfft(a, axis=axes[0]).astype(np.complex64)


def _numpy_c2r(a, axes, lastsize, forward, inorm, out, nthreads):
    return np.fft.irfft(a, n=lastsize, axis=axes[0]).astype(np.float32)


def test_a_module_that_computes_the_dft_passes_the_check():
    """The check's positive case, on numpy's FFT behind the same call signature."""
    assert fft._computes_the_dft(_module(_numpy_r2c, _numpy_c2r))


@pytest.mark.parametrize("change", ["other sign", "no 1/n", "float64", "new signature", "other sizes"])
def test_a_module_that_computes_something_else_is_not_used(change):
    r2c, c2r, good_size = _numpy_r2c, _numpy_c2r, (lambda n, real: 2560 if real else 18)
    if change == "other sign":
        def r2c(a, axes, forward, inorm, out, nthreads):
            return np.conj(_numpy_r2c(a, axes, forward, inorm, out, nthreads))
    elif change == "no 1/n":
        def c2r(a, axes, lastsize, forward, inorm, out, nthreads):
            return _numpy_c2r(a, axes, lastsize, forward, inorm, out, nthreads) * np.float32(lastsize)
    elif change == "float64":
        def r2c(a, axes, forward, inorm, out, nthreads):
            return np.fft.rfft(a, axis=axes[0]).astype(np.complex128)
    elif change == "new signature":
        def r2c(a, axes, forward, inorm, out, nthreads, plan):
            return _numpy_r2c(a, axes, forward, inorm, out, nthreads)
    else:
        def good_size(n, real):
            return n
    assert not fft._computes_the_dft(_module(r2c, c2r, good_size))
