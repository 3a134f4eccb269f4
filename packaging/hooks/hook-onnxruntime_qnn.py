"""PyInstaller hook for onnxruntime-qnn (pyinstaller-hooks-contrib has none).

`onnxruntime_qnn.get_library_path()` and `get_qnn_htp_path()` resolve from the package's `__file__`,
so its libraries must land in a folder named `onnxruntime_qnn`, beside its `__init__`: collect_dynamic_libs
keeps the package's relative folder. The `.cat` files are the Windows driver catalogues that sign the
HTP skeleton libraries; the NPU driver refuses unsigned ones, so they travel as data files beside them.

Dropped: the QNN pieces riffstudio never loads (engine/sessions.py opens only the HTP back end):
the GPU back end, Genie (Qualcomm's LLM runtime) and the saver (records QNN calls for debugging): 21 MB
of the Windows ARM64 wheel's 170 MB. Measured: the app folder built without them passes its self-test
with a qnn bundle, one loop on the HTP simulator included (Linux x86_64; no Windows machine at hand).
Checked against the onnxruntime-qnn 2.7.0 win_arm64 wheel: its DLLs, the three Skel libraries and the
two .cat files are collected into onnxruntime_qnn/, Genie.dll, QnnGpu.dll and QnnSaver.dll are not.
"""

from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs, collect_submodules

UNUSED = ("genie", "qnngpu", "qnnsaver")


def _used(entry: tuple[str, str]) -> bool:
    name = entry[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
    return not any(part in name for part in UNUSED)


# "*.so", not only PyInstaller's default "lib*.so": the Windows wheels carry the Hexagon DSP skeletons
# (libQnnHtpV68/73/81Skel.so) that the HTP stub DLLs load onto the NPU, whatever their names become.
PATTERNS = ["*.dll", "*.dylib", "*.so"]
binaries = [entry for entry in collect_dynamic_libs("onnxruntime_qnn", search_patterns=PATTERNS) if _used(entry)]
datas = collect_data_files("onnxruntime_qnn", includes=["**/*.cat"])
# build_and_package_info, and platform_loader where a wheel has it (imported under try/except); not the
# QNN libraries, which a Linux host's ".so" suffix would pass off as extension modules.
hiddenimports = collect_submodules("onnxruntime_qnn", filter=lambda name: not name.rsplit(".", 1)[-1].startswith("lib"))
