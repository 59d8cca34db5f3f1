"""Sampling PDE-NHF: K-step speedups, surrogate vs PIC, fused kernel vs torch vs autograd.

`pytest benchmarks/test_sample.py --benchmark-only`. A seeded random Deep Set of the
paper's size (H = 256, 132,354 parameters with a) stands in for a trained model: the cost
of sampling does not depend on the weights' values. Every ratio is measured inside one
test, both sides timed there in alternation (a drifting machine load hits both alike);
the figures land in extra_info, which ``benchmarks/results.py`` turns into RESULTS.md.

(a) the paper's test-set size, 6384 examples x 256 particles, sampled to t = T with
    K = 10, 5, 2, 1 against K = 25 (dt = T / K). Merged half kicks make K steps cost
    K + 1 gradients, so the ideal K = 5 vs K = 25 ratio is 26 / 6 = 4.33x (the paper's
    unmerged scheme, 2K gradients, would give 50 / 10 = 5x).
(b) PIC (``fastvp.simulate``, paper preset) against the surrogate on the same examples.
(c) batch 128, K = 25: the closed-form torch path (float32, float64), the fused Triton
    kernel (CUDA only) and the authors' approach (autograd of V, two gradients per step,
    float64).
"""

from __future__ import annotations

import os

import pytest
import torch

import fastvp
from fastvp.surrogate.flow import integrate, leapfrog_unmerged
from fastvp.surrogate.potential import DeepSet, grad_autograd

from .conftest import alternate, record, sync

TEST_EXAMPLES = int(os.environ.get("FASTVP_BENCH_EXAMPLES", 6384))
SMALL_BATCH = 128
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
KERNELS = "triton" if CUDA else "torch"
T = fastvp.PICConfig().final_time


def _net(dtype: torch.dtype, device: str = DEVICE) -> DeepSet:
    torch.manual_seed(0)
    return DeepSet(256).to(device=device, dtype=dtype)


def _batch(n: int, dtype: torch.dtype, device: str = DEVICE):
    batch = fastvp.initial_conditions(n, seed=0, device=device, dtype=dtype)
    return batch.q, batch.p


def _sampler(net, q, p, steps, kernels=KERNELS):
    def run():
        with torch.no_grad():
            out = integrate(q, p, net.weights(), 1.0, T / steps, steps, kernels=kernels)
        sync(q.device)
        return out

    return run


# (a) K-step speedups at the test-set size ----------------------------------------------

@pytest.mark.parametrize("steps", [10, 5, 2, 1])
def test_k_step_speedup_test_set(benchmark, steps):
    net = _net(torch.float32)
    q, p = _batch(TEST_EXAMPLES, torch.float32)
    _sampler(net, q[:SMALL_BATCH], p[:SMALL_BATCH], 1)()  # warm-up (kernel compile, caches)
    rounds = 1 if DEVICE == "cpu" else 5
    ref, fast = alternate(_sampler(net, q, p, 25), _sampler(net, q, p, steps), rounds)
    benchmark.pedantic(_sampler(net, q, p, steps), rounds=rounds, iterations=1)
    record(benchmark, "k-step", examples=TEST_EXAMPLES, steps=steps, gradients=steps + 1,
           dtype="float32", path=KERNELS, k25_seconds=ref, seconds=fast, speedup_vs_k25=ref / fast,
           ideal_merged=26 / (steps + 1), ideal_unmerged=25 / steps)


# (b) surrogate vs PIC ------------------------------------------------------------------

@pytest.mark.parametrize("steps", [25, 5])
def test_surrogate_vs_pic_test_set(benchmark, steps):
    net = _net(torch.float32)
    q, p = _batch(TEST_EXAMPLES, torch.float32)

    def pic():
        traj = fastvp.simulate((q, p), config=fastvp.PICConfig(), kernels=KERNELS)
        sync(q.device)
        return traj

    pic()
    _sampler(net, q[:SMALL_BATCH], p[:SMALL_BATCH], 1)()
    rounds = 1 if DEVICE == "cpu" else 5
    pic_s, surrogate_s = alternate(pic, _sampler(net, q, p, steps), rounds)
    benchmark.pedantic(pic, rounds=rounds, iterations=1)
    record(benchmark, "surrogate-vs-pic", examples=TEST_EXAMPLES, steps=steps, dtype="float32",
           pic_seconds=pic_s, surrogate_seconds=surrogate_s,
           surrogate_over_pic=surrogate_s / pic_s)


# (c) batch 128, K = 25: closed-form torch (and the kernel) vs double autograd -----------

def _autograd_reference():
    net = _net(torch.float64, "cpu")
    q, p = _batch(SMALL_BATCH, torch.float64, "cpu")
    return lambda: leapfrog_unmerged(q, p, lambda x: grad_autograd(net, x), 1.0, T / 25, 25)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("path", ["torch"] + (["triton"] if CUDA else []))
def test_closed_form_vs_double_autograd_batch128(benchmark, dtype, path):
    """The authors' approach (float64, autograd gradient, two per step: 2K = 50) against
    the closed-form path, both timed here."""
    device = "cuda" if path == "triton" or (CUDA and path == "torch") else "cpu"
    net = _net(dtype, device)
    q, p = _batch(SMALL_BATCH, dtype, device)
    run = _sampler(net, q, p, 25, kernels=path)
    run()
    ref, fast = alternate(_autograd_reference(), run, 1)
    benchmark.pedantic(run, rounds=3 if device == "cpu" else 20, iterations=1)
    record(benchmark, "closed-form-vs-autograd", examples=SMALL_BATCH, steps=25, gradients=26,
           dtype=str(dtype).removeprefix("torch."), path=f"{path} ({device})",
           autograd_float64_seconds=ref, seconds=fast, speedup_vs_autograd_float64=ref / fast)
