"""Everything the CLI does to a loop, the app does (#26): Export… offers format, sample rate, bit depth and
loudness (they existed only in `riffstudio loop`), and "Riff on a file…" queues the job a drop queues."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
from app_window import recording_window
from conftest import DATA
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with recording_window(qtbot, monkeypatch, tmp_path) as win:
        yield win


@pytest.fixture
def loop(tmp_path):
    from ui.app.library import LibraryLoop

    settings = {"prompt": "funky drums", "seed": 7, "steps": 30, "scheduler": "dpmpp_2m"}
    return LibraryLoop(job="job1", prompt="funky drums", negative="", settings=settings, seed=7, bundle_identity="",
                       folder=str(tmp_path / "results"), audio=str(DATA / "audio" / "drums.wav"),
                       image=str(DATA / "golden" / "drums.riffusion.png"), export="", duration_s=5.1, bpm=120.0,
                       bars=2.0, rating=0, favourite=False, created=0.0)


def open_export(qtbot, window, loop):
    from ui.app.export_dialog import ExportDialog

    window._show_loop(loop)
    qtbot.mouseClick(window.result_pane.export_button, Qt.MouseButton.LeftButton)
    [dialog] = [d for d in window.findChildren(ExportDialog) if d.isVisible()]
    return dialog


def test_export_offers_the_clis_choices_from_engine_choices(qtbot, window, loop):
    from engine.choices import BIT_DEPTHS, LOOP_FILE_FORMATS, SAMPLE_RATES

    dialog = open_export(qtbot, window, loop)

    def items(combo, role=Qt.ItemDataRole.UserRole) -> list:
        return [combo.itemData(i, role) for i in range(combo.count())]

    assert items(dialog.audio_format, Qt.ItemDataRole.DisplayRole) == list(LOOP_FILE_FORMATS)
    assert items(dialog.sample_rate) == list(SAMPLE_RATES)
    assert items(dialog.bit_depth) == list(BIT_DEPTHS)
    assert items(dialog.loudness) == [None, -14.0, -23.0, "other"]
    dialog.reject()
    assert window.exports == []


@pytest.mark.parametrize(("loudness", "typed", "lufs"), [("-14 LUFS (streaming)", None, -14.0),
                                                         ("-23 LUFS (broadcast)", None, -23.0),
                                                         ("Other…", -18.5, -18.5),
                                                         ("Off (peak at -1 dBFS)", None, None)])
def test_export_hands_the_choices_to_the_export(qtbot, window, loop, tmp_path, loudness, typed, lufs):
    dialog = open_export(qtbot, window, loop)
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.audio_format.setCurrentText("aiff")
    dialog.sample_rate.setCurrentText("48 kHz")
    dialog.bit_depth.setCurrentText("32-bit float")
    dialog.loudness.setCurrentText(loudness)
    assert dialog.lufs.isVisibleTo(dialog) == (typed is not None)
    if typed is not None:
        dialog.lufs.setValue(typed)
    dialog.accept()
    [request] = window.exports
    assert (request.folder, request.audio_format, request.sample_rate, request.bit_depth, request.normalize_lufs) == (
        tmp_path / "out", "aiff", 48000, "32f", lufs)
    assert (request.bpm, request.bars) == (120.0, 2.0)
    assert (window.settings.export_format, window.settings.export_sample_rate) == ("aiff", 48000)  # remembered


def test_flac_offers_no_float(qtbot, window, loop):
    dialog = open_export(qtbot, window, loop)
    dialog.bit_depth.setCurrentText("32-bit float")
    dialog.audio_format.setCurrentText("flac")
    assert dialog.bit_depth.currentData() == "24"
    assert not dialog.bit_depth.model().item(dialog.bit_depth.findData("32f")).isEnabled()


@pytest.mark.parametrize("grid", [True, False])
def test_the_export_is_written_at_the_rate_depth_and_loudness_chosen(tmp_path, grid):
    from engine.loop_files import read_loop
    from plugin.loop_file import loudness
    from ui.app.exports import ExportRequest, export_loop

    out = export_loop(ExportRequest(audio=str(DATA / "audio" / "drums.wav"),
                                    image=str(DATA / "golden" / "drums.riffusion.png"),
                                    sidecar={"settings": {"prompt": "funky drums", "seed": 7}}, folder=tmp_path,
                                    bpm=120.0 if grid else None, bars=2.0 if grid else None, audio_format="flac",
                                    sample_rate=48000, bit_depth="16", normalize_lufs=-26.0))
    info = soundfile.info(out)
    assert (info.format, info.samplerate, info.subtype) == ("FLAC", 48000, "PCM_16")
    if grid:
        assert info.frames == 4 * 48000  # 2 bars at 120 bpm, exactly, at the new rate
    audio, rate = soundfile.read(out, always_2d=True)
    assert loudness(audio, rate) == pytest.approx(-26.0, abs=1.0)  # (drums peak-limit a -14 target)
    found = read_loop(out)
    assert found is not None
    assert (found.sidecar["audio"]["normalize"], found.sidecar["audio"]["target_lufs"]) == ("loudness", -26.0)


def test_riff_on_a_file_queues_the_job_a_drop_queues(qtbot, window, monkeypatch, tmp_path):
    wav = tmp_path / "kick.wav"
    wav.write_bytes(b"RIFF")
    asked = []

    def pick(*args, **kwargs):
        asked.append(args)
        return str(wav), "Audio"

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(pick))
    panel = window.generate_panel
    assert panel.riff_file_button.text() == "Riff on a file…" and panel.riff_file_button.isEnabled()
    qtbot.mouseClick(panel.riff_file_button, Qt.MouseButton.LeftButton)
    assert asked and "*.wav" in asked[0][-1]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(wav))])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))
    window.riff_file_action.trigger()  # File > Riff on a file… (Ctrl+R)
    picked, dropped, from_menu = window.submitted
    assert picked.label == dropped.label == from_menu.label == "riff on kick.wav"
    assert picked.settings["init_audio"] == str(Path(wav).resolve())
    without_seed = [{**request.settings, "seed": None} for request in window.submitted]
    assert without_seed[0] == without_seed[1] == without_seed[2]
    assert (picked.bpm, picked.bars) == (dropped.bpm, dropped.bars)


def test_a_cancelled_file_pick_queues_nothing(qtbot, window, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: ("", "")))
    qtbot.mouseClick(window.generate_panel.riff_file_button, Qt.MouseButton.LeftButton)
    assert window.submitted == []
