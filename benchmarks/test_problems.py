"""Issue 15's figures: the cost of the per-step diagnostics, and CPU throughput at large N.

* diagnostics: ``simulate`` with and without ``diagnostics=True`` on the same batch,
  alternated in one test (the paper preset, 32768 examples; and the Landau problem's
  default, one example of 2^20 particles); the ratio is the overhead.
* large N: particle-steps per second of the CPU torch path at N = 10^6 particles per
  example, one example (particles in random order, and sorted as a quiet start leaves
  them: consecutive deposits then hit the same cell) and 64 examples. Snapshots are kept
  sparse (save_every = steps), so memory holds the input and two snapshots. On CUDA the
  Triton path runs ten times the steps.

    pytest benchmarks/test_problems.py --benchmark-only
"""

from __future__ import annotations

import math
import statistics
import time

import pytest
import torch

import fastvp

from .conftest import record, sync

PAPER_EXAMPLES = 32768
LARGE_N = 10**6
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _timed(fn, device: str):
    """(wall seconds, CPU seconds of this process) of one call of fn, device synchronised."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def _overhead(benchmark, batch, config, rounds: int, name: str, device: str = "cpu") -> None:
    def plain():
        return fastvp.simulate(batch, config)

    def with_diagnostics():
        return fastvp.simulate(batch, config, diagnostics=True)

    plain(), with_diagnostics()  # warm-up: kernels, FFT plans, allocator
    times = {plain: [], with_diagnostics: []}
    for _ in range(rounds):  # alternated: a drifting machine load hits both alike
        for fn in times:
            times[fn].append(_timed(fn, device))
    base, diag = (statistics.median(w for w, _ in times[fn]) for fn in times)
    base_cpu, diag_cpu = (statistics.median(c for _, c in times[fn]) for fn in times)
    benchmark.pedantic(with_diagnostics, rounds=1, iterations=1)
    record(benchmark, "diagnostics-overhead", case=name, device=device, seconds=base,
           diagnostics_seconds=diag, overhead=diag / base - 1, cpu_overhead=diag_cpu / base_cpu - 1)
    print(f"\n{name} ({device}): {base:.3f} s plain, {diag:.3f} s with diagnostics: "
          f"+{diag / base - 1:.1%} (CPU time +{diag_cpu / base_cpu - 1:.1%})")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_diagnostics_overhead_paper_preset(benchmark, device, dtype):
    config = fastvp.PICConfig()
    batch = fastvp.initial_conditions(PAPER_EXAMPLES, config, seed=0, device=device, dtype=dtype)
    _overhead(benchmark, batch, config, rounds=5, device=device,
              name=f"paper preset, {PAPER_EXAMPLES} examples, {str(dtype)[6:]}")


@pytest.mark.parametrize("device", DEVICES)
def test_diagnostics_overhead_landau_default(benchmark, device):
    prob = fastvp.problems.landau()
    batch = prob.initial_conditions(quiet=True, device=device)
    _overhead(benchmark, batch, prob.config, rounds=3, device=device,
              name="landau default, 1 x 2^20 particles, float64")


def _large_config(steps: int) -> fastvp.PICConfig:
    length = 4 * math.pi
    return fastvp.PICConfig(box_length=length, cells=256, n_particles=LARGE_N, charge=length / LARGE_N,
                            dt=0.1, steps=steps, save_every=steps)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("examples, steps, order", [(1, 50, "random"), (1, 50, "sorted"),
                                                    (64, 5, "random")])
def test_particle_steps_per_second_at_a_million_particles(benchmark, examples, steps, order, device):
    config = _large_config(steps if device == "cpu" else 10 * steps)
    g = torch.Generator().manual_seed(0)
    q = torch.rand(examples, LARGE_N, generator=g, dtype=torch.float64) * config.box_length
    if order == "sorted":
        q = q.sort(dim=1).values
    p = torch.randn(examples, LARGE_N, generator=g, dtype=torch.float64)
    q, p = q.to(device), p.to(device)
    kernels = "torch" if device == "cpu" else "auto"

    def run():
        return fastvp.simulate((q, p), config, kernels=kernels)

    wall, cpu = _timed(run, device)  # warm-up
    benchmark.pedantic(lambda: _timed(run, device), rounds=2, iterations=1)
    seconds = benchmark.stats.stats.median
    wall, cpu = _timed(run, device)
    work = examples * LARGE_N * config.steps
    record(benchmark, "large-n", device=device, examples=examples, particles=LARGE_N,
           steps=config.steps, order=order, dtype="float64", seconds=seconds,
           particle_steps_per_second=work / seconds, particle_steps_per_cpu_second=work / cpu,
           cpu_over_wall=cpu / wall)
    print(f"\nN = 1e6, {examples} example(s), {order}, {device}: {work / seconds / 1e6:.1f} M "
          f"particle-steps/s ({work / cpu / 1e6:.1f} M per CPU second)")
