"""Static cost model: predicted H100 SXM times of the paper's workloads from the SASS of the
kernels compiled on this CPU (``fastvp.kernels.aot``). PREDICTIONS, never measurements.

    python -m benchmarks.cost_model            # markdown tables on stdout

Model. A kernel's dynamic warp-instruction counts per program are the static SASS counts of
its loop bodies (``aot.loop_tree``: each loop without its nested loops) times the trip
counts of the loops around them (known from the tile sizes), times the program's warps
(each runs the same code); kernels with one loop count their code outside it once. Each
program runs on one SM (registers allow one 8-warp program per SM); its time is the sum
over its phases (softplus pass, mat-mats, sigma pass, the rest, separated by barriers) of
the slowest pipe of the phase, each pipe at its peak rate:

    issue 4 warp-instructions / clock / SM (every instruction), FP32 128 lanes, ALU 64,
    SFU (MUFU) 16, FP64 64, shuffles and shared memory 32, tensor cores 1024 TF32 or
    128 FP64 FMA / clock / SM; L2 -> SM and DRAM bandwidth shared by all SMs.

Waves of programs run one after another. The threshold branch of the Deep Set kernels is
costed both ways: never taken (pre-activations below 20, "fast") and always ("threshold").
Perfect latency hiding is assumed, so the figures are lower bounds of what a GPU does.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass

from fastvp.kernels import aot, cic, deepset_common, deepset_leapfrog, deepset_train

# ---------------------------------------------------------------------------- the H100 SXM
#: H100 SXM5 (sm_90). Sources: NVIDIA H100 Tensor Core GPU datasheet and Hopper
#: architecture whitepaper (132 SMs, 80 GB HBM3 at 3.35 TB/s, 50 MB L2, 67 TFLOPS FP32 ->
#: 1.98 GHz boost with 128 FP32 lanes per SM, 67 TFLOPS FP64 tensor core); CUDA C++
#: Programming Guide, "Arithmetic Instructions" throughput table for compute capability 9.0
#: (per SM per clock: 128 FP32 add/mul/fma, 64 FP64, 16 reciprocal/log2/exp2 (MUFU), 64
#: compare/min/max and integer add, 32 warp shuffles); tensor cores: 494.7 dense TF32
#: TFLOPS -> 1024 TF32 FMA per clock per SM. L2 bandwidth has no NVIDIA figure: 5.5 TB/s is
#: assumed, the order measured by microbenchmarks of H100 PCIe (chipsandcheese.com,
#: "Nvidia's H100: Funny L2, and Tons of Bandwidth", 2023). The L2 atomic rate (PIC deposit)
#: has no published figure either: 132 four-byte REDs per clock (one per SM) is assumed.
#: Host launch cost: 5 us per kernel (PyTorch eager, an assumption; CUDA graphs remove it).
H100 = dict(name="H100 SXM5 (sm_90, 1.98 GHz boost)", sms=132, clock=1.98e9, issue=4 * 32,
            fp32=128, alu=64, mufu=16, fp64=64, shfl=32, lsu=32, tf32_fma=1024, fp64_fma=128,
            l2_bytes_s=5.5e12, dram_bytes_s=3.35e12, atomics=132, launch_s=5e-6)

FP32_OPS = ("FFMA", "FMUL", "FADD")
FP64_OPS = ("DFMA", "DMUL", "DADD")
ALU_OPS = ("FSETP", "FSEL", "FMNMX")


def phase_clocks(counts: dict, gpu: dict = H100, l2_bytes: float = 0.0) -> dict:
    """Clocks per pipe of one SM for warp-instruction counts (class -> count): {pipe: clk}."""
    warp = 32
    total = counts.get("total", 0)
    return {
        "issue": total * warp / gpu["issue"],
        "FP32": sum(counts.get(k, 0) for k in FP32_OPS) * warp / gpu["fp32"],
        "ALU": sum(counts.get(k, 0) for k in ALU_OPS) * warp / gpu["alu"],
        "MUFU": counts.get("MUFU", 0) * warp / gpu["mufu"],
        "FP64": sum(counts.get(k, 0) for k in FP64_OPS) * warp / gpu["fp64"],
        "SHFL/LDS": (counts.get("SHFL", 0) + counts.get("LDS", 0) + counts.get("STS", 0))
        * warp / gpu["lsu"],
        # mma.m16n8k8 tf32 = 1024 FMA, mma.m8n8k4 f64 = 256 FMA (per warp instruction)
        "tensor": counts.get("HMMA", 0) * 1024 / gpu["tf32_fma"]
        + counts.get("DMMA", 0) * 256 / gpu["fp64_fma"],
        "L2": l2_bytes / (gpu["l2_bytes_s"] / gpu["sms"] / gpu["clock"]),
    }


def scaled(counts: dict, factor: float) -> dict:
    return {k: v * factor for k, v in counts.items()}


def added(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0) + v
    return out


@dataclass
class Kernel:
    """A compiled kernel's innermost loops and the rest (static SASS counts), resources."""

    loops: list
    rest: dict
    tree: list
    registers: int
    shared: int
    warps: int

    def per_sm(self, gpu: dict = H100) -> int:
        """Programs resident per SM, from registers (64K) and shared memory (228 KB)."""
        by_regs = 65536 // (max(self.registers, 1) * 32 * self.warps)
        by_smem = (228 * 1024) // max(self.shared, 1)
        return max(1, min(by_regs, by_smem))


def compile_kernel(name: str, dtype: str, clip: int, arch: str = "sm_90") -> Kernel:
    """The Deep Set or CIC kernel `name` at the paper's sizes, CLIP forced to `clip`."""
    specs = {s.name: s for s in aot.all_specs(dtype, aot.SIZES["paper"])}
    spec = copy.copy(specs[name])
    if "CLIP" in spec.constexprs:
        spec.constexprs = dict(spec.constexprs, CLIP=clip)
    kernel = aot.compile_spec(spec, arch)
    instructions = aot.sass_instructions(kernel.asm["cubin"])
    loops = [lp["sass"] for lp in aot.innermost_loops(instructions)]
    rest = added(aot.sass_counts(instructions), *(scaled(lp, -1) for lp in loops))
    usage = aot.ptxas_usage(kernel.asm["ptx"], arch)
    return Kernel(loops, rest, aot.loop_tree(instructions), usage["registers"],
                  int(kernel.metadata.shared), spec.num_warps)


def _clocks_of(phases: list[tuple[dict, float]], gpu: dict = H100) -> dict:
    """Sum over phases of the slowest pipe of each: {pipe: clocks it binds}."""
    out: dict = {}
    for counts, l2 in phases:
        clk = phase_clocks(counts, gpu, l2)
        pipe = max(clk, key=clk.get)
        out[pipe] = out.get(pipe, 0.0) + clk[pipe]
    return out


@dataclass
class Prediction:
    """Predicted seconds of a workload and the clocks each binding pipe accounts for."""

    workload: str
    seconds: float
    pipes: dict
    note: str = ""

    @property
    def binding(self) -> str:
        total = sum(self.pipes.values()) or 1.0
        parts = sorted(self.pipes.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in parts if v / total >= 0.01)


# ---------------------------------------------------------------------------- workloads

N, HIDDEN, CELLS = aot.SIZES["paper"]["N"], aot.SIZES["paper"]["H"], aot.SIZES["paper"]["Nx"]


def _torch_dtype(dtype: str):
    import torch

    return torch.float32 if dtype == "float32" else torch.float64


def examples_per_program(n_examples: int, gpu: dict = H100) -> int:
    """The launcher's rule (``deepset_leapfrog._per_program``) for `gpu`'s SM count."""
    m = deepset_leapfrog.EXAMPLES_PER_PROGRAM
    waves = math.ceil(n_examples / (gpu["sms"] * m))
    return max(1, math.ceil(n_examples / (gpu["sms"] * waves)))


def sampling(n_examples: int, steps: int, dtype: str, clip: int = 0, gpu: dict = H100) -> Prediction:
    """The fused sampler: `steps` leapfrog steps (K + 1 gradients) of n_examples examples."""
    k = compile_kernel("deepset_leapfrog", dtype, clip)
    b = deepset_leapfrog._blocks(N, HIDDEN, _torch_dtype(dtype))
    per = examples_per_program(n_examples, gpu)
    # pipes are shared by the programs resident on an SM: what counts is how many programs
    # each SM runs in all (occupancy helps latency hiding, which this model ignores)
    waves = math.ceil(math.ceil(n_examples / per) / gpu["sms"])
    # loops: the K-step loop; in it, per example the softplus tiles, three mat-mat loops
    # over column tiles with their k-tile loops, per example the sigma tiles
    top, mid, low = ([lp["sass"] for lp in k.tree if lp["depth"] == d] for d in (0, 1, 2))
    assert (len(top), len(mid), len(low)) == (1, 5, 5), "unexpected loop structure"
    elt = 4 if dtype == "float32" else 8
    nj, nk = math.ceil(HIDDEN / b["BN"]), math.ceil(HIDDEN / b["BK"])
    w = k.warps  # every warp of the program runs the loop bodies
    phases = [(scaled(added(mid[0], scaled(low[0], math.ceil(HIDDEN / b["BH"]))), w * per), 0.0),
              # W2 twice, W3 twice (its second read per tile assumed to hit L1)
              (scaled(added(*mid[1:4], *(scaled(x, nk) for x in low[1:4])), w * nj),
               3 * HIDDEN * HIDDEN * elt),
              (scaled(added(mid[4], scaled(low[4], math.ceil(HIDDEN / (4 * b["BQ"])))), w * per),
               0.0),
              (scaled(top[0], w), 0.0)]
    pipes = scaled(_clocks_of(phases, gpu), waves * (steps + 1))
    label = "fast" if clip == 0 else "threshold"
    return Prediction(f"sampling {n_examples} examples, K = {steps}, {dtype} ({label} path)",
                      sum(pipes.values()) / gpu["clock"], pipes,
                      f"{per} examples per program, {waves} programs per SM, {k.registers} "
                      f"registers ({k.per_sm(gpu)} resident per SM)")


def _row_kernel_clocks(name: str, dtype: str, trips: int, clip: int, gpu: dict) -> dict:
    k = compile_kernel(name, dtype, clip)
    (loop,) = k.loops
    return _clocks_of([(scaled(loop, k.warps * trips), 0.0), (scaled(k.rest, k.warps), 0.0)], gpu)


#: aten ops that launch no GPU kernel (views, metadata, allocation).
NO_KERNEL = {"view", "_unsafe_view", "t", "transpose", "unbind", "select", "slice", "expand",
             "detach", "alias", "empty", "empty_like", "empty_strided", "as_strided", "unsqueeze",
             "squeeze", "permute", "lift_fresh", "new_empty", "new_empty_strided", "reshape",
             "_reshape_alias", "contiguous", "is_same_size", "zeros_like", "split"}


def training_step_launches(steps: int = 25) -> dict:
    """GPU launches of one training step (pullback + backward + Adam) with the Triton gradient,
    counted on this CPU: aten ops under a dispatch mode, the Triton kernels stubbed out (their
    launches counted apart). Sizes do not change the count (batch 2, 8 particles, 8 units)."""
    import os

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    import fastvp

    ops, triton_launches = [], []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ops.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    def stub(kernel, *args, **kwargs):
        triton_launches.append(kernel)

    saved = (deepset_train._row_launch, os.environ.get("FASTVP_KERNELS"),
             os.environ.get("TRITON_INTERPRET"))
    deepset_train._row_launch = stub
    os.environ.update(FASTVP_KERNELS="triton", TRITON_INTERPRET="1")
    try:
        model = fastvp.Surrogate(steps=steps, hidden=8)
        opt = torch.optim.Adam(model.parameters(), lr=3e-4, foreach=True)
        batch = fastvp.initial_conditions(2, fastvp.PICConfig(n_particles=8), seed=0)
        with Count():
            loss = -model.log_prob(batch.q, batch.p, batch, t=1.0).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    finally:
        deepset_train._row_launch = saved[0]
        for key, value in (("FASTVP_KERNELS", saved[1]), ("TRITON_INTERPRET", saved[2])):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    aten = sum(1 for op in ops if op not in NO_KERNEL)
    return {"aten": aten, "triton": len(triton_launches), "total": aten + len(triton_launches)}


def training_step(batch: int, steps: int, dtype: str, clip: int = 0, gpu: dict = H100,
                  launches: dict | None = None) -> Prediction:
    """One training step: pullback of `batch` examples by K = `steps` leapfrog steps with the
    Triton gradient (4 kernels per gradient, one program per example) and its backward."""
    b = deepset_common.tiles(N, HIDDEN, _torch_dtype(dtype))
    trips = {"deepset_pool": math.ceil(HIDDEN / b["BH"]),
             "deepset_force": math.ceil(HIDDEN / (4 * b["BQ"])),
             "deepset_moments": math.ceil(HIDDEN / b["BH"]),
             "deepset_dq": math.ceil(HIDDEN / b["BQ"])}
    waves = math.ceil(batch / gpu["sms"])
    pipes = added(*(_row_kernel_clocks(name, dtype, t, clip, gpu) for name, t in trips.items()))
    pipes = scaled(pipes, waves * (steps + 1))
    gpu_seconds = sum(pipes.values()) / gpu["clock"]
    launches = launches or training_step_launches(steps)
    host = launches["total"] * gpu["launch_s"]
    label = "fast" if clip == 0 else "threshold"
    if host > gpu_seconds:
        pipes = {"launches": host * gpu["clock"], **{f"(GPU {k})": v for k, v in pipes.items()}}
    return Prediction(f"training step, batch {batch}, K = {steps}, {dtype} ({label} path)",
                      max(host, gpu_seconds), pipes,
                      f"GPU {gpu_seconds * 1e3:.2f} ms; {launches['total']} launches "
                      f"({launches['triton']} Triton) x {gpu['launch_s'] * 1e6:.0f} us = "
                      f"{host * 1e3:.2f} ms")


def pic_dataset(n_examples: int, dtype: str = "float32", gpu: dict = H100) -> Prediction:
    """The PIC dataset (paper preset, snapshots kept on the device): DRAM traffic of the
    Triton movers and the torch / CuPy field solve, the deposit's L2 atomics, and the CIC
    kernels' instructions (one program per 256 particles)."""
    import fastvp

    cfg = fastvp.PICConfig()
    elt = 4 if dtype == "float32" else 8
    particles, grid = n_examples * cfg.n_particles * elt, n_examples * cfg.cells * elt
    segments = cfg.n_snapshots - 1
    drifts, kicks, solves = cfg.steps, cfg.steps + segments, cfg.steps + 1
    # drift_deposit: x, v read, x written, rho zeroed; kick_gather: x, v, E read, v written;
    # solve: mean, subtract, rfft, multiply, irfft (~8 grid passes); snapshots: 2 copies each
    dram = (drifts * (3 * particles + grid) + kicks * (3 * particles + grid) + solves * 8 * grid
            + segments * 4 * particles)
    atomics = (drifts + 1) * 2 * n_examples * cfg.n_particles
    programs = n_examples * math.ceil(cfg.n_particles / cic.BLOCK)
    clocks = {}
    for name, count in (("cic_drift_deposit", drifts), ("cic_kick_gather", kicks)):
        k = compile_kernel(name, dtype, 0)
        per_sm = math.ceil(programs / (gpu["sms"] * k.per_sm(gpu))) * k.per_sm(gpu)
        clk = phase_clocks(scaled(k.rest, k.warps * per_sm * count), gpu)
        clocks = added(clocks, {"issue": clk["issue"]})
    pipes = {"DRAM": dram / gpu["dram_bytes_s"] * gpu["clock"],
             "L2 atomics": atomics / gpu["atomics"], **clocks}
    # the phases overlap across the many independent programs: the slowest pipe binds
    binding = max(pipes, key=pipes.get)
    launches = (drifts + kicks + 6 * solves + 2 * segments) * gpu["launch_s"]
    return Prediction(f"PIC dataset, {n_examples} examples, {cfg.steps} steps, {dtype}",
                      max(pipes[binding] / gpu["clock"], launches), pipes,
                      f"{dram / 1e9:.1f} GB DRAM, {atomics / 1e6:.0f} M atomics, "
                      f"~{launches * 1e3:.1f} ms of launches (overlapped)")


# ---------------------------------------------------------------------------- report

#: The goals of issue 12 (seconds).
GOALS = {"PIC": 10e-3, "sampling float32": 5e-3, "training 200 epochs": 300.0}
TRAIN_EXAMPLES, EPOCHS, BATCH, STEPS = 20000, 200, 128, 25


def predictions(gpu: dict = H100) -> list[Prediction]:
    """Every workload of the report (compiles the kernels: about a minute on 2 cores)."""
    launches = training_step_launches(STEPS)
    out = [pic_dataset(32768, "float32", gpu)]
    for dtype in ("float32", "float64"):
        out += [sampling(6384, STEPS, dtype, clip, gpu) for clip in (0, 2)]
    for dtype in ("float32", "float64"):
        out += [training_step(BATCH, STEPS, dtype, clip, gpu, launches) for clip in (0, 2)]
    return out


def markdown(preds: list[Prediction], gpu: dict = H100) -> str:
    lines = [f"Predicted on {gpu['name']} (static model, `python -m benchmarks.cost_model`):", "",
             "| workload | predicted | binding pipes (share of clocks) | notes |",
             "| --- | --- | --- | --- |"]
    for p in preds:
        lines.append(f"| {p.workload} | {p.seconds * 1e3:.2f} ms | {p.binding} | {p.note} |")
    steps_per_epoch = math.ceil(TRAIN_EXAMPLES / BATCH)
    lines += ["", "| goal | target | predicted | distance |", "| --- | --- | --- | --- |"]
    pic = preds[0].seconds
    sample = next(p for p in preds if p.workload.startswith("sampling") and "float32 (fast" in p.workload)
    train = next(p for p in preds if p.workload.startswith("training") and "float32 (fast" in p.workload)
    rows = [("PIC dataset (32768 examples)", GOALS["PIC"], pic),
            ("sampling 6384 examples, K = 25, float32", GOALS["sampling float32"], sample.seconds),
            (f"training, {EPOCHS} epochs x {steps_per_epoch} steps, float32",
             GOALS["training 200 epochs"], train.seconds * EPOCHS * steps_per_epoch)]
    for name, goal, got in rows:
        unit, scale = ("s", 1.0) if goal >= 1 else ("ms", 1e3)
        verdict = "within" if got <= goal else f"{got / goal:.2f}x over"
        lines.append(f"| {name} | <= {goal * scale:g} {unit} | {got * scale:.2f} {unit} | {verdict} |")
    return "\n".join(lines)


def write_json(preds: list[Prediction], path) -> None:
    """The predictions as JSON (benchmarks/predicted.json, read by gpu_check's summary)."""
    import json
    from pathlib import Path

    rows = [{"workload": p.workload, "seconds": p.seconds, "binding": p.binding, "note": p.note}
            for p in preds]
    Path(path).write_text(json.dumps({"gpu": H100["name"], "predictions": rows}, indent=1))


if __name__ == "__main__":  # python -m benchmarks.cost_model [--json benchmarks/predicted.json]
    preds = predictions()
    print(markdown(preds))
    if "--json" in sys.argv:
        write_json(preds, sys.argv[sys.argv.index("--json") + 1])
