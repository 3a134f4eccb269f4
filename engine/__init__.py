"""The engine: model bundles, schedulers, ONNX Runtime sessions, the spectrogram codec, the engine process.

Nothing here imports torch, diffusers or transformers; model export imports them lazily.
"""

from engine.version import __version__

__all__ = ["__version__"]
