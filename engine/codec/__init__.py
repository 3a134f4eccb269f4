"""The spectrogram codec: audio <-> riffusion-model-v1's 512-row spectrogram images.

Public API (pure functions on numpy arrays; files only in `image_file` and `audio_io`):

    encode_audio(samples, sample_rate, params, stereo=False) -> EncodedImage   # riffusion-exact pixels
    decode_image(image, params, quality=..., num_samples=None, stereo=None,
                 progress=None, should_cancel=None) -> (num_samples, channels) float32
    sc_mel(image, audio, params) -> dB                                         # decode quality metric

The package loads its modules on first use (PEP 562), so that `import engine.codec.params`, which is all the
app's window needs to draw axes, does not load the decoder, the encoder and the FFT backend (scipy's pocketfft)
before the window's first paint; `from engine.codec import decode_image` loads the decoder then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` serves these names
    from engine.codec.decode import decode_image, decode_mel, natural_length
    from engine.codec.encode import EncodedImage, encode_audio, mel_amplitudes
    from engine.codec.metrics import sc_mel
    from engine.codec.params import DEFAULT_MAX_VALUE, DEFAULT_PARAMS, SpectrogramParams
    from engine.codec.quality import DecodeSettings, PhaseInit, Quality

# Each public name and the module that defines it.
_HOMES = {
    "decode_image": "decode", "decode_mel": "decode", "natural_length": "decode",
    "EncodedImage": "encode", "encode_audio": "encode", "mel_amplitudes": "encode",
    "sc_mel": "metrics",
    "DEFAULT_MAX_VALUE": "params", "DEFAULT_PARAMS": "params", "SpectrogramParams": "params",
    "DecodeSettings": "quality", "PhaseInit": "quality", "Quality": "quality",
}

__all__ = [
    "DEFAULT_MAX_VALUE",
    "DEFAULT_PARAMS",
    "DecodeSettings",
    "EncodedImage",
    "PhaseInit",
    "Quality",
    "SpectrogramParams",
    "decode_image",
    "decode_mel",
    "encode_audio",
    "mel_amplitudes",
    "natural_length",
    "sc_mel",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept here (later lookups skip this).

    Any other name raises AttributeError, which is what lets `from engine.codec import fft` fall back to
    importing the submodule."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
