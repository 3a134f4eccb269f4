"""Audio outputs as a producer picks them, and the device index PortAudio opens (no Qt; sounddevice's data in).

Windows lists one output once per host API (MME, DirectSound, WASAPI, WDM-KS), under the same name, so a
bare name is ambiguous: sounddevice refuses it ("Multiple output devices found"). A choice is therefore
kept as "HOST API: NAME" and resolved to the index of exactly that device. A setting saved as a bare name
(before this) still resolves: to that name on the preferred host API.

WASAPI in shared mode plays only at the device's own rate: a stream at another rate is opened with
WASAPI's own conversion (`auto_convert`), so a 44.1 kHz loop plays on a 48 kHz interface.

When nothing plays, the app says what to check in a producer's words (`no_audio_words`): no output at all,
an output that would not open (most often another app holding it exclusively: a DAW's ASIO driver, WASAPI
exclusive mode), or no PortAudio library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Host APIs in the order a choice is looked for when only a name is known: WASAPI (low latency, the
# system mixer's rate) first on Windows; the others as PortAudio lists them.
PREFERRED_HOST_APIS = ("Windows WASAPI", "Core Audio", "ALSA", "JACK Audio Connection Kit", "Windows DirectSound",
                       "MME", "Windows WDM-KS")


# What to check, in the producer's words. NO_OUTPUTS_FOUND is Settings' Audio output list when it would be empty.
NO_OUTPUT = ("No audio output found: check that speakers or headphones are connected and not used exclusively by "
             "another app (the DAW's ASIO driver), then choose one in Settings")
CHECK_OUTPUT = ("Check that speakers or headphones are connected and not used exclusively by another app "
                "(the DAW's ASIO driver)")
NO_OUTPUTS_FOUND = "No outputs found"
NO_PORTAUDIO = ("No audio output: the PortAudio library is missing (on Linux, install libportaudio2), so loops "
                "cannot play here; everything else works")


def cannot_open_words(device_label: str) -> str:
    """The line for an output that exists but would not open."""
    return (f"Cannot play on {device_label}: check that it is connected and not used exclusively by another app "
            "(the DAW's ASIO driver), or choose another output in Settings")


def no_audio_words(outputs: int, device: OutputDevice | None, *, portaudio: bool = True) -> str:
    """Why nothing plays and what to check: `outputs` found, `device` the one chosen (None: the system default)."""
    if not portaudio:
        return NO_PORTAUDIO
    if outputs == 0:
        return NO_OUTPUT
    return cannot_open_words(device.label if device is not None else "the system's default output")


@dataclass(frozen=True)
class OutputDevice:
    key: str  # what the settings keep: "HOST API: NAME"
    label: str  # what the menu shows: "NAME (HOST API)"
    index: int  # PortAudio's device index, valid while the device list is unchanged
    host_api: str
    default_rate: float


def output_devices(devices: Sequence[Mapping[str, Any]], host_apis: Sequence[Mapping[str, Any]]) -> list[OutputDevice]:
    """Every device with an output, one entry per host API, preferred host APIs first.

    devices, host_apis: `sounddevice.query_devices()` and `sounddevice.query_hostapis()`."""
    found = []
    for index, device in enumerate(devices):
        if device.get("max_output_channels", 0) <= 0:
            continue
        host = str(host_apis[device["hostapi"]]["name"]) if 0 <= device.get("hostapi", -1) < len(host_apis) else "?"
        name = str(device["name"])
        found.append(OutputDevice(key=f"{host}: {name}", label=f"{name} ({host})",
                                  index=int(device.get("index", index)), host_api=host,
                                  default_rate=float(device.get("default_samplerate", 0.0))))
    return sorted(found, key=lambda d: (_preference(d.host_api), d.index))


def resolve(choice: str, devices: Sequence[Mapping[str, Any]], host_apis: Sequence[Mapping[str, Any]],
            ) -> OutputDevice | None:
    """The device a saved choice names ("HOST API: NAME", or an older bare NAME), or None for the system
    default ("") or a device that is gone (unplugged): the caller plays on the default then."""
    if not choice:
        return None
    outputs = output_devices(devices, host_apis)
    exact = [device for device in outputs if device.key == choice]
    if exact:
        return exact[0]
    by_name = [device for device in outputs if device.label.rsplit(" (", 1)[0] == choice]
    return by_name[0] if by_name else None  # outputs are sorted: the preferred host API's


def stream_options(device: OutputDevice | None, rate: int) -> dict[str, Any]:
    """sounddevice.OutputStream's `device` (an index: never an ambiguous name) and, for WASAPI at a rate other
    than the device's, `extra_settings` asking WASAPI to convert. sounddevice is imported only when needed."""
    if device is None:
        return {"device": None}
    options: dict[str, Any] = {"device": device.index}
    if device.host_api == "Windows WASAPI" and device.default_rate and int(device.default_rate) != int(rate):
        import sounddevice

        options["extra_settings"] = sounddevice.WasapiSettings(auto_convert=True)
    return options


def _preference(host_api: str) -> int:
    return PREFERRED_HOST_APIS.index(host_api) if host_api in PREFERRED_HOST_APIS else len(PREFERRED_HOST_APIS)
