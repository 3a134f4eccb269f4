"""`python packaging/build.py`: build the app folder dist/riffstudio/ and prove it works.

1. This interpreter and its packages can make a working app for this platform (PyInstaller builds for
   the interpreter's own architecture; Windows ARM64 needs a native ARM64 Python and the first releases
   with ARM64 wheels). Each unmet fact is one line, before minutes of building.
2. PyInstaller runs packaging/riffstudio.spec (build/pyinstaller/ holds its work files).
3. The folder holds no torch, diffusers or transformers (neither as files nor inside the executables'
   module archive): the build fails if it does.
4. Its size is reported, then the built `riffstudio-cli --self-test` runs (offscreen where there is no
   display); the build's exit code is the self-test's.

QNN: the app folder carries onnxruntime-qnn on Windows (the Snapdragon NPU); Linux and macOS builds are
the CPU path. `--qnn` includes it anyway (Linux x86_64 has a wheel: the HTP simulator), which is how CI
proves the hook and the `onnxruntime_qnn` folder layout without a Windows machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "packaging" / "riffstudio.spec"
FORBIDDEN = ("torch", "diffusers", "transformers")
# The first releases with Windows ARM64 wheels (or an ARM64 libsndfile / PortAudio inside them).
WIN_ARM64_FLOORS = {"PySide6-Essentials": "6.9", "numpy": "2.3", "scipy": "1.16.2", "soundfile": "0.14",
                    "sounddevice": "0.5.4", "onnxruntime-qnn": "0"}


class BuildError(Exception):
    """One line: what stops the build, and what to do."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python packaging/build.py", description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="where the app folder goes (default dist/)")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "pyinstaller", help="PyInstaller's work folder")
    parser.add_argument("--qnn", action=argparse.BooleanOptionalAction, default=None,
                        help="include onnxruntime-qnn (default: on Windows only)")
    parser.add_argument("--self-test-model", type=Path, metavar="BUNDLE",
                        help="let the built app's self-test generate one short loop with this bundle")
    parser.add_argument("--no-self-test", action="store_true", help="build only")
    parser.add_argument("--check-only", type=Path, metavar="FOLDER",
                        help="build nothing: check an app folder built earlier (no torch & co., size, self-test)")
    args = parser.parse_args(argv)
    qnn = sys.platform == "win32" if args.qnn is None else args.qnn
    try:
        if args.check_only:
            check_no_forbidden(args.check_only)
            print(f"build: {size_report(args.check_only)}", flush=True)
            return 0 if args.no_self_test else run_self_test(args.check_only, args.self_test_model)
        check_platform(qnn)
        start = time.monotonic()
        folder = run_pyinstaller(args.dist, args.work, qnn)
        print(f"build: {folder} built in {time.monotonic() - start:.0f} s", flush=True)
        check_no_forbidden(folder)
        check_vc_runtime(folder)
        print(f"build: {size_report(folder)}", flush=True)
        return 0 if args.no_self_test else run_self_test(folder, args.self_test_model)
    except BuildError as error:
        print(f"build: {error}", file=sys.stderr)
        return 1


def check_platform(qnn: bool) -> None:
    """The platform facts a working app folder depends on, checked against this interpreter."""
    if sys.version_info < (3, 11):  # noqa: UP036 (this script runs before any install checks the Python)
        raise BuildError(f"Python {platform.python_version()} is too old: use Python 3.11 or newer")
    if sys.platform != "win32":
        return
    machine, target = platform.machine().upper(), sysconfig.get_platform()
    if machine == "ARM64" and target != "win-arm64":
        raise BuildError(f"this is a {target} Python emulated on Windows ARM64: the app would be x64; build "
                         "with python.org's ARM64 Python 3.11+ (and an x64 app with an x64 Python)")
    if target == "win-arm64" and sys.version_info < (3, 12):
        raise BuildError("Windows ARM64 needs Python 3.12+ (PyYAML, under tokenizers, has no ARM64 wheel for "
                         "3.11): install python.org's ARM64 Python 3.12 or newer")
    if target == "win-arm64":
        for name, floor in WIN_ARM64_FLOORS.items():
            if name == "onnxruntime-qnn" and not qnn:
                continue
            check_installed(name, floor, "Windows ARM64")


def check_installed(name: str, floor: str, where: str) -> None:
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        installed = version(name)
    except PackageNotFoundError:
        raise BuildError(f"{name} is not installed: pip install -e . (it needs >= {floor} on {where})") from None
    if Version(installed) < Version(floor):
        raise BuildError(f"{name} {installed} has no working {where} build: pip install '{name}>={floor}'")


def run_pyinstaller(dist: Path, work: Path, qnn: bool) -> Path:
    if sys.platform == "win32":  # the icon and version resource are Windows executables' (and Inno Setup's)
        from icon import write_icon

        write_icon(REPO / "build" / "riffstudio.ico")
        write_version_file(REPO / "build" / "version_info.txt")
    env = {**os.environ, "RIFFSTUDIO_BUILD_QNN": "1" if qnn else "0"}
    command = [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work)]
    done = subprocess.run(command, cwd=REPO, env=env)
    if done.returncode != 0:
        raise BuildError(f"PyInstaller failed (exit code {done.returncode}); its messages are above")
    return dist / "riffstudio"


def check_no_forbidden(folder: Path) -> None:
    """torch & co. as a folder, a library or a module inside the executables' archive fail the build."""
    found = {path.relative_to(folder).as_posix() for path in folder.rglob("*")
             if path.name.split(".")[0].split("-")[0].lower() in FORBIDDEN}
    for program in ("riffstudio", "riffstudio-cli"):
        found |= {f"{program}: {name}" for name in archived_modules(executable(folder, program))
                  if name.split(".")[0] in FORBIDDEN}
    if found:
        raise BuildError(f"the app folder holds {', '.join(sorted(found)[:5])}: it must never ship torch, "
                         "diffusers or transformers; find what imports them (build/pyinstaller/*/xref-*.html)")


def check_vc_runtime(folder: Path) -> None:
    """On Windows the app folder carries the C++ runtime its NPU libraries need (riffstudio.spec); a build
    machine without it makes an app that needs the runtime installed: a note, as the self-test would say."""
    if sys.platform != "win32":
        return
    sys.path.insert(0, str(REPO))
    from engine.vc_runtime import REDIST_URL, architecture, missing, needed

    lacking = missing(needed(), [folder / "_internal"])
    if lacking:
        print(f"build: note: the app folder carries no {', '.join(lacking)} (not on this machine): users need the "
              f"Visual C++ runtime installed ({REDIST_URL.format(arch=architecture())}); install it here and "
              "build again to carry it", flush=True)


def archived_modules(program: Path) -> list[str]:
    """The Python modules frozen inside an executable (its PYZ archive)."""
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(program))
    pyz = next((name for name in archive.toc if name.endswith(".pyz")), None)
    return list(archive.open_embedded_archive(pyz).toc) if pyz else []


def executable(folder: Path, name: str) -> Path:
    return folder / (name + (".exe" if sys.platform == "win32" else ""))


def size_report(folder: Path) -> str:
    total = folder_mb(folder)
    parts = sorted(((folder_mb(p), p.name) for p in (folder / "_internal").iterdir() if p.is_dir()), reverse=True)
    biggest = ", ".join(f"{name} {mb:.0f}" for mb, name in parts[:5])
    return f"app folder size {total:.0f} MB unpacked (largest, MB: {biggest})"


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def run_self_test(folder: Path, model: Path | None) -> int:
    env = dict(os.environ)
    if sys.platform.startswith("linux") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    command = [str(executable(folder, "riffstudio-cli")), "--self-test"]
    if model is not None:
        command += ["--model", str(model)]
    print(f"build: running {' '.join(command)}", flush=True)
    code = subprocess.run(command, env=env).returncode
    print("build: the app folder's self-test passed" if code == 0 else
          f"build: the app folder's self-test FAILED (exit code {code})", flush=True)
    return code


def write_version_file(path: Path) -> None:
    """The Windows version resource (file properties: product, version, company), from engine.version."""
    sys.path.insert(0, str(REPO))
    from engine.version import __version__

    numbers = tuple(int(n) for n in (__version__.split(".") + ["0"] * 4)[:4])
    strings = {"CompanyName": "Riffstudio", "FileDescription": "Riffstudio: local AI loop generator",
               "FileVersion": __version__, "ProductName": "Riffstudio", "ProductVersion": __version__,
               "OriginalFilename": "riffstudio.exe", "LegalCopyright": "MIT licence"}
    entries = ",\n".join(f"          StringStruct({k!r}, {v!r})" for k, v in strings.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={numbers}, prodvers={numbers}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
{entries}])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
""", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
