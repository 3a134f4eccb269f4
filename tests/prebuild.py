"""Build the cached test bundles and artifacts named on the command line, in order (conftest starts one
of these per independent chain before the first test: see pytest_collection_finish)."""

from __future__ import annotations

import sys

from conftest import build_named

if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"prebuild: {name} -> {build_named(name)}", flush=True)
