"""The frozen app's entry point, for both programs in the app folder: `riffstudio` (windowed; no
arguments opens the app) and `riffstudio-cli` (console: every command, the engine, the self-test)."""

import sys

from ui.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
