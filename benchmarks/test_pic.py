"""PIC throughput: the 32768-example paper dataset, batched, against a per-example NumPy loop.

Each benchmark also times the NumPy loop (tests/numpy_pic.py, one example at a time, the
style of the authors' generator) on a subset in the same run, scales it to the full size
and stores the ratio in extra_info. `pytest benchmarks/ --benchmark-only -k pic`.
"""

from __future__ import annotations

import pytest
import torch

import fastvp

from .conftest import median_time, record

N_EXAMPLES = 32768
LOOP_SUBSET = 128


@pytest.fixture(scope="module")
def numpy_loop_seconds():
    import numpy_pic

    batch = fastvp.initial_conditions(LOOP_SUBSET, seed=1)
    q, p = batch.q.numpy(), batch.p.numpy()
    per_example = median_time(lambda: numpy_pic.simulate_loop(q, p)) / LOOP_SUBSET
    return per_example * N_EXAMPLES


def _bench(benchmark, numpy_loop_seconds, device, dtype, kernels, rounds):
    batch = fastvp.initial_conditions(N_EXAMPLES, seed=0, device=device, dtype=dtype)

    def run():
        traj = fastvp.simulate(batch, kernels=kernels)
        if device == "cuda":
            torch.cuda.synchronize()
        return traj

    run()  # warm-up (kernel compilation, FFT plans)
    benchmark.pedantic(run, rounds=rounds, iterations=1)
    seconds = benchmark.stats.stats.median
    record(
        benchmark, "pic",
        device=device, dtype=str(dtype).removeprefix("torch."),
        examples=N_EXAMPLES,
        seconds=seconds,
        numpy_loop_seconds_scaled=numpy_loop_seconds,
        speedup_vs_numpy_loop=numpy_loop_seconds / seconds,
        speedup_vs_official_12_5ms=N_EXAMPLES * 12.5e-3 / seconds,
    )
    print(f"\n{device} {dtype} {kernels}: {seconds:.3f} s for {N_EXAMPLES} examples; NumPy loop "
          f"{numpy_loop_seconds:.1f} s -> {numpy_loop_seconds / seconds:.0f}x")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_pic_paper_dataset_cpu(benchmark, numpy_loop_seconds, dtype):
    _bench(benchmark, numpy_loop_seconds, "cpu", dtype, "torch", rounds=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_pic_paper_dataset_cuda(benchmark, numpy_loop_seconds, dtype):
    _bench(benchmark, numpy_loop_seconds, "cuda", dtype, "triton", rounds=20)
