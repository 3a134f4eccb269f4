"""Build the tiny test bundles named on the command line (fp32, int8, qnn), in that order.

    python tests/prebuild_bundles.py fp32 int8 qnn

The test suite starts this in the background on a cold cache (conftest.pytest_collection_modifyitems)
so the bundles build on the second core while tests that need none run; the bundles are the same
cached_bundle() builds the fixtures ask for, under the same locks, so whichever process gets there
first builds and the other finds it done.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import bundle_options, cached_bundle


def main(names: list[str]) -> None:
    for name in names:
        start = time.perf_counter()
        path = cached_bundle(name, **bundle_options(name))
        print(f"prebuild: {name} bundle {path.name} ready after {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
