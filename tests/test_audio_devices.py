"""Audio outputs on a Windows-like device list (the same name once per host API): a choice names one device,
playback opens exactly that one by index, and WASAPI converts a rate other than the device's.

The device list is sounddevice's own data shape (checked against the installed library's source); the
audio device itself is faked, as this machine has none."""

from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest
import soundfile

from ui.app.audio_devices import output_devices, resolve, stream_options

HOST_APIS = [{"name": name, "devices": [], "default_input_device": -1, "default_output_device": -1}
             for name in ("MME", "Windows DirectSound", "Windows WASAPI", "Windows WDM-KS")]
NAMES = ["Speakers (Realtek(R) Audio)", "Focusrite USB (Focusrite USB Audio)"]


def device(index: int, name: str, hostapi: int, outputs: int = 2, rate: float = 48000.0) -> dict:
    return {"name": name, "index": index, "hostapi": hostapi, "max_input_channels": 0, "max_output_channels": outputs,
            "default_low_input_latency": 0.01, "default_low_output_latency": 0.01,
            "default_high_input_latency": 0.1, "default_high_output_latency": 0.1, "default_samplerate": rate}


DEVICES = [device(0, "Microphone (Realtek(R) Audio)", 0, outputs=0)] + [
    device(1 + 2 * api + n, name, api, rate=44100.0 if api == 0 else 48000.0)
    for api in range(4) for n, name in enumerate(NAMES)]


def test_the_fake_device_list_has_sounddevices_shape():
    sounddevice = pytest.importorskip("sounddevice", reason="needs PortAudio (libportaudio2)")
    source = inspect.getsource(sounddevice.query_devices) + inspect.getsource(sounddevice.query_hostapis)
    for key in (*DEVICES[0], *HOST_APIS[0]):
        assert f"'{key}'" in source, key


def test_each_output_is_offered_once_per_host_api_with_wasapi_first():
    outputs = output_devices(DEVICES, HOST_APIS)
    assert len(outputs) == 8 and len({o.key for o in outputs}) == 8  # no two entries alike
    assert [o.host_api for o in outputs[:2]] == ["Windows WASAPI"] * 2
    assert outputs[0].label == "Speakers (Realtek(R) Audio) (Windows WASAPI)"
    assert outputs[0].key == "Windows WASAPI: Speakers (Realtek(R) Audio)"


def test_a_choice_resolves_to_exactly_its_device():
    assert resolve("MME: Focusrite USB (Focusrite USB Audio)", DEVICES, HOST_APIS).index == 2
    assert resolve("Windows WDM-KS: Focusrite USB (Focusrite USB Audio)", DEVICES, HOST_APIS).index == 8
    # A setting saved as a bare name before: the preferred host API's device of that name.
    assert resolve("Focusrite USB (Focusrite USB Audio)", DEVICES, HOST_APIS).index == 6
    assert resolve("", DEVICES, HOST_APIS) is None
    assert resolve("MME: an unplugged interface", DEVICES, HOST_APIS) is None


def test_wasapi_converts_a_rate_other_than_the_devices():
    pytest.importorskip("sounddevice", reason="needs PortAudio (libportaudio2)")
    wasapi = resolve("Windows WASAPI: Speakers (Realtek(R) Audio)", DEVICES, HOST_APIS)
    options = stream_options(wasapi, 44100)
    assert options["device"] == wasapi.index and options["extra_settings"]._streaminfo.flags != 0
    assert "extra_settings" not in stream_options(wasapi, 48000)
    assert stream_options(resolve("MME: Speakers (Realtek(R) Audio)", DEVICES, HOST_APIS), 44100) == {"device": 1}
    assert stream_options(None, 44100) == {"device": None}


def test_playback_opens_the_chosen_device_by_index_on_one_audio_thread(qtbot, tmp_path, monkeypatch):
    sounddevice = pytest.importorskip("sounddevice", reason="needs PortAudio (libportaudio2)")
    from ui.app.playback import Player

    opened: list[dict] = []
    threads: set[int] = set()

    class FakeStream:  # the audio device this machine does not have
        def __init__(self, **kwargs):
            opened.append(kwargs)
            threads.add(threading.get_ident())

        def start(self):
            threads.add(threading.get_ident())

        def stop(self):
            threads.add(threading.get_ident())

        def close(self):
            threads.add(threading.get_ident())

    assert set(inspect.signature(sounddevice.OutputStream).parameters) >= {"samplerate", "channels", "dtype",
                                                                           "callback", "device", "extra_settings"}
    monkeypatch.setattr(sounddevice, "query_devices", lambda *a, **k: DEVICES)
    monkeypatch.setattr(sounddevice, "query_hostapis", lambda *a, **k: HOST_APIS)
    monkeypatch.setattr(sounddevice, "OutputStream", FakeStream)
    wav = tmp_path / "loop.wav"
    soundfile.write(wav, np.zeros((4410, 2), np.float32), 44100)
    player = Player()
    player.device = "MME: Focusrite USB (Focusrite USB Audio)"
    for _ in range(2):
        player.play(str(wav))
        qtbot.waitUntil(lambda: player.playing, timeout=5000)
        player.stop()
    assert [o["device"] for o in opened] == [2, 2] and "extra_settings" not in opened[0]
    assert len(threads) == 1 and threading.get_ident() not in threads  # one audio thread, never the GUI's
