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


def test_tests_never_see_the_real_user_folders():
    """Every test, and every process it starts, gets private user folders even when it asks for no `home`."""
    import os
    import subprocess

    from platformdirs import user_data_dir

    real = os.path.expanduser("~")
    assert not user_data_dir("riffstudio", appauthor=False).startswith(real)
    child = subprocess.run([sys.executable, "-c", "from platformdirs import user_data_dir, user_music_dir;"
                            "print(user_data_dir('riffstudio', appauthor=False)); print(user_music_dir())"],
                           capture_output=True, text=True, check=True)
    for line in child.stdout.splitlines():
        assert "rs-tests-" in line and not line.startswith(real), line
