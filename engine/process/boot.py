"""When this machine last started: a job left running by an engine from before then was ended by a shutdown,
a restart or a logoff, not by the job, and must not count as a crash (two crashes retire a job).

Each system's own clock of time since boot, counting sleep and hibernation (a job running before a laptop
slept and crashing after it woke is still a crash): Linux's btime in /proc/stat, Windows' GetTickCount64,
macOS' kern.boottime. None where it cannot be told: then every stop counts, as before.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def boot_time() -> float | None:
    """Seconds since the epoch at which this machine started, or None if unknown."""
    try:
        if sys.platform.startswith("linux"):
            for line in Path("/proc/stat").read_text().splitlines():
                if line.startswith("btime "):
                    return float(line.split()[1])
            return None
        if sys.platform == "win32":
            import ctypes

            kernel32 = ctypes.WinDLL("kernel32")
            kernel32.GetTickCount64.restype = ctypes.c_ulonglong
            return time.time() - kernel32.GetTickCount64() / 1000.0
        if sys.platform == "darwin":
            return _macos_boot_time()
    except (OSError, ValueError, AttributeError):
        return None
    return None


def _macos_boot_time() -> float | None:
    import ctypes
    import ctypes.util

    class Timeval(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_int32)]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    value, size = Timeval(), ctypes.c_size_t(ctypes.sizeof(Timeval))
    if libc.sysctlbyname(b"kern.boottime", ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
        return None
    return value.tv_sec + value.tv_usec / 1e6
