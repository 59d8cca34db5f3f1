"""GPU benchmarks of the paper's workloads, the measured side of benchmarks/cost_model.py.

`pytest benchmarks/test_gpu.py --benchmark-only` (CUDA only; run by benchmarks/gpu_check.sh).
Each figure is the median of a few rounds after a warm-up (compilation); the torch path of
the same workload is timed once in the same run for the ratio. The Deep Set is a seeded
random one of the paper's size: the cost does not depend on the weights' values as long as
no pre-activation passes the Softplus threshold (the fast path the prediction assumes).
"""

from __future__ import annotations

import time

import pytest
import torch

import fastvp
from fastvp.surrogate.potential import SOFTPLUS_THRESHOLD, DeepSet

from .conftest import machine, sync

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

DTYPES = [torch.float32, torch.float64]
IDS = ["float32", "float64"]
PIC_EXAMPLES, TEST_EXAMPLES, BATCH, STEPS = 32768, 6384, 128, 25


def _once(fn) -> float:
    fn()
    sync("cuda")
    t0 = time.perf_counter()
    fn()
    sync("cuda")
    return time.perf_counter() - t0


def _record(benchmark, reference_seconds: float | None = None, **extra) -> None:
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(machine=machine(), seconds=seconds, **extra)
    if reference_seconds is not None:
        benchmark.extra_info.update(torch_path_seconds=reference_seconds,
                                    speedup_vs_torch_path=reference_seconds / seconds)


def test_gpu_pic_dataset(benchmark):
    batch = fastvp.initial_conditions(PIC_EXAMPLES, seed=0, device="cuda", dtype=torch.float32)

    def run(kernels):
        return lambda: fastvp.simulate(batch, kernels=kernels)

    torch_seconds = _once(run("torch"))
    run("triton")()
    sync("cuda")
    benchmark.pedantic(lambda: (run("triton")(), sync("cuda")), rounds=5, iterations=1)
    _record(benchmark, torch_seconds, workload="pic", examples=PIC_EXAMPLES, dtype="float32")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_gpu_sampling_test_set(benchmark, dtype):
    from fastvp.kernels.deepset_leapfrog import deepset_leapfrog

    from fastvp.surrogate.flow import integrate

    torch.manual_seed(0)
    w = DeepSet(256).to(device="cuda", dtype=dtype).weights().detach()
    batch = fastvp.initial_conditions(TEST_EXAMPLES, seed=0, device="cuda", dtype=dtype)
    dt = fastvp.PICConfig().dt * fastvp.PICConfig().steps / STEPS

    def fused():
        return deepset_leapfrog(batch.q, batch.p, w, 1.0, dt, STEPS, threshold=SOFTPLUS_THRESHOLD)

    with torch.no_grad():
        torch_seconds = _once(lambda: integrate(batch.q, batch.p, w, 1.0, dt, STEPS,
                                                kernels="torch"))
        fused()
        benchmark.pedantic(lambda: (fused(), sync("cuda")), rounds=5, iterations=1)
    _record(benchmark, torch_seconds, workload="sampling", examples=TEST_EXAMPLES, steps=STEPS,
            dtype=str(dtype).removeprefix("torch."))


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_gpu_training_step(benchmark, dtype, monkeypatch):
    from fastvp.surrogate.train import nll

    torch.manual_seed(0)
    model = fastvp.Surrogate(steps=STEPS).to(device="cuda", dtype=dtype)
    batch = fastvp.initial_conditions(BATCH, seed=0, device="cuda", dtype=dtype)
    final = fastvp.simulate(batch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nll(model, final.q[-1], final.p[-1], batch.mu_q, batch.sigma_q, batch.mu_p,
                   batch.sigma_p, 1.0).mean()
        loss.backward()
        opt.step()
        sync("cuda")

    monkeypatch.setenv("FASTVP_KERNELS", "torch")
    torch_seconds = _once(step)
    monkeypatch.setenv("FASTVP_KERNELS", "triton")
    step()
    benchmark.pedantic(step, rounds=5, iterations=1)
    _record(benchmark, torch_seconds, workload="training_step", batch=BATCH, steps=STEPS,
            dtype=str(dtype).removeprefix("torch."))
