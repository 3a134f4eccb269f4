"""Every closed list of choices a producer meets (CLI flags, preset files, the app's menus, the protocol's
checks), written once: plain data the app may import without loading any model or DSP code.

The modules that act on a choice validate against these tuples (engine/generation/settings.py,
plugin/loop_file.py, engine/bundle/manifest.py...), and the CLI's `choices=` and the app's combo boxes
list them, so a new option appears everywhere or nowhere. engine/speeds.py holds the sampling defaults.
"""

from __future__ import annotations

# Where a model runs: auto takes the NPU when a qnn bundle and a QNN device are here.
PROVIDERS = ("auto", "cpu", "qnn")
# Which runtime builds a bundle holds (engine/bundle/manifest.py).
PRECISIONS = ("fp32", "int8", "qnn")
# `model get --precision` and the app's Get menu, the recommended first: auto (qnn on a Snapdragon NPU, else
# int8), then the precisions.
GET_PRECISIONS = ("auto", "int8", "fp32", "qnn")
assert set(GET_PRECISIONS) == {"auto", *PRECISIONS}
# The codec's decode qualities (engine/codec/quality.py): draft for previews, standard, high for final files.
QUALITIES = ("draft", "standard", "high")
# What the engine writes a job's audio as (soundfile's formats, 24-bit where integer, Vorbis for ogg).
ENGINE_AUDIO_FORMATS = ("wav", "flac", "aiff", "ogg")
# What a loop for a DAW is written as (plugin/loop_file.py: loop chunks in WAV; FLAC and AIFF too).
LOOP_FILE_FORMATS = ("wav", "flac", "aiff")
BIT_DEPTHS = ("16", "24", "32f")
SAMPLE_RATES = (44100, 48000)
# The samplers by name (engine/schedulers/registry.py builds each; tests/test_choices.py keeps the two equal).
SCHEDULER_NAMES = ("pndm", "ddim", "euler", "euler_a", "lms", "dpmpp_2m", "dpmpp_2m_karras", "dpmpp_2m_ays", "unipc")
# How a loop is put on the grid (plugin/fit.py): by its beat where one is found, by the beat, or by length.
FIT_MODES = ("auto", "beat", "length")
