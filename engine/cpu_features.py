"""What this CPU is and which of the instruction sets that change int8 speed and accuracy it has.

ONNX Runtime's x86 int8 kernels differ by CPU: with AVX-512 VNNI or AVX-VNNI, u8 x s8 products are
summed in 32 bits; with AVX2 alone they go through VPMADDUBSW, which sums pairs in saturating 16 bits,
so the same int8 model computes different (worse) numbers there. Benchmark tables, `model check` and
support reports name the CPU and these features, because results differ by 2x and more between them.

Read from /proc/cpuinfo (Linux), sysctl (macOS) or IsProcessorFeaturePresent (Windows); a feature that
cannot be read is left out rather than guessed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path


def usable_cpus() -> int:
    """How many CPUs this process may run on: its CPU set where the OS keeps one (taskset, a container's
    cpuset, a batch worker given one core), else every CPU. Thread pools are sized to this, not to the
    machine: more threads than allowed CPUs only take turns on them."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# The features that matter here, in the order reports list them.
X86_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FEATURES = ("neon", "dotprod", "i8mm", "bf16")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    machine: str  # x86_64 or arm64 (engine.bundle.manifest.cpu_platform's spelling)
    cores: int
    features: tuple[str, ...]

    @property
    def has_vnni(self) -> bool:
        """int8 dot products summed in 32 bits (no u8 x s8 saturation) on x86."""
        return "avx512_vnni" in self.features or "avx_vnni" in self.features

    def describe(self) -> str:
        """One line for a report: "AMD EPYC, 2 cores, x86_64 (avx2, avx512f, avx512_vnni)"."""
        features = ", ".join(self.features) or "none of " + ", ".join(self.known())
        return f"{self.model}, {self.cores} cores, {self.machine} ({features})"

    def known(self) -> tuple[str, ...]:
        return ARM_FEATURES if self.machine == "arm64" else X86_FEATURES


@cache
def cpu_info() -> CpuInfo:
    import os

    from engine.bundle.manifest import cpu_platform

    machine = cpu_platform()
    wanted = ARM_FEATURES if machine == "arm64" else X86_FEATURES
    if sys.platform.startswith("linux"):
        model, flags = _linux()
    elif sys.platform == "darwin":
        model, flags = _macos()
    elif sys.platform == "win32":
        model, flags = platform.processor() or "unknown CPU", _windows()
    else:
        model, flags = platform.processor() or "unknown CPU", set()
    return CpuInfo(model=model, machine=machine, cores=os.cpu_count() or 1,
                   features=tuple(name for name in wanted if name in flags))


def _linux() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or "unknown CPU", set()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or fields.get("Hardware") or fields.get("CPU part") or "unknown CPU"
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    # ARM64 Linux spells them asimd / asimddp; x86 spells AMX amx_int8 already.
    aliases = {"asimd": "neon", "asimddp": "dotprod"}
    flags |= {aliases[name] for name in flags if name in aliases}
    if "bf16" not in flags and "sve_bf16" in flags:
        flags.add("bf16")
    return model, flags


def _macos() -> tuple[str, set[str]]:
    def sysctl(name: str) -> str:
        try:
            return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    model = sysctl("machdep.cpu.brand_string") or "unknown CPU"
    flags = {"neon"} if platform.machine() == "arm64" else set()
    for name, key in (("dotprod", "hw.optional.arm.FEAT_DotProd"), ("i8mm", "hw.optional.arm.FEAT_I8MM"),
                      ("bf16", "hw.optional.arm.FEAT_BF16"), ("avx2", "hw.optional.avx2_0"),
                      ("avx512f", "hw.optional.avx512f")):
        if sysctl(key) == "1":
            flags.add(name)
    return model, flags


def _windows() -> set[str]:
    import ctypes

    # IsProcessorFeaturePresent constants (winnt.h). VNNI has none: it stays unreported on Windows.
    codes = {"avx2": 40, "avx512f": 41, "neon": 19, "dotprod": 43}
    try:
        present = ctypes.windll.kernel32.IsProcessorFeaturePresent  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return set()
    return {name for name, code in codes.items() if present(code)}
