"""One PDE-NHF training step (batch 128, K = 25, N = 256, H = 256): fast vs double autograd.

The reference differentiates autograd's dV/dq through every leapfrog step (the authors'
way, ``Surrogate.pullback(method="autograd")``); "fast" uses the hand-derived backward of
``potential.closed_form_grad``; "compiled" the same fused by torch.compile. All three run in the
same test on the same batch and model, and the ratios go to extra_info.
`pytest benchmarks/test_train.py --benchmark-only` (the float64 reference takes ~40 s).
Wall and process CPU time are both recorded: on a shared machine the CPU-time ratio is
the stable one (run with OMP_NUM_THREADS=1 to make it a pure single-core comparison).
"""

from __future__ import annotations

import time

import pytest
import torch

import fastvp
from fastvp.surrogate.train import nll

from .conftest import median_time, record

BATCH, STEPS = 128, 25


def _setup(dtype):
    torch.manual_seed(0)
    model = fastvp.Surrogate(steps=STEPS).to(dtype=dtype)
    batch = fastvp.initial_conditions(BATCH, seed=0, dtype=dtype)
    final = fastvp.simulate(batch)
    qT, pT = final.q[-1], final.p[-1]

    def step(method):
        model.zero_grad(set_to_none=True)
        loss = nll(model, qT, pT, batch.mu_q, batch.sigma_q, batch.mu_p, batch.sigma_p,
                   1.0, method).mean()
        loss.backward()
        return loss

    return step


def _cpu_seconds(fn) -> float:
    """Process CPU time of fn(): unlike wall time, barely moved by other jobs on the machine."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_training_step(benchmark, dtype):
    step = _setup(dtype)
    step("fast")  # warm-up: allocator, thread pool
    t0 = time.perf_counter()
    reference_cpu = _cpu_seconds(lambda: step("autograd"))  # one call: ~40 s in float64
    reference = time.perf_counter() - t0
    t0 = time.perf_counter()
    step("compiled")  # compiles on first use
    compile_seconds = time.perf_counter() - t0
    compiled = median_time(lambda: step("compiled"), repeat=3)
    compiled_cpu = _cpu_seconds(lambda: step("compiled"))
    fast_cpu = _cpu_seconds(lambda: step("fast"))
    benchmark.pedantic(lambda: step("fast"), rounds=3, iterations=1, warmup_rounds=0)
    fast = benchmark.stats.stats.median
    record(
        benchmark, "training-step", dtype=str(dtype).removeprefix("torch."), batch=BATCH, steps=STEPS,
        double_autograd_seconds=reference, fast_seconds=fast, compiled_seconds=compiled,
        compile_seconds=compile_seconds, speedup_fast=reference / fast,
        speedup_compiled=reference / compiled, double_autograd_cpu_seconds=reference_cpu,
        fast_cpu_seconds=fast_cpu, compiled_cpu_seconds=compiled_cpu,
        cpu_speedup_fast=reference_cpu / fast_cpu,
        cpu_speedup_compiled=reference_cpu / compiled_cpu,
    )
    print(f"\n{dtype}, {torch.get_num_threads()} threads, wall: double autograd {reference:.2f} s, "
          f"fast {fast:.2f} s ({reference / fast:.1f}x), compiled {compiled:.2f} s "
          f"({reference / compiled:.1f}x); CPU time: {reference_cpu:.2f} s, {fast_cpu:.2f} s "
          f"({reference_cpu / fast_cpu:.1f}x), {compiled_cpu:.2f} s "
          f"({reference_cpu / compiled_cpu:.1f}x)")
