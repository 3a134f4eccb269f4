"""Set up `.venv` and run riffstudio or its test suite: the README's two commands.

    python bootstrap.py              # install the app into .venv and open it
    python bootstrap.py test [ARGS]  # install with the dev + export + hub (+ cluster) extras, run ruff and pytest

Standard library only, so it runs on a fresh Windows, macOS or Linux machine with just Python 3.11+.
An install is skipped when nothing it depends on changed since the last one (a stamp inside .venv).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
CONSTRAINTS = ROOT / "constraints.txt"
MIN_PYTHON = (3, 11)


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    python = venv_python()
    if not python.exists():
        print(f"bootstrap: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    return python


def install(python: Path, extras: str) -> None:
    """Install the project (editable) with `extras`, unless the same install is already there."""
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    digest.update(extras.encode())
    stamp = VENV / f".riffstudio-installed-{extras.replace(',', '-') or 'app'}"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    target = f".[{extras}]" if extras else "."
    print(f"bootstrap: installing riffstudio{'[' + extras + ']' if extras else ''} into {VENV}", flush=True)
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-c", str(CONSTRAINTS),
         "-e", target])
    stamp.write_text(digest.hexdigest())


def run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def emulated_on_arm64() -> bool:
    """An x64 (or x86) Python running emulated on a Windows ARM64 PC (a Snapdragon laptop): it works, slowly,
    and cannot load the NPU's ARM64 libraries. IsWow64Process2 names the machine's own architecture."""
    if os.name != "nt":
        return False
    import ctypes
    from ctypes import wintypes

    process, native = wintypes.USHORT(), wintypes.USHORT()
    kernel32 = ctypes.WinDLL("kernel32")
    function = getattr(kernel32, "IsWow64Process2", None)
    if function is None:  # before Windows 10 1709: no ARM64 PCs to speak of
        return False
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    function.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.USHORT), ctypes.POINTER(wintypes.USHORT)]
    if not function(kernel32.GetCurrentProcess(), ctypes.byref(process), ctypes.byref(native)):
        return False
    return native.value == 0xAA64 and platform.machine().upper() in ("AMD64", "X86")  # IMAGE_FILE_MACHINE_ARM64


def test_extras() -> str:
    """The extras the test suite needs: the cluster extra (Ray) too, wherever Ray has wheels (not Windows on
    ARM64), so the suite's Ray tests run in CI; elsewhere they are skipped."""
    windows_arm64 = os.name == "nt" and platform.machine().upper() in ("ARM64", "AARCH64")
    return "dev,export,hub" if windows_arm64 else "dev,export,hub,cluster"


def main(argv: list[str]) -> None:
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"bootstrap: riffstudio needs Python {'.'.join(map(str, MIN_PYTHON))} or newer, "
                 f"this is {sys.version.split()[0]}")
    if emulated_on_arm64():
        print("bootstrap: note: this is an x64 Python emulated on an ARM64 PC: riffstudio runs on the CPU only "
              "(the NPU's libraries are ARM64) and slowly; install the ARM64 Python from python.org for the NPU",
              file=sys.stderr, flush=True)
    python = ensure_venv()
    if argv[:1] == ["test"]:
        install(python, test_extras())
        run([str(python), "-m", "ruff", "check", "."])
        run([str(python), "-m", "pytest", *argv[1:]])
    else:
        install(python, "")
        run([str(python), "-m", "ui.cli.main", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
