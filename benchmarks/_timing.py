"""Timing helpers for the benchmarks: interleaved repeats, paired ratios, peak memory, the machine.

Benchmarks on a shared machine are noisy: other processes take cores for seconds at a time. Two
habits keep ratios honest: the models of a pair are timed **alternately** in one process (what
slows one slows the other within the same second), and every ratio is reported both on the
best times (the least disturbed run of each) and as the median of the per-repeat ratios.
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the kernel.

    By default glibc ``mmap``s every block above a few MB and ``munmap``s it on free, so each
    big activation is page-faulted in again on every forward (for ResNet-50 at batch 32 on 2
    CPU cores that is ~30 % of the time). ``mallopt(M_MMAP_MAX, 0)`` and a 1 GiB trim threshold
    have the effect that jemalloc/tcmalloc (the allocators PyTorch's CPU tuning guide
    recommends) have. Returns whether it applied (glibc only).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleave(fns: dict[str, Callable[[], object]], repeats: int, warmup: int,
               device: torch.device, clock: str = "wall") -> dict[str, list[float]]:
    """Seconds per call of each function, alternating between them (order reversed every repeat).

    Each function is called ``warmup`` times first (also alternating). ``clock="cpu"`` counts the
    process's CPU time instead of wall time: with one thread it ignores the time other processes
    hold the core, so it measures the model rather than the neighbours (with more threads it
    would count threads spinning at barriers; the benchmark refuses that combination).
    """
    names = list(fns)
    now = CLOCKS[clock]
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            synchronize(device)
            start = now()
            fns[name]()
            synchronize(device)
            if r >= warmup:
                times[name].append(now() - start)
    return times


@dataclass(frozen=True)
class Ratio:
    """How much faster ``vt`` ran than ``baseline``: seconds per call of each, and the speed-ups."""

    baseline: list[float]
    vt: list[float]

    @property
    def best(self) -> float:
        """Speed-up between the best (least disturbed) call of each model."""
        return min(self.baseline) / min(self.vt)

    @property
    def median(self) -> float:
        """Median over repeats of the speed-up between the two back-to-back calls."""
        return statistics.median(b / v for b, v in zip(self.baseline, self.vt))


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated during one call of ``fn`` above what was allocated before it.

    CUDA: the caching allocator's peak statistic. CPU: the allocation timeline of the profiler.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    allocations = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            allocations.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    live = peak = 0
    for _, size in sorted(allocations):
        live += size
        peak = max(peak, live)
    return peak


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    """One line: CPU (or GPU), cores, threads, torch version, load average."""
    parts = [f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads"]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    if hasattr(os, "getloadavg"):
        parts.append("load average %.1f / %.1f / %.1f" % os.getloadavg())
    return "; ".join(parts)
