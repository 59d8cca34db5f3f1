"""Threads: one PDE-NHF training step at 1 and 2 threads, alone and beside a CPU-bound job.

`pytest benchmarks/test_threads.py --benchmark-only`. The step is the trainer's: batch
128, K = 25, N = 256, H = 256, float32, ``nll(...).mean().backward()`` with the "fast"
method. Two phases, each alternating 1-thread and 2-thread steps (a drifting load hits
both alike): "alone" (the machine as it is, whatever else runs on it; its load average
is recorded) and "loaded" (the same beside a second process of our own,
``python -c "while True: pass"``). In the loaded phase the step also runs at
``backend.default_threads()``, the default of every command, in the same alternation;
the target is that this default stays within 1.5x of the 1-thread step under the same
load. Torch's intra-op
threads wait for each other at the end of every op, so a thread that loses its core to
another process stalls the others.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import torch

import fastvp
from fastvp.backend import default_threads
from fastvp.surrogate.train import nll

from .conftest import record

BATCH, STEPS = 128, 25
ROUNDS = int(os.environ.get("FASTVP_BENCH_THREADS_ROUNDS", 2))


def _step():
    torch.manual_seed(0)
    model = fastvp.Surrogate(steps=STEPS).to(dtype=torch.float32)
    batch = fastvp.initial_conditions(BATCH, seed=0, dtype=torch.float32)
    final = fastvp.simulate(batch)
    qT, pT = final.q[-1], final.p[-1]

    def step() -> None:
        model.zero_grad(set_to_none=True)
        nll(model, qT, pT, batch.mu_q, batch.sigma_q, batch.mu_p, batch.sigma_p, 1.0,
            "fast").mean().backward()

    return step


def _timed(step, threads: int) -> float:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        step()
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def _round(step, threads: dict[str, int], times: dict[str, list[float]]) -> None:
    """One step at each thread count, in turn; the wall times appended to `times`."""
    for label, n in threads.items():
        times.setdefault(label, []).append(_timed(step, n))


def _phase(step, threads: dict[str, int], benchmark=None) -> dict[str, float]:
    """Median seconds of a step at each thread count, called in alternation ROUNDS times;
    with `benchmark`, the rounds run under it."""
    times: dict[str, list[float]] = {}
    if benchmark is None:
        for _ in range(ROUNDS):
            _round(step, threads, times)
    else:
        benchmark.pedantic(lambda: _round(step, threads, times), rounds=ROUNDS, iterations=1,
                           warmup_rounds=0)
    return {label: statistics.median(t) for label, t in times.items()}


def test_default_threads_under_load(benchmark):
    step = _step()
    _timed(step, 1)  # warm-up (allocator); a 2-thread step can take minutes on a busy machine
    load_alone = os.getloadavg()[0]
    alone = _phase(step, {"one": 1, "two": 2})
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(2.0)
        default = default_threads()
        loaded = _phase(step, {"one": 1, "two": 2, "default": default}, benchmark)
        load_loaded = os.getloadavg()[0]
    finally:
        busy.kill()
        busy.wait()
    ratio = loaded["default"] / loaded["one"]
    record(benchmark, "threads", cores=os.cpu_count(), load_alone=load_alone,
           load_loaded=load_loaded, one_thread_alone=alone["one"], two_threads_alone=alone["two"],
           one_thread_loaded=loaded["one"], two_threads_loaded=loaded["two"],
           default_threads=default, default_loaded=loaded["default"],
           default_over_one_thread_loaded=ratio)
    print(f"\nalone (load {load_alone:.2f}): 1 thread {alone['one']:.2f} s, 2 threads "
          f"{alone['two']:.2f} s; beside a busy process (load {load_loaded:.2f}): 1 thread "
          f"{loaded['one']:.2f} s, 2 threads {loaded['two']:.2f} s, default ({default}) "
          f"{loaded['default']:.2f} s = {ratio:.2f}x the 1-thread step")
