"""Shared helpers of the benchmark suites: timing with device sync, and the machine's name."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU"


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, repeat: int = 3, device="cpu") -> float:
    """Median wall time of fn() over `repeat` calls (after one warm-up call)."""
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternate(first, second, rounds: int = 1) -> tuple[float, float]:
    """Median wall times of first() and second(), called in alternation `rounds` times
    (after one warm-up call of each): a drifting machine load hits both alike."""
    first()
    second()
    times = ([], [])
    for _ in range(rounds):
        for fn, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def record(benchmark, table: str, **figures) -> None:
    """Put a test's figures in extra_info, with the table of RESULTS.md they belong to and
    the machine; ``benchmarks/results.py`` reads them back from the pytest-benchmark JSON."""
    benchmark.extra_info.update(table=table, machine=machine(), threads=torch.get_num_threads(),
                                load_average=os.getloadavg()[0], **figures)
