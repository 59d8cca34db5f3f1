"""Sampling PDE-NHF: K-step speedups, surrogate vs PIC, fused kernel vs torch vs autograd.

`pytest benchmarks/test_sample.py --benchmark-only`. A seeded random Deep Set of the
paper's size (H = 256, 132,354 parameters with a) stands in for a trained model: the cost
of sampling does not depend on the weights' values. Figures land in extra_info (and are
printed); ratios are taken within the run.

(a) the paper's test-set size, 6384 examples x 256 particles, sampled to t = T with
    K = 25, 10, 5, 2, 1 leapfrog steps (dt = T / K). Merged half kicks make K steps cost
    K + 1 gradients, so the ideal K = 5 vs K = 25 ratio is 26 / 6 = 4.33x (the paper's
    unmerged scheme, 2K gradients, would give 50 / 10 = 5x).
(b) PIC (``fastvp.simulate``, paper preset) on the same 6384 examples to the state at T.
(c) batch 128, K = 25: the fused Triton kernel (CUDA only), the closed-form torch path
    (``integrate``), and the authors' approach (autograd of autograd-free V, two gradients
    per step, float64), in float32 and float64.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest
import torch

import fastvp
from fastvp.surrogate.flow import integrate, leapfrog_blocked, leapfrog_unmerged
from fastvp.surrogate.potential import DeepSet, grad_autograd

from .conftest import machine, sync

TEST_EXAMPLES = int(os.environ.get("FASTVP_BENCH_EXAMPLES", 6384))
SMALL_BATCH = 128
K_VALUES = [25, 10, 5, 2, 1]
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
KERNELS = "triton" if CUDA else "torch"

_seconds: dict[tuple, float] = {}  # figures shared between benchmarks of one run


def _net(dtype: torch.dtype, device: str = DEVICE) -> DeepSet:
    torch.manual_seed(0)
    return DeepSet(256).to(device=device, dtype=dtype)


def _batch(n: int, dtype: torch.dtype, device: str = DEVICE):
    batch = fastvp.initial_conditions(n, seed=0, device=device, dtype=dtype)
    return batch.q, batch.p


def _final_time() -> float:
    cfg = fastvp.PICConfig()
    return cfg.dt * cfg.steps


def _record(benchmark, key, **extra) -> float:
    seconds = benchmark.stats.stats.median
    _seconds[key] = seconds
    benchmark.extra_info.update(machine=machine(), seconds=seconds,
                                load_average=os.getloadavg()[0], **extra)
    return seconds


def _sampler(net, q, p, steps, kernels=KERNELS, compile=None):
    a2, T = 1.0, _final_time()

    def run():
        with torch.no_grad():
            if compile:
                out = leapfrog_blocked(q, p, net.weights(), a2, T / steps, steps, compile=True)
            else:
                out = integrate(net, a2, q, p, T / steps, steps, kernels=kernels)
        sync(q.device)
        return out

    return run


# (a) K-step speedups at the test-set size ----------------------------------------------

@pytest.mark.parametrize("steps", K_VALUES)
def test_k_step_speedup_test_set(benchmark, steps):
    dtype = torch.float32
    net = _net(dtype)
    q, p = _batch(TEST_EXAMPLES, dtype)
    _sampler(net, q[:SMALL_BATCH], p[:SMALL_BATCH], 1)()  # warm-up (kernel compile, caches)
    benchmark.pedantic(_sampler(net, q, p, steps), rounds=1 if DEVICE == "cpu" else 5,
                       iterations=1)
    seconds = _record(benchmark, ("k", steps), examples=TEST_EXAMPLES, steps=steps,
                      gradients=steps + 1, dtype="float32", path=KERNELS)
    line = f"\nK={steps}: {seconds:.2f} s for {TEST_EXAMPLES} examples ({steps + 1} gradients)"
    if ("k", 25) in _seconds and steps != 25:
        ratio = _seconds[("k", 25)] / seconds
        benchmark.extra_info.update(speedup_vs_k25=ratio, ideal_merged=26 / (steps + 1),
                                    ideal_unmerged=25 / steps)
        line += f"; vs K=25 {ratio:.2f}x (ideal {26 / (steps + 1):.2f}x merged)"
    print(line)


def test_k5_vs_k25_interleaved_batch128(benchmark):
    """K = 5 vs K = 25 on one batch of 128, runs alternated so that a drifting machine load
    hits both alike (the test-set figures above are single runs taken minutes apart)."""
    dtype = torch.float32
    net = _net(dtype)
    q, p = _batch(SMALL_BATCH, dtype)
    runs = {steps: _sampler(net, q, p, steps) for steps in (25, 5)}
    times = {25: [], 5: []}
    runs[5]()
    for _ in range(3):
        for steps, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[steps].append(time.perf_counter() - t0)
    benchmark.pedantic(runs[5], rounds=1, iterations=1)
    k25, k5 = statistics.median(times[25]), statistics.median(times[5])
    _record(benchmark, ("k5-interleaved",), examples=SMALL_BATCH, k25_seconds=k25,
            k5_seconds=k5, speedup=k25 / k5, ideal_merged=26 / 6, ideal_unmerged=5.0)
    print(f"\nbatch 128 interleaved: K=25 {k25 * 1e3:.0f} ms, K=5 {k5 * 1e3:.0f} ms -> "
          f"{k25 / k5:.2f}x (ideal 26/6 = 4.33x)")


# (b) surrogate vs PIC ------------------------------------------------------------------

def test_pic_same_test_set(benchmark):
    q, p = _batch(TEST_EXAMPLES, torch.float32)

    def run():
        traj = fastvp.simulate((q, p), config=fastvp.PICConfig(), kernels=KERNELS)
        sync(q.device)
        return traj

    run()
    benchmark.pedantic(run, rounds=3, iterations=1)
    seconds = _record(benchmark, ("pic",), examples=TEST_EXAMPLES, dtype="float32")
    line = f"\nPIC to T: {seconds:.2f} s for {TEST_EXAMPLES} examples"
    for steps in (25, 5):
        if ("k", steps) in _seconds:
            ratio = _seconds[("k", steps)] / seconds
            benchmark.extra_info[f"surrogate_k{steps}_over_pic"] = ratio
            line += f"; surrogate K={steps} takes {ratio:.1f}x PIC's time"
    print(line)


# (c) batch 128, K = 25: kernel vs closed-form torch vs double autograd ------------------

DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["float32", "float64"]


def test_autograd_reference_batch128(benchmark):
    """The authors' approach: float64, autograd gradient, two per step (2K = 50)."""
    net = _net(torch.float64, "cpu")
    q, p = _batch(SMALL_BATCH, torch.float64, "cpu")

    def run():
        return leapfrog_unmerged(q, p, lambda x: grad_autograd(net, x), 1.0,
                                 _final_time() / 25, 25)

    benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = _record(benchmark, ("autograd",), examples=SMALL_BATCH, steps=25, gradients=50)
    print(f"\ndouble-autograd float64 reference, batch 128, K=25: {seconds:.2f} s")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_closed_form_torch_batch128(benchmark, dtype):
    net = _net(dtype, "cpu")
    q, p = _batch(SMALL_BATCH, dtype, "cpu")
    run = _sampler(net, q, p, 25, kernels="torch")
    run()
    benchmark.pedantic(run, rounds=3, iterations=1)
    _report_vs_reference(benchmark, ("torch", dtype), "closed-form torch CPU", dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_torch_compile_batch128(benchmark, dtype):
    net = _net(dtype, "cpu")
    q, p = _batch(SMALL_BATCH, dtype, "cpu")
    run = _sampler(net, q, p, 25, compile=True)
    t0 = time.perf_counter()
    run()
    benchmark.extra_info["first_call_seconds"] = time.perf_counter() - t0
    benchmark.pedantic(run, rounds=3, iterations=1)
    _report_vs_reference(benchmark, ("compile", dtype), "torch.compile CPU (opt-in)", dtype)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("path", ["triton", "torch"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cuda_batch128(benchmark, dtype, path):
    net = _net(dtype, "cuda")
    q, p = _batch(SMALL_BATCH, dtype, "cuda")
    run = _sampler(net, q, p, 25, kernels=path)
    run()
    benchmark.pedantic(run, rounds=20, iterations=1)
    _report_vs_reference(benchmark, (path + "-cuda", dtype), f"{path} CUDA", dtype)


def _report_vs_reference(benchmark, key, label, dtype):
    seconds = _record(benchmark, key, examples=SMALL_BATCH, steps=25, gradients=26,
                      dtype=str(dtype).removeprefix("torch."))
    line = f"\n{label} {dtype}, batch 128, K=25: {seconds * 1e3:.1f} ms"
    if ("autograd",) in _seconds:
        ratio = _seconds[("autograd",)] / seconds
        benchmark.extra_info["speedup_vs_autograd_float64"] = ratio
        line += f"; {ratio:.1f}x faster than the double-autograd float64 reference"
    print(line)
