"""The result header states the length of the file a drag hands out, and the spectrogram marks where on the
painting that file was cut from (#26: the header said 5.8 s, the painting's length, over a 4.000 s file)."""

from __future__ import annotations

import time

import pytest
import soundfile
from app_window import recording_window
from conftest import DATA


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    with recording_window(qtbot, monkeypatch, tmp_path) as win:
        yield win


def exported_loop(tmp_path, *, bpm: float | None, bars: float | None):
    """A loop exported by the app's own export (ui/app/exports.export_loop), as the library then holds it."""
    from ui.app.exports import ExportRequest, export_loop
    from ui.app.library import LibraryLoop

    audio, image = DATA / "audio" / "drums.wav", DATA / "golden" / "drums.riffusion.png"
    settings = {"prompt": "funky drums", "seed": 7, "steps": 30, "scheduler": "dpmpp_2m"}
    out = export_loop(ExportRequest(audio=str(audio), image=str(image), sidecar={"settings": settings},
                                    folder=tmp_path / "exports", bpm=bpm, bars=bars))
    return LibraryLoop(job="job1", prompt="funky drums", negative="", settings=settings, seed=7, bundle_identity="",
                       folder=str(tmp_path), audio=str(audio), image=str(image), export=str(out),
                       duration_s=soundfile.info(audio).duration, bpm=bpm, bars=bars, rating=0, favourite=False,
                       created=time.time()), out


@pytest.mark.parametrize(("bpm", "words"), [(120.0, "2 bars · 8 beats · 4.00 s · 120 bpm"),
                                            (100.0, "2 bars · 8 beats · 4.80 s · 100 bpm")])
def test_the_header_shows_the_exported_files_length_on_the_grid(window, tmp_path, bpm, words):
    loop, out = exported_loop(tmp_path, bpm=bpm, bars=2.0)
    window._show_loop(loop)
    header = window.result_pane.result_meta.text()
    assert header.startswith(words)
    seconds = float(header.split(" · ")[2].removesuffix(" s"))
    info = soundfile.info(out)
    assert seconds == pytest.approx(info.frames / info.samplerate, abs=0.005)
    assert f"{loop.duration_s:.1f} s" not in header  # not the painting's length


def test_the_header_shows_the_engines_length_in_seconds_mode(window, tmp_path):
    loop, out = exported_loop(tmp_path, bpm=None, bars=None)
    window._show_loop(loop)
    info = soundfile.info(out)
    assert window.result_pane.result_meta.text().startswith(f"{info.frames / info.samplerate:.2f} s")
    assert window.result_pane.spectrogram.region is None  # no grid: nothing was cut


def test_the_spectrogram_marks_the_loop_region_on_the_painting(qtbot, window, tmp_path):
    import json

    from ui.app.spectrogram_view import REGION_COLOUR

    loop, out = exported_loop(tmp_path, bpm=120.0, bars=2.0)
    window.resize(1280, 720)
    window.show()
    window._show_loop(loop)
    view = window.result_pane.spectrogram
    fit = json.loads(out.with_suffix(".json").read_text())["fit"]
    start, end = view.region
    assert start == pytest.approx(fit["start_s"])
    assert end - start == pytest.approx(4.0 / fit["stretch"], rel=0.01)  # 4.00 s of file from this much painting
    assert 0 < start < end < view.duration_s
    picture = view.grab().toImage()
    y = int(view.height() / 2)
    for seconds in (start, end):
        x = round(view.x_at(seconds))
        colours = {picture.pixelColor(x + dx, y).name() for dx in (-1, 0, 1)}
        assert REGION_COLOUR.name() in colours
    beyond = round(view.x_at((end + view.duration_s) / 2))  # painting after the region: shaded
    region, view.region = view.region, None
    unshaded = view.grab().toImage()
    view.region = region
    assert picture.pixelColor(beyond, y).lightness() < unshaded.pixelColor(beyond, y).lightness()
    middle = round(view.x_at((start + end) / 2))
    assert picture.pixelColor(middle, y) == unshaded.pixelColor(middle, y)  # the region itself as painted
