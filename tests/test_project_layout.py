"""The layout rules that keep the tools working: `packaging/` must not shadow the packaging library."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_packaging_folder_has_no_init_file():
    assert (REPO / "packaging").is_dir()
    assert not (REPO / "packaging" / "__init__.py").exists()


def test_packaging_library_imports_from_the_repository_root():
    result = subprocess.run([sys.executable, "-c", "import packaging.version as v; print(v.__file__)"],
                            cwd=REPO, capture_output=True, text=True, check=True)
    assert "site-packages" in result.stdout
