"""Drafts stay in the library's own folder until exported or refined (#26: "drafts land in the export folder
too"): a real draft on the tiny bundle through a real engine, its DAW file in the drafts folder (what a drag
hands out, a whole WAV that stays), its refinement in the export folder, and Export… of the draft to the export
folder making that copy the one drags hand out. See ui/app/library_drafts.py for the decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from test_app import TIMEOUT_MS, close_window, complete_wav, open_window, quick_settings, wait_for_loops


def exported(qtbot, window, job: str) -> Path:
    qtbot.waitUntil(lambda: bool(window.library.get(job).export), timeout=TIMEOUT_MS)
    return Path(window.library.get(job).export)


def dragged(window, job: str) -> list[str]:
    model = window.library_pane.library_model
    return [url.toLocalFile() for url in model.mimeData([model.index(model.row_of(job))]).urls()]


@pytest.mark.slow
def test_a_draft_stays_in_the_library_folder_until_refined_or_exported(qtbot, home, fp32_bundle):
    from ui.app.library_drafts import drafts_folder

    window = open_window(qtbot, fp32_bundle, home)
    exports = window.settings.export_folder()
    quick_settings(window)
    window.generate_panel.prompt.setText("lofi piano")
    qtbot.mouseClick(window.generate_panel.draft_button, Qt.MouseButton.LeftButton)
    wait_for_loops(qtbot, window, 1)
    draft = window.current.job
    draft_file = exported(qtbot, window, draft)
    assert draft_file.parent == drafts_folder() and drafts_folder().parent == window.library.path.parent
    assert not exports.exists() or list(exports.iterdir()) == []  # nothing of the draft in the export folder
    assert dragged(window, draft) == [str(draft_file)]
    complete_wav(str(draft_file))

    qtbot.mouseClick(window.result_pane.refine, Qt.MouseButton.LeftButton)
    wait_for_loops(qtbot, window, 2)
    refined = next(loop.job for loop in window.library_pane.loops if loop.job != draft)
    refined_file = exported(qtbot, window, refined)
    assert refined_file.parent == exports and dragged(window, refined) == [str(refined_file)]
    assert sorted(p.name for p in exports.iterdir()) == sorted([refined_file.name, refined_file.stem + ".json"])
    assert draft_file.is_file() and dragged(window, draft) == [str(draft_file)]  # the draft's file stays

    window.export_to(exports, [window.library.get(draft)])  # Export… of the draft into the export folder
    qtbot.waitUntil(lambda: Path(window.library.get(draft).export).parent == exports, timeout=TIMEOUT_MS)
    assert dragged(window, draft) == [window.library.get(draft).export]
    complete_wav(window.library.get(draft).export)
    close_window(window)
