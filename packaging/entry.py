"""The frozen app's entry point, for both programs in the app folder: `riffstudio` (windowed; no
arguments opens the app) and `riffstudio-cli` (console: every command, the engine, the self-test)."""

import sys

from ui.cli.main import main
from ui.windowed_output import keep_windowed_output

if __name__ == "__main__":
    keep_windowed_output()  # the windowed riffstudio.exe has no console: its output goes to app.log
    sys.exit(main())
