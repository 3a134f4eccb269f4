"""The Microsoft Visual C++ runtime that the NPU's libraries need on Windows, and whether Windows can find it.

onnxruntime-qnn's provider and the QNN libraries are built with MSVC against its runtime DLLs; Windows does
not bring them (a new Snapdragon laptop often has no ARM64 copy until some other program installs one).
Without them the provider fails to load with "The specified module could not be found" (error 126), which
names neither the DLL nor the fix. The app folder carries them (packaging/riffstudio.spec collects them from
the build machine, as Microsoft allows for app-local deployment); from source, or in an app folder built
without them, the self-test names what is missing and where to get it (ui/selftest/checks.py).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

# Where the provider's DLLs come from: this process's architecture, by the names platform.machine() gives.
_ARCH = {"ARM64": "arm64", "AARCH64": "arm64", "AMD64": "x64", "X86_64": "x64"}
# The runtime DLLs onnxruntime's and QNN's libraries link against (/MD builds): the C++ library and the
# compiler's runtime; x64 code also needs vcruntime140_1.dll (the x64-only exception handling it added).
NEEDED = {"arm64": ("msvcp140.dll", "vcruntime140.dll"),
          "x64": ("msvcp140.dll", "vcruntime140.dll", "vcruntime140_1.dll")}
REDIST_URL = "https://aka.ms/vs/17/release/vc_redist.{arch}.exe"
# Whether this process is on Windows (a test simulates it here, with a Windows folder of its own).
WINDOWS = sys.platform == "win32"


def architecture(machine: str | None = None) -> str | None:
    """'arm64' or 'x64' for `machine` (default this process's), None for others (no QNN build for them)."""
    return _ARCH.get((machine or platform.machine()).upper())


def needed(machine: str | None = None) -> tuple[str, ...]:
    arch = architecture(machine)
    return NEEDED[arch] if arch else ()


def search_places(provider_folder: Path) -> list[Path]:
    """The folders Windows looks in for the provider's runtime DLLs: the provider's own folder, the app
    folder's `_internal` (PyInstaller adds it with SetDllDirectory), Python's folder (python.org's Python
    carries vcruntime140.dll beside python.exe), System32, where the redistributable installs them, and
    PATH's folders (a library loaded with the altered search path finds them there too)."""
    places = [provider_folder]
    if getattr(sys, "_MEIPASS", None):
        places.append(Path(sys._MEIPASS))
    places += [Path(sys.executable).parent, Path(sys.base_prefix)]
    places.append(_system32())
    places += [Path(folder) for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    return places


def _system32() -> Path:
    return Path(os.environ.get("SYSTEMROOT", r"C:\Windows")) / "System32"


def missing(names: Iterable[str], places: Iterable[Path]) -> tuple[str, ...]:
    """The `names` no folder of `places` holds (Windows' file names ignore case)."""
    present: set[str] = set()
    for place in places:
        try:
            present |= {entry.name.lower() for entry in place.iterdir()}
        except OSError:
            continue
    return tuple(name for name in names if name.lower() not in present)


def missing_runtime_line(provider_folder: Path, machine: str | None = None,
                         needs: str = "the NPU libraries need") -> str | None:
    """One line for a missing runtime, naming what to install; None when it is there or not Windows'."""
    if not WINDOWS:
        return None
    arch = architecture(machine)
    lacking = missing(needed(machine), search_places(provider_folder))
    if not arch or not lacking:
        return None
    return (f"the Microsoft Visual C++ runtime ({arch}) {needs} is missing ({', '.join(lacking)}): "
            f"install it from {REDIST_URL.format(arch=arch)}, or reinstall riffstudio")


def app_local_copies(machine: str | None = None) -> list[Path]:
    """The runtime DLLs for an app folder, from this (build) machine: the Visual Studio redistributable's
    folder when a developer prompt names it (`VCToolsRedistDir`: Microsoft's own source for app-local
    copies), else System32's, where the redistributable installed them. Those it has; the build says if any
    are not."""
    arch = architecture(machine)
    if arch is None:
        return []
    redist = os.environ.get("VCTOOLSREDISTDIR")  # Windows' variables ignore case: VCToolsRedistDir
    folders = sorted(Path(redist).glob(f"{arch}/Microsoft.VC14*.CRT"), reverse=True) if redist else []
    folders.append(_system32())
    found: dict[str, Path] = {}
    for folder in folders:
        try:
            entries = {entry.name.lower(): entry for entry in folder.iterdir()}
        except OSError:
            continue
        for name in NEEDED[arch]:
            if name not in found and name in entries:
                found[name] = entries[name]
    return [found[name] for name in NEEDED[arch] if name in found]
