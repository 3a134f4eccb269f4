"""Fast Griffin-Lim on a small synthesis grid, with magnitudes kept consistent with the mel image.

Where riffusion spends its time and what we do instead:
- riffusion transforms 17640-point frames (the 4410-sample window zero-padded 4x). The window is
  what shapes the spectrum; the padding only interpolates it, so we transform frames as short as the
  window (the next fast FFT size), at the lowest convenient sample rate above twice max_hz (the image
  holds nothing above max_hz): ~2500-point FFTs instead of 17640.
- Overlap-add is ten vectorised slice additions (frames are cut into hop-sized pieces), not a loop.
- Fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013): momentum on the magnitude projection.
- It starts from a phase-gradient phase (see `pghi`), not noise, so few iterations are needed.
- The magnitude target is re-fitted each iteration so its mel amplitudes match the image while
  keeping the fine structure (harmonics) the iterations find, instead of being pinned to one smooth
  mel inverse. The image only fixes the mel amplitudes; this uses that freedom.
- The edges are mirrored each iteration, as the encoder's reflect padding mirrors them.
- The decoder runs most iterations on this coarse grid (bins ~10 Hz apart) and a few last ones on
  a grid twice as fine, which the narrow low mel bands need (see `quality.DecodeSettings`).

Signals live in a padded domain z: frame t covers z[t * hop : t * hop + window], so z holds
window / 2 samples of context before the first frame centre and after the last. All float32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.codec import fft
from engine.codec.mel import GridFilterbank
from engine.codec.stft import hann
from engine.errors import CancelledError

Progress = Callable[[int, int], None]  # (done, total)
ShouldCancel = Callable[[], bool]


@dataclass(frozen=True)
class SynthesisFrames:
    """Framing and overlap-add for `columns` frames of `window` samples, `hop` apart, FFT size n_fft.

    Only the first `bins` FFT bins are kept (the rest are above max_hz, always zero).
    """

    columns: int
    hop: int
    window: int
    n_fft: int
    bins: int

    @property
    def length(self) -> int:
        """Samples in the padded domain z."""
        return (self.columns - 1) * self.hop + self.window

    @cached_property
    def _window(self) -> np.ndarray:
        return hann(self.window)

    @cached_property
    def _inverse_envelope(self) -> np.ndarray:
        """1 / sum of squared windows over z (0 where no window reaches): least-squares ISTFT."""
        squares = np.broadcast_to(self._window * self._window, (self.columns, self.window))
        envelope = self._overlap_add(squares)
        inverse = np.zeros_like(envelope)
        reached = envelope > envelope.max() * 1e-6
        inverse[reached] = 1.0 / envelope[reached]
        return inverse

    @property
    def start(self) -> int:
        """Index in z of the first frame's centre: the first output sample."""
        return self.window // 2

    @property
    def span(self) -> int:
        """Output samples between the first and the last frame centre."""
        return (self.columns - 1) * self.hop

    def reflect_edges(self, z: np.ndarray) -> np.ndarray:
        """z with the context outside the output span replaced by its mirror image.

        The encoder reflect-pads the clip (torch.stft's center=True), so the image's edge columns
        describe mirrored audio; matching them with free context instead leaves the edges a third
        to two thirds of the whole error. The last centre lies just past the end of a clip whose
        length is a multiple of the hop, so the span is mirrored about its own last sample.
        """
        return np.pad(z[self.start : self.start + self.span], (self.start, self.length - self.start - self.span),
                      mode="reflect")

    def analyze(self, z: np.ndarray) -> np.ndarray:
        """STFT of z: (columns, bins) complex64."""
        frames = np.lib.stride_tricks.sliding_window_view(z, self.window)[:: self.hop]
        windowed = self._frame_buffer
        np.multiply(frames[: self.columns], self._window, out=windowed[:, : self.window])
        return fft.rfft(windowed, self.n_fft)[:, : self.bins]

    @cached_property
    def _frame_buffer(self) -> np.ndarray:
        """Windowed frames, zero-padded to n_fft once: rfft then pads nothing (saves a copy per call)."""
        return np.zeros((self.columns, self.n_fft), dtype=np.float32)

    def synthesize(self, spectrum: np.ndarray) -> np.ndarray:
        """Least-squares signal (z) whose STFT is closest to `spectrum` (columns, bins) complex64."""
        full = self._spectrum_buffer
        full[:, : self.bins] = spectrum
        frames = fft.irfft(full, self.n_fft)[:, : self.window]
        frames *= self._window
        z = self._overlap_add(frames)
        z *= self._inverse_envelope
        return z

    @cached_property
    def _spectrum_buffer(self) -> np.ndarray:
        """The full one-sided spectrum handed to irfft; bins past `bins` stay zero."""
        return np.zeros((self.columns, self.n_fft // 2 + 1), dtype=np.complex64)

    def _overlap_add(self, frames: np.ndarray) -> np.ndarray:
        """Sum (columns, window) frames `hop` apart: one slice-add per hop-sized piece of the window."""
        pieces = -(-self.window // self.hop)
        out = np.zeros((self.columns + pieces - 1) * self.hop, dtype=np.float32)
        rows = out.reshape(self.columns + pieces - 1, self.hop)
        for piece in range(pieces):
            start = piece * self.hop
            width = min(self.hop, self.window - start)
            rows[piece : piece + self.columns, :width] += frames[:, start : start + width]
        return out[: self.length]


def polar(magnitudes: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """magnitudes * exp(i * phase) as complex64 (cos and sin in float32: ~25x faster than np.exp)."""
    out = np.empty(magnitudes.shape, dtype=np.complex64)
    out.real = magnitudes * np.cos(phase, dtype=np.float32)
    out.imag = magnitudes * np.sin(phase, dtype=np.float32)
    return out


def griffin_lim(start: np.ndarray, mel: np.ndarray, bank: GridFilterbank, frames: SynthesisFrames, *,
                iterations: int, momentum: float, progress: Callable[[int], None] | None = None,
                should_cancel: ShouldCancel | None = None) -> np.ndarray:
    """Signal z (float32, frames.length samples) whose STFT magnitudes best match the image, with the
    context outside the output span mirrored as the encoder would see it.

    start: (columns, bins) complex64, the first spectrum (magnitude estimate and first phase).
    mel: (num_bins, columns) float32, the image's mel amplitudes, which each iteration's magnitudes are
    fitted to (`GridFilterbank.match`). iterations >= 0; momentum 0 is plain Griffin-Lim.
    progress(done) is called after each iteration; should_cancel() before each one.
    """
    floor = np.float32(max(float(mel.max()), 1e-30) * 1e-9)
    return fast_griffin_lim(start, lambda size: bank.match(size, mel, floor), frames, frames.reflect_edges,
                            iterations=iterations, momentum=momentum, floor=floor, progress=progress,
                            should_cancel=should_cancel)


def fast_griffin_lim(start: np.ndarray, magnitudes: Callable[[np.ndarray], np.ndarray], frames: SynthesisFrames,
                     context: Callable[[np.ndarray], np.ndarray], *, iterations: int, momentum: float,
                     floor: np.float32, progress: Callable[[int], None] | None = None,
                     should_cancel: ShouldCancel | None = None) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al. 2013) on `frames`: the one loop behind the decoder (magnitudes fitted
    to the image's mel amplitudes) and the pitch shift (fixed, moved magnitudes).

    magnitudes(size): the target magnitudes for a rebuilt spectrum's `size` (read before `size` is reused);
    context(z): z with the samples outside the signal re-made from it (mirrored, or wrapped for a loop), in
    place. Returns the last projection's signal with its context."""
    previous = accepted = start
    for done in range(iterations):
        if should_cancel is not None and should_cancel():
            raise CancelledError("decoding cancelled")
        rebuilt = frames.analyze(context(frames.synthesize(accepted)))
        size = np.abs(rebuilt)
        target = magnitudes(size)
        # Keep the rebuilt phase, take the fitted magnitude: the projection onto the magnitude set.
        np.maximum(size, floor, out=size)
        np.divide(target, size, out=size)
        rebuilt *= size
        projected = rebuilt
        if done:  # fast Griffin-Lim: accepted = projected + momentum * (projected - previous)
            np.subtract(projected, previous, out=previous)
            previous *= np.complex64(momentum)
            previous += projected
            accepted = previous
        else:
            accepted = projected
        previous = projected
        if progress is not None:
            progress(done + 1)
    return context(frames.synthesize(previous))
