"""Where the engine keeps its things, per user (platformdirs): the runtime dir for the connection file and
socket (gone at logout, private to the user), the data dir for the journal, the log and the results.

Every path is computed when asked, never at import, so tests (and users) can move them with the
XDG_* environment variables (or their macOS / Windows equivalents)."""

from __future__ import annotations

import os
from pathlib import Path

APP = "riffstudio"
# Test hook: a process with this set to "1" counts as elevated (engine/process/hooks.py).
ELEVATED_TEST_ENV = "RIFFSTUDIO_ENGINE_TEST_ELEVATED"


def runtime_dir() -> Path:
    """Private (0700) folder for the connection file, the locks and the socket."""
    from platformdirs import user_runtime_dir

    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and not os.path.isdir(xdg):
        # platformdirs ignores an XDG_RUNTIME_DIR that is not 0700: make it so, rather than let two calls
        # (before and after the folder exists) disagree.
        Path(xdg).mkdir(parents=True, mode=0o700)

    return _private(Path(user_runtime_dir(APP, appauthor=False)) / privilege_level())


def engine_data_dir() -> Path:
    """The journal and the engine's log."""
    from platformdirs import user_data_dir

    return _private(Path(user_data_dir(APP, appauthor=False)) / "engine" / privilege_level())


def results_dir() -> Path:
    """One folder per job, named by the job's id."""
    from platformdirs import user_data_dir

    path = Path(user_data_dir(APP, appauthor=False)) / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def journal_path() -> Path:
    return engine_data_dir() / "journal.sqlite3"


def log_path() -> Path:
    return engine_data_dir() / "engine.log"


def app_log_path() -> Path:
    """Where the windowed app writes what a console program would print (it has no console)."""
    return engine_data_dir() / "app.log"


def privilege_level() -> str:
    """"" for a normal process, "elevated" for one run as administrator (Windows): one engine per user *and*
    level, each with its own connection file, locks and journal. A normal client cannot open an elevated
    engine's pipe or stop it, and an elevated engine must not run a normal user's jobs with its rights.
    (POSIX: root has its own runtime and data folders already.)"""
    return "elevated" if is_elevated() else ""


def is_elevated() -> bool:
    if os.environ.get(ELEVATED_TEST_ENV) == "1":  # test hook (engine/process/hooks.py): a second level here
        return True
    if os.name != "nt":
        return False
    import ctypes

    try:
        return bool(ctypes.WinDLL("shell32").IsUserAnAdmin())
    except (OSError, AttributeError):
        return False


def _private(path: Path) -> Path:
    """`path`, created if needed, ours alone (0700). A folder of another user's there (a shared /tmp) would
    hand them our connection key or stop us: refused in one line."""
    from engine.errors import EngineError

    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.name == "posix":
            if path.stat().st_uid != os.getuid():
                raise EngineError(f"the engine's folder {path} belongs to another user: remove it, or set "
                                  "XDG_RUNTIME_DIR (or XDG_DATA_HOME) to a folder of your own")
            os.chmod(path, 0o700)
    except OSError as error:
        raise EngineError(f"cannot use the engine's folder {path} ({error.strerror or error}): remove it, or set "
                          "XDG_RUNTIME_DIR (or XDG_DATA_HOME) to a folder of your own") from None
    return path
