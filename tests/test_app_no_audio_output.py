"""When nothing can play, the app says what to check, in a producer's words: no output found, an output that
would not open (another app holding it: the DAW's ASIO driver), no PortAudio; and Settings' Audio output list
says "No outputs found" instead of being empty. Said once, and again after another output is chosen.

The audio device is faked as tests/test_audio_devices.py fakes it (sounddevice's own data shapes, checked there
against the installed library; OutputStream's parameters checked here): this machine has none."""

from __future__ import annotations

import inspect
from typing import ClassVar

import numpy as np
import pytest
import soundfile
from test_audio_devices import DEVICES, HOST_APIS

sounddevice = pytest.importorskip("sounddevice", reason="needs PortAudio (libportaudio2)")

ONLY_A_MICROPHONE = DEVICES[:1]  # an input, no output


class BusyStream:
    """An output PortAudio will not open (held exclusively by another app), with OutputStream's parameters."""

    opened: ClassVar[list[dict]] = []

    def __init__(self, **kwargs):
        BusyStream.opened.append(kwargs)
        raise sounddevice.PortAudioError("Error opening OutputStream: Device unavailable [PaErrorCode -9985]")


@pytest.fixture
def fake_outputs(monkeypatch):
    """Set the fake device list: `fake_outputs(devices)`; OutputStream always refuses to open."""
    assert set(inspect.signature(sounddevice.OutputStream).parameters) >= {"samplerate", "channels", "dtype",
                                                                           "callback", "device"}
    BusyStream.opened = []
    monkeypatch.setattr(sounddevice, "OutputStream", BusyStream)
    monkeypatch.setattr(sounddevice, "query_hostapis", lambda *a, **k: HOST_APIS)

    def use(devices: list[dict]) -> None:
        monkeypatch.setattr(sounddevice, "query_devices", lambda *a, **k: devices)

    return use


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "loop.wav"
    soundfile.write(path, np.zeros((4410, 2), np.float32), 44100)
    return str(path)


def said_by(qtbot, player, play) -> list[str]:
    messages: list[str] = []
    player.unavailable.connect(messages.append)
    play()
    qtbot.waitUntil(lambda: bool(messages), timeout=10_000)
    return messages


def test_no_output_at_all_says_to_check_the_speakers_and_the_daws_exclusive_hold(qtbot, fake_outputs, wav):
    from ui.app.playback import Player

    fake_outputs(ONLY_A_MICROPHONE)
    player = Player()
    messages = said_by(qtbot, player, lambda: player.play(wav))
    assert messages == ["No audio output found: check that speakers or headphones are connected and not used "
                        "exclusively by another app (the DAW's ASIO driver), then choose one in Settings"]
    player.play(wav)
    qtbot.wait(300)
    assert len(messages) == 1 and not player.playing  # said once, not at every play


def test_an_output_that_will_not_open_is_named_and_said_again_after_another_is_chosen(qtbot, fake_outputs, wav):
    from ui.app.playback import Player

    fake_outputs(DEVICES)
    player = Player()
    player.device = "MME: Focusrite USB (Focusrite USB Audio)"
    messages = said_by(qtbot, player, lambda: player.play(wav))
    assert messages == ["Cannot play on Focusrite USB (Focusrite USB Audio) (MME): check that it is connected and "
                        "not used exclusively by another app (the DAW's ASIO driver), or choose another output in "
                        "Settings"]
    assert BusyStream.opened[-1]["device"] == 2  # that very device was tried
    player.device = None  # Settings: back to the system default, which will not open either
    player.play(wav)
    qtbot.waitUntil(lambda: len(messages) == 2, timeout=10_000)
    assert messages[1].startswith("Cannot play on the system's default output: check that it is connected")


def test_the_window_shows_the_hint_in_the_status_bar(qtbot, monkeypatch, fake_outputs, tmp_path, wav):
    from app_window import plain_window

    fake_outputs(ONLY_A_MICROPHONE)
    with plain_window(qtbot, monkeypatch, export_dir=str(tmp_path / "exports")) as window:
        window.player.play(wav)
        qtbot.waitUntil(lambda: window.audio_message_shown, timeout=10_000)
        assert window.statusBar().currentMessage().startswith("No audio output found: check that speakers")


def test_settings_says_no_outputs_found_instead_of_an_empty_list(qtbot, fake_outputs):
    from ui.app.settings import AppSettings
    from ui.app.settings_dialog import SettingsDialog

    fake_outputs(ONLY_A_MICROPHONE)
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.show()
    items = [dialog.device.itemText(i) for i in range(dialog.device.count())]
    assert items == ["No outputs found"] and dialog.device.currentText() == "No outputs found"
    assert dialog.device_hint.isVisible() and "not used exclusively by another app" in dialog.device_hint.text()
    assert dialog.value().audio_device == ""

    fake_outputs(DEVICES)
    dialog = SettingsDialog(AppSettings(audio_device="MME: Focusrite USB (Focusrite USB Audio)"))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.device.itemText(0) == "System default" and dialog.device.count() == 9
    assert dialog.device.currentText() == "Focusrite USB (Focusrite USB Audio) (MME)"
    assert not dialog.device_hint.isVisible()
