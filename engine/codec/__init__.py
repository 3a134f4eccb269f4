"""The spectrogram codec: audio <-> riffusion-model-v1's 512-row spectrogram images.

Public API (pure functions on numpy arrays; files only in `image_file` and `audio_io`):

    encode_audio(samples, sample_rate, params, stereo=False) -> EncodedImage   # riffusion-exact pixels
    decode_image(image, params, quality=..., num_samples=None, stereo=None,
                 progress=None, should_cancel=None) -> (num_samples, channels) float32
    sc_mel(image, audio, params) -> dB                                         # decode quality metric
"""

from engine.codec.decode import decode_image, decode_mel, natural_length
from engine.codec.encode import EncodedImage, encode_audio, mel_amplitudes
from engine.codec.metrics import sc_mel
from engine.codec.params import DEFAULT_MAX_VALUE, DEFAULT_PARAMS, SpectrogramParams
from engine.codec.quality import DecodeSettings, PhaseInit, Quality

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
