"""The window fits a laptop and a strip beside the DAW (issue #26): laid out on the real widget tree, offscreen,
at 1280x720 and at 560x900, no button's words are cut and text never widens the window."""

from __future__ import annotations

import pytest
from engine_fixtures import engine_home
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QCheckBox,
    QLabel,
    QPushButton,
    QStyle,
    QStyleOptionButton,
)

SIZES = [(1280, 720), (560, 900)]
LONG_PROMPT = "dusty boom bap drums with vinyl crackle, a lazy swung hi-hat and a deep round kick, 90 bpm"


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    """A window with a model chosen and a loop shown (the state a producer works in), no engine needed."""
    from ui.app.library import LibraryLoop
    from ui.app.settings import AppSettings
    from ui.app.theme import apply_theme
    from ui.app.window import MainWindow

    with engine_home(monkeypatch):
        apply_theme(QApplication.instance(), "dark")  # the stylesheet's paddings are part of what must fit
        win = MainWindow(AppSettings(export_dir=str(tmp_path / "exports")))
        qtbot.addWidget(win)
        win.set_bundle(str(tmp_path / "riffusion-v1-int8"), check=False)
        image = QImage(512, 512, QImage.Format.Format_Grayscale8)
        image.fill(90)
        image.save(str(tmp_path / "loop.png"))
        loop = LibraryLoop(job="a", prompt=LONG_PROMPT, negative="", settings={"scheduler": "dpmpp_2m", "steps": 25},
                           seed=1234, bundle_identity="", folder=str(tmp_path), audio=str(tmp_path / "loop.wav"),
                           image=str(tmp_path / "loop.png"), export="", duration_s=5.1, bpm=90, bars=2, rating=0,
                           favourite=False, created=0.0)
        win._show_loop(loop)
        yield win
        win.shutdown()
        QApplication.instance().setStyleSheet("")


def text_room(button: QAbstractButton) -> int:
    """The width the style leaves for `button`'s words (its padding, border, indicator and icon taken off)."""
    style = button.style()
    option = QStyleOptionButton()
    if isinstance(button, QPushButton | QCheckBox):
        button.initStyleOption(option)
    if isinstance(button, QPushButton):
        room = style.subElementRect(QStyle.SubElement.SE_PushButtonContents, option, button).width()
        return room - 2 * style.pixelMetric(QStyle.PixelMetric.PM_ButtonMargin, option, button) // 2
    if isinstance(button, QCheckBox):
        return style.subElementRect(QStyle.SubElement.SE_CheckBoxContents, option, button).width()
    icon = button.iconSize().width() + 4 if not button.icon().isNull() else 0
    return button.width() - 12 - icon  # a tool button: the stylesheet's 6 px each side


def cut_buttons(window) -> list[str]:
    """Every visible button whose words do not fit it (an icon-only button needs a tooltip instead)."""
    cut = []
    for button in window.findChildren(QAbstractButton):
        if not button.isVisibleTo(window) or not button.isVisible():
            continue
        text = button.text().replace("&", "")
        if not text:
            if button.icon().isNull() or not button.toolTip():
                cut.append(f"{button.objectName() or type(button).__name__}: neither words nor icon + tooltip")
            continue
        need, room = button.fontMetrics().horizontalAdvance(text), text_room(button)
        if need > room:
            cut.append(f"{text!r}: {need} px of words in {room} px (button {button.width()} px)")
    return cut


def cut_labels(window) -> list[str]:
    """Every visible one-line label whose words run past its width with no ellipsis (an elided label shows "…"
    and its whole text in its tooltip, so it is not cut)."""
    from ui.app.elided_label import ElidedLabel

    cut = []
    for label in window.findChildren(QLabel):
        if not label.isVisible() or label.wordWrap() or isinstance(label, ElidedLabel) or not label.text():
            continue
        if label.textFormat() == Qt.TextFormat.RichText or "<" in label.text():
            continue
        room = label.contentsRect().width() - 2 * label.margin() - label.indent() * (label.indent() > 0)
        need = label.fontMetrics().horizontalAdvance(label.text())
        if need > room and shown_height(label) > 0:
            cut.append(f"{label.objectName() or label.text()!r}: {need} px of words in {room} px")
    return cut


def lay_out(qtbot, window, width: int, height: int) -> None:
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    for _ in range(3):  # layouts settle over a few passes (splitters, flows, a reflow)
        QApplication.processEvents()
        qtbot.wait(20)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_window_takes_the_size_asked_and_cuts_no_button_words(qtbot, window, width, height):
    lay_out(qtbot, window, width, height)
    assert (window.width(), window.height()) == (width, height)
    assert cut_buttons(window) == []
    assert cut_labels(window) == []


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_long_queue_title_ends_in_an_ellipsis_not_mid_word(qtbot, window, width, height):
    """A job's title wider than its row was cut mid-word with no ellipsis ("…100 bp", shots 07, 62): elided, with
    the whole title in its tooltip."""
    from ui.app.controller import JobRequest

    title = "more like: " + LONG_PROMPT
    window.controller.job_queued.emit("j1", JobRequest(settings={"prompt": "x"}, bundle="b", label=title))
    lay_out(qtbot, window, width, height)
    row = window.queue.row("j1")
    assert row.title.toolTip() == title
    assert cut_labels(window) == []


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_tempo_choice_fits_too(qtbot, window, width, height):
    """The prompt's 90 bpm against the box's 120: the inline choice's buttons keep their words at both sizes."""
    window.generate_panel.prompt.setText(LONG_PROMPT)
    lay_out(qtbot, window, width, height)
    assert window.generate_panel.tempo_choice.isVisible()
    assert (window.width(), window.height()) == (width, height)
    assert cut_buttons(window) == []
    assert cut_labels(window) == []


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_library_filters_fit_too(qtbot, window, width, height):
    """The library's order box and its filters (BPM range, bars, key, fits) shown: still no word cut, no growth."""
    window.library_pane.filters_toggle.setChecked(True)
    lay_out(qtbot, window, width, height)
    assert window.library_pane.filters.isVisible() and window.library_pane.key.isVisible()
    assert (window.width(), window.height()) == (width, height)
    assert cut_buttons(window) == []
    assert cut_labels(window) == []


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_long_status_message_never_widens_the_window(qtbot, window, width, height):
    lay_out(qtbot, window, width, height)
    before = window.width()
    window.statusBar().showMessage("riffstudio: " + "a very long message about the engine " * 14)
    window.model_label.setText("Model: " + "a-bundle-with-a-very-long-name-" * 8)
    lay_out(qtbot, window, before, height)
    assert window.width() == before
    assert window.minimumSizeHint().width() <= before


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_header_keeps_every_word_of_what_the_loop_came_from(qtbot, window, width, height):
    """A refinement of a loop with a long prompt: its "refined from …" line wraps, never cut, never wider."""
    from dataclasses import replace

    window._show_loop(replace(window.current, kind="refined", parent="p", parent_label=f"{LONG_PROMPT} · seed 9",
                              parent_listed=True))
    lay_out(qtbot, window, width, height)
    header = window.result_pane.parent_link
    assert header.isVisible() and header.words == f"refined from “{LONG_PROMPT} · seed 9”"
    assert header.height() >= header.heightForWidth(header.width())  # all its lines have room
    assert header.mapTo(window, header.rect().topRight()).x() <= window.width()
    assert (window.width(), window.height()) == (width, height) and cut_buttons(window) == []


def test_narrow_window_shows_prompt_result_and_library_in_one_column(qtbot, window):
    lay_out(qtbot, window, 560, 900)
    panes = (window.generate_panel, window.result_pane.spectrogram, window.library_pane)
    assert all(pane.isVisible() and pane.width() > 0 and pane.height() > 40 for pane in panes)
    lefts = {pane.mapTo(window, pane.rect().topLeft()).x() for pane in (window.generate_panel,
                                                                        window.library_pane)}
    tops = [pane.mapTo(window, pane.rect().topLeft()).y() for pane in panes]
    assert tops == sorted(tops) and len(set(tops)) == 3  # stacked: prompt, result, library
    assert max(lefts) < 40


def test_the_empty_state_fits_beside_the_daw_too(qtbot, monkeypatch):
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    with engine_home(monkeypatch):
        win = MainWindow(AppSettings())
        qtbot.addWidget(win)
        win.empty_state.show_offer("Get Riffusion (2.1 GB download, about 6 minutes here)")
        lay_out(qtbot, win, 560, 900)
        try:
            assert win.empty_state.isVisible() and win.width() == 560
            assert cut_buttons(win) == []
        finally:
            win.shutdown()


def test_the_window_remembers_its_size_and_always_on_top(qtbot, monkeypatch):
    from PySide6.QtCore import Qt

    from ui.app.settings import AppSettings, load_settings
    from ui.app.window import MainWindow

    with engine_home(monkeypatch):
        first = MainWindow(AppSettings())
        qtbot.addWidget(first)
        lay_out(qtbot, first, 620, 540)  # within the offscreen screen (Qt fits a restore to it)
        first.on_top_action.trigger()  # View > Always on top
        assert first.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
        first.close()
        again = MainWindow(load_settings())
        qtbot.addWidget(again)
        try:
            assert again.size().toTuple() == (620, 540)
            assert again.on_top_action.isChecked()
            assert again.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
        finally:
            again.shutdown()


def fill_library(window, tmp_path, count: int = 8) -> None:
    """`count` real loops (the one loop writer's files) filed in the window's library and listed."""
    import json
    from pathlib import Path

    from library_loops import write_result

    for index in range(count):
        paths = write_result(tmp_path / f"listed{index}", {"prompt": f"loop number {index}", "seed": index})
        window.library.add_result(f"listed{index}", paths, json.loads(Path(paths["sidecar"]).read_text()),
                                  created=float(index))
    window.refresh_library()


def shown_height(widget) -> int:
    """How many pixels of `widget` are on screen: its visible region, after every scroll area above it clips it."""
    return widget.visibleRegion().boundingRect().height() if widget.isVisible() else 0


def rows_shown(window) -> float:
    view = window.library_pane.library_view
    return shown_height(view.viewport()) / view.sizeHintForRow(0)


@pytest.mark.parametrize("filters", [False, True])
@pytest.mark.parametrize("tempo_notice", [False, True])
def test_the_strip_gives_the_library_room_for_four_rows(qtbot, window, tmp_path, filters, tempo_notice):
    """Beside the DAW the library is a browser, not a one-row slot: four rows on screen at 560x900, with the
    filters open and with the prompt's tempo notice showing (shots 49, 50, 54, 59)."""
    fill_library(window, tmp_path)
    window.library_pane.filters_toggle.setChecked(filters)
    if tempo_notice:
        window.generate_panel.prompt.setText(LONG_PROMPT)
    lay_out(qtbot, window, 560, 900)
    assert window.generate_panel.tempo_choice.isVisible() == tempo_notice
    assert rows_shown(window) >= 4
    assert (window.width(), window.height()) == (560, 900)


def test_the_strips_library_keeps_four_rows_as_the_filters_and_the_tempo_notice_open(qtbot, window, tmp_path):
    """Opened after the strip was laid out (the splitter's sizes already set), the same."""
    fill_library(window, tmp_path)
    lay_out(qtbot, window, 560, 900)
    window.library_pane.filters_toggle.setChecked(True)
    window.generate_panel.prompt.setText(LONG_PROMPT)
    lay_out(qtbot, window, 560, 900)
    assert window.library_pane.filters.isVisible() and window.generate_panel.tempo_choice.isVisible()
    assert rows_shown(window) >= 4


@pytest.mark.parametrize("crowded", [False, True])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_running_job_shows_its_progress_and_cancel(qtbot, window, tmp_path, width, height, crowded):
    """A queued job, then running: its row, progress bar and Cancel are on screen at both sizes (in the strip the
    queue had no height at all: shots 51-55), with the tempo notice and the library's filters open too."""
    from ui.app.controller import JobRequest

    if crowded:
        fill_library(window, tmp_path)
        window.generate_panel.prompt.setText(LONG_PROMPT)
        window.library_pane.filters_toggle.setChecked(True)
    lay_out(qtbot, window, width, height)
    window.controller.job_queued.emit("j1", JobRequest(settings={"prompt": "funky slap bass"}, bundle="b"))
    window.controller.job_started.emit("j1")
    window.controller.job_progress.emit("j1", "denoise", 0.4)
    lay_out(qtbot, window, width, height)
    row = window.queue.row("j1")
    assert shown_height(row.progress) == row.progress.height() > 0
    assert shown_height(row.cancel) == row.cancel.height() > 0
    assert shown_height(row) == row.height()  # its title and its state's words too


def test_advanced_open_keeps_a_whole_queue_row_on_a_laptop(qtbot, window):
    """At 1280x720 with the tempo notice and Advanced open the queue kept one clipped row (shot 63): the newest
    row stays whole (the older ones scroll)."""
    from ui.app.controller import JobRequest

    window.generate_panel.prompt.setText(LONG_PROMPT)
    window.generate_panel.advanced_toggle.setChecked(True)
    for job in ("j1", "j2", "j3"):
        window.controller.job_queued.emit(job, JobRequest(settings={"prompt": "funky slap bass"}, bundle="b"))
    lay_out(qtbot, window, 1280, 720)
    row = window.queue.row("j3")
    assert shown_height(row) == row.sizeHint().height()


def overlapping(labels) -> list[tuple[str, str]]:
    return [(first[1], second[1]) for index, first in enumerate(labels) for second in labels[index + 1:]
            if first[0].intersects(second[0])]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_spectrograms_axis_labels_never_overlap(qtbot, window, width, height):
    """In the strip the spectrogram is short and 500, 200 and 100 Hz were drawn over each other (shot 60): the
    labels that would overlap are left out, the round ones kept; on a laptop every frequency is labelled."""
    window.generate_panel.advanced_toggle.setChecked(True)
    lay_out(qtbot, window, width, height)
    view = window.result_pane.spectrogram
    labels = view.axis_labels()
    words = {label for _, label, _ in labels}
    assert overlapping(labels) == []
    assert {"100", "1k", "10k", "1", "2"} <= words  # Hz at the bottom, middle and top; bars 1 and 2
    if view.height() >= 300:  # a laptop's
        assert {"200", "500", "2k", "5k"} <= words


def test_squeezed_to_its_least_height_the_spectrogram_still_labels_without_overlap(qtbot, window):
    lay_out(qtbot, window, 560, 900)
    view = window.result_pane.spectrogram
    view.setFixedHeight(view.minimumHeight())
    lay_out(qtbot, window, 560, 900)
    assert view.height() == view.minimumHeight() and overlapping(view.axis_labels()) == []
    ys = {label: rect.center().y() for rect, label, _ in view.axis_labels()}
    assert ys["100"] > ys["1k"] > ys["10k"]
    from PySide6.QtCore import QRectF

    from ui.app.axes import frequency_ticks
    from ui.app.spectrogram_view import PARAMS

    plot = view.rect().adjusted(0, 6, 0, -22)  # each tick's 16 px label, as the strip painted them all (shot 60)
    all_labels = [(QRectF(0, plot.bottom() - fraction * plot.height() - 8, 38, 16), label)
                  for fraction, label in frequency_ticks(PARAMS)]
    assert overlapping(all_labels)  # so leaving some out is needed at this height


def test_the_dialogs_cut_no_words_either(qtbot, monkeypatch, tmp_path):
    """Export…, Settings and the batch window at the size they open with, in the app's theme: no button's or
    label's words cut."""
    from pathlib import Path

    from ui.app.batch_runner import BatchRunner
    from ui.app.batch_window import BatchWindow
    from ui.app.export_dialog import ExportChoice, ExportDialog
    from ui.app.settings import AppSettings
    from ui.app.settings_dialog import SettingsDialog
    from ui.app.theme import apply_theme

    apply_theme(QApplication.instance(), "dark")
    try:
        with engine_home(monkeypatch):
            dialogs = [ExportDialog(ExportChoice(folder=tmp_path), 3), SettingsDialog(AppSettings()),
                       BatchWindow(BatchRunner(), lambda: tmp_path, lambda: "")]
            dialogs[2].set_presets(Path(tmp_path) / "pack.toml")
            for dialog in dialogs:
                qtbot.addWidget(dialog)
                dialog.show()
                qtbot.waitExposed(dialog)
                QApplication.processEvents()
                assert cut_buttons(dialog) == [] and cut_labels(dialog) == [], type(dialog).__name__
    finally:
        QApplication.instance().setStyleSheet("")


def test_in_the_strip_a_finished_loop_scrolls_into_view(qtbot, window, tmp_path):
    """Beside the DAW the result sits below the prompt in a scrolling column: when the loop asked for is done,
    its title and spectrogram are brought on screen (with the tempo notice and Advanced open they were below)."""
    from library_loops import finish

    from ui.app.controller import JobRequest

    window.generate_panel.prompt.setText(LONG_PROMPT)
    window.generate_panel.advanced_toggle.setChecked(True)
    lay_out(qtbot, window, 560, 900)
    request = JobRequest(settings={"prompt": "funky slap bass"}, bundle="b")
    finish(window, request, tmp_path)
    lay_out(qtbot, window, 560, 900)
    pane = window.result_pane
    assert shown_height(pane.result_title) == pane.result_title.height() > 0
    assert shown_height(pane.spectrogram) >= min(pane.spectrogram.height(), 100)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_riff_strength_is_beside_riff_on_a_file_with_advanced_folded(qtbot, monkeypatch, window, tmp_path, width,
                                                                        height):
    """A producer sets how far a riff may go before choosing the file (it sat folded under Advanced, and Riff on a
    file… started at once); a riff takes what it shows."""
    panel = window.generate_panel
    lay_out(qtbot, window, width, height)
    assert not panel.advanced.isVisible() and panel.strength.isVisible() and panel.strength_label.isVisible()
    assert abs(panel.strength.y() - panel.riff_file_button.y()) < panel.riff_file_button.height()
    panel.strength.setValue(40)
    kick = tmp_path / "kick.wav"
    kick.write_bytes(b"RIFF")
    submitted = []
    monkeypatch.setattr(window.controller, "submit", submitted.append)
    window.riff_on_file(str(kick))
    assert submitted[-1].settings["strength"] == 0.4 and panel.strength_label.text() == "0.40"


def test_a_queue_with_a_scrollbar_keeps_every_rows_cancel_inside(qtbot, window):
    """Five jobs at 1280x720 give the queue a scrollbar: each row must shrink to the room left, its ✕ inside the
    view (a status line's words set the rows' least width, and the scrollbar covered every ✕)."""
    from ui.app.controller import JobRequest

    for index in range(5):
        job = f"j{index}"
        window.controller.job_queued.emit(job, JobRequest(settings={"prompt": "funky slap bass"}, bundle="b"))
        window.queue.finish(job, "done", f"done in 11.{index} s · seed 5466175{index}")
    lay_out(qtbot, window, 1280, 720)
    from PySide6.QtWidgets import QScrollArea

    scroll = window.queue.findChild(QScrollArea)
    assert scroll.verticalScrollBar().isVisible()
    right = scroll.viewport().mapToGlobal(scroll.viewport().rect().topRight()).x()
    for row in window.queue.rows.values():
        assert row.cancel.mapToGlobal(row.cancel.rect().topRight()).x() <= right, row.job
