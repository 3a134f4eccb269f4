"""Where a finished loop's DAW file goes: a draft's stays in the library's own folder, every other loop's goes to
the export folder (#26: "drafts land in the export folder too").

The decision: a draft (a loop at the draft speed preset, engine/speeds.py, as the result pane's Refine
reads it) is still written as a DAW file the moment it finishes, like any loop, but into
`<user data>/riffstudio/drafts/`, beside the library's database, never into the export folder the producer
browses from the DAW. So:

- a drag of a draft starts at once and hands the DAW a whole file that does not vanish: the app never clears
  that folder; only deleting the draft in the library removes it, as for any loop (exporting at drag time
  instead would make the drag wait for the fit, and a temporary file would go missing from the DAW's set);
- Export… puts a draft wherever the producer chooses; exported into the export folder it is an export like any
  other, and drags hand out that copy from then on;
- Refine makes a full loop from it (the same seed), which is not a draft and lands in the export folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DRAFTS = "drafts"


def drafts_folder() -> Path:
    """The library's own folder for drafts' DAW files (platformdirs' user data dir, beside library.sqlite3)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("riffstudio", appauthor=False)) / DRAFTS


def is_draft(settings: dict[str, Any]) -> bool:
    """Whether a loop with these settings (a GenerationSettings dict) is a draft: made at the draft speed."""
    from engine.speeds import speed_of

    return speed_of(settings) == "draft"


def daw_folder(settings: dict[str, Any], export_folder: Path) -> Path:
    """The folder a finished loop's DAW file is written to: the drafts folder for a draft, else `export_folder`."""
    return drafts_folder() if is_draft(settings) else export_folder
