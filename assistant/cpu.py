"""What this CPU can do, read once from /proc/cpuinfo (empty on systems without it: then nothing is assumed)."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags")), "")
    return frozenset(flags.split())


def has_native_bf16() -> bool:
    """bf16 matrix instructions torch may use: without them bf16 on a CPU is emulated and slower than fp32. Capping
    torch's kernels at AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) takes them away too."""
    capped = (os.environ.get("ATEN_CPU_CAPABILITY", "").lower() in {"default", "avx2"}
              or os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith(("SSE", "AVX2")))
    return not capped and bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask: a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
