"""`python -m engine.process serve [options]`: the engine, as `riffstudio engine serve` runs it.

Clients start engines this way (not through the `riffstudio` script) so that the engine package does not
depend on the command line's."""

from __future__ import annotations

import sys

from engine.process.launch import main

if __name__ == "__main__":
    sys.exit(main())
