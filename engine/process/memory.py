"""The memory ceiling: whether a job can fit, estimated before it runs, so a wide loop on a small laptop
is refused with a clear message instead of swapping the machine to death.

The estimate is the engine's resident memory now, plus the models a job must load, plus activations that
grow with the image width. The activation rate was taken from the full-size int8 bundle at 512 px
(peak 2.5 GB with 1.55 GB of models: about 1.9 MB per pixel of width) and is scaled down for smaller
VAE decoders (which set the peak), so tiny test bundles are not refused for memory they never use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import ClassVar

from engine.errors import InvalidInputError

ACTIVATION_BYTES_PER_PX = 1_900_000
FULL_VAE_DECODER_BYTES = 198_000_000  # SD 1.5's VAE decoder, fp32
MODELS = ("text_encoder", "unet", "vae_decoder")


class MemoryCeilingError(InvalidInputError):
    """A job that would not fit under the engine's memory ceiling."""

    code: ClassVar[str] = "memory"


def rss_bytes() -> int:
    """This process's resident memory now (0 where we cannot tell)."""
    if sys.platform.startswith("linux"):
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0
    if sys.platform == "win32":
        return _windows_working_set()
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return 0


def model_bytes(bundle, *, with_encoder: bool = False) -> int:
    names = (*MODELS, "vae_encoder") if with_encoder else MODELS
    return sum(bundle.component_path(name).stat().st_size for name in names)


def estimate_job_bytes(bundle, width: int, *, loaded_bytes: int, with_encoder: bool = False) -> int:
    """Peak bytes of a job of `width` px on `bundle`, given `loaded_bytes` of models already resident."""
    vae = bundle.component_path("vae_decoder").stat().st_size
    scale = min(1.0, max(0.02, vae / FULL_VAE_DECODER_BYTES))
    needed_models = max(0, model_bytes(bundle, with_encoder=with_encoder) - loaded_bytes)
    return rss_bytes() + needed_models + int(ACTIVATION_BYTES_PER_PX * scale * width)


def check_fits(limit_mb: int, bundle, width: int, *, loaded_bytes: int, with_encoder: bool = False) -> None:
    if limit_mb <= 0:
        return
    need = estimate_job_bytes(bundle, width, loaded_bytes=loaded_bytes, with_encoder=with_encoder)
    if need > limit_mb * 2**20:
        raise MemoryCeilingError(
            f"this {width} px loop needs about {need / 2**20:.0f} MB and the engine's memory ceiling is "
            f"{limit_mb} MB: make it narrower, use an int8 bundle, or raise the ceiling "
            f"(riffstudio engine serve --memory-limit MB)")


def _windows_working_set() -> int:
    """This process's working set (psapi's GetProcessMemoryInfo): Windows has no `resource` module, and a
    ceiling that reads 0 would ignore the models already loaded."""
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):  # PROCESS_MEMORY_COUNTERS
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                    *((name, ctypes.c_size_t) for name in (
                        "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage", "QuotaPagedPoolUsage",
                        "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage"))]

    try:
        kernel32, psapi = ctypes.WinDLL("kernel32"), ctypes.WinDLL("psapi")
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE
        psapi.GetProcessMemoryInfo.argtypes = [wintypes.HANDLE, ctypes.POINTER(Counters), wintypes.DWORD]
        counters = Counters(cb=ctypes.sizeof(Counters))
        if psapi.GetProcessMemoryInfo(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
            return int(counters.WorkingSetSize)
    except (OSError, AttributeError):
        pass
    return 0
