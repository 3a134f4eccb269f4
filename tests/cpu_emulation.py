"""Run Python on another kind of x86 CPU: an AVX2-only one (AMD Zen 2), emulated by qemu-user.

ONNX Runtime picks its int8 kernels from CPUID at start-up, so the same model computes different numbers
on an AVX2-only CPU (VPMADDUBSW: u8 x s8 pairs summed in saturating 16 bits) and on one with AVX-512
VNNI (32-bit sums). This project's machines are of both kinds; qemu's user-mode emulator answers
CPUID as the CPU model it is given, so a test can check the AVX2-only behaviour on any x86_64 host.
It is slow (about 25x for int8 kernels): keep what runs under it small. `.ci/run` installs Debian's
qemu-user; without it the emulated cases are skipped, saying how to get them.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import pytest

QEMU = shutil.which("qemu-x86_64") if platform.machine() in ("x86_64", "AMD64") else None
# AMD EPYC Zen 2: AVX2 and FMA, no AVX-512, no VNNI (as AVX2-only machines of this project are).
AVX2_ONLY_CPU = "EPYC-Rome"
CPU_KINDS = ("native", "avx2-only")


def host_is_avx2_only() -> bool:
    """This machine is itself an AVX2-only x86 CPU (no VNNI), so its native runs are the AVX2-only case."""
    from engine.cpu_features import cpu_info

    info = cpu_info()
    return info.machine == "x86_64" and "avx2" in info.features and not info.has_vnni


def cpu_kind_params() -> list:
    """pytest params for `CPU_KINDS`. The emulated one is skipped, saying why, when qemu is missing (with the
    fix) and on an AVX2-only host, where the native case already is that CPU (emulating it again would
    only cost minutes)."""
    if host_is_avx2_only():
        reason = "this host is AVX2-only without VNNI: the native case runs on that kind of CPU"
    elif QEMU is None:
        reason = "emulating an AVX2-only CPU needs qemu-user (apt-get install qemu-user)"
    else:
        return ["native", "avx2-only"]
    return ["native", pytest.param("avx2-only", marks=pytest.mark.skip(reason=reason))]


def python_on(cpu: str) -> list[str]:
    """The command that starts this interpreter on `cpu` ("native" or "avx2-only")."""
    if cpu == "native" or (cpu == "avx2-only" and host_is_avx2_only()):
        return [sys.executable]
    if QEMU is None:
        raise RuntimeError("qemu-user is not installed")
    return [QEMU, "-cpu", AVX2_ONLY_CPU, sys.executable]


def run_python_on(cpu: str, *args: str, timeout: float = 300, cwd: str | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` on `cpu`; qemu's notes about CPUID bits it cannot emulate are dropped from stderr."""
    result = subprocess.run([*python_on(cpu), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                            env={**os.environ, **(env or {})})
    stderr = "".join(line for line in result.stderr.splitlines(keepends=True)
                     if not line.startswith("qemu-x86_64: warning: TCG doesn't support"))
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, stderr)
