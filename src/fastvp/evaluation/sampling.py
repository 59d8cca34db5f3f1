"""Sampling the models, the baseline and PIC on the test split, and timing them.

``sample_model`` feeds a model each test example's initial particles and scores its samples
against the PIC snapshots by the per-example W1: at T with every K (Tables 1 and 3), and at
the intermediate snapshots, reached by continuing the flow from one snapshot to the next
with dt = T / K (Table 2). Wall times are taken on the first chunk of examples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ..metrics import wasserstein_1d
from ..pic.simulate import simulate
from .inputs import Split

#: Examples sampled at once: bounds memory, and a progress bar ticks per chunk.
CHUNK = 512
#: Test examples shown in the figures (the first ones of the split).
FIGURE_EXAMPLES = 3


def w1(x: torch.Tensor, ref: np.ndarray) -> np.ndarray:
    """Per-example W1 [B] between a model output and PIC data, in float64 on the CPU."""
    return wasserstein_1d(x.detach().to("cpu", torch.float64), torch.from_numpy(ref)).numpy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, f, *args, **kw):
    """(f(*args, **kw), wall seconds), the device synchronised before and after."""
    _sync(device)
    t0 = time.perf_counter()
    r = f(*args, **kw)
    _sync(device)
    return r, time.perf_counter() - t0


@dataclass
class Samples:
    """What sampling one model gave: per-example W1, wall times, figure samples."""

    ks: list
    n: int
    inner: list
    w_final: dict = field(default_factory=dict)     # K -> {"q": [n], "p": [n]}
    w_inner: dict = field(default_factory=dict)     # step -> {"q": [n], "p": [n]}
    wall: dict = field(default_factory=dict)        # K -> seconds (first chunk)
    figures: dict = field(default_factory=dict)     # step -> (q, p) of the first examples
    chain_diff: float | None = None

    def __post_init__(self):
        self.w_final = {k: {"q": np.empty(self.n), "p": np.empty(self.n)} for k in self.ks}
        self.w_inner = {s: {"q": np.empty(self.n), "p": np.empty(self.n)} for s in self.inner}

    def record(self, store: dict, key, lo: int, hi: int, q, p, split: Split, step: int) -> None:
        store[key]["q"][lo:hi] = w1(q, split.q[step][lo:hi])
        store[key]["p"][lo:hi] = w1(p, split.p[step][lo:hi])


class BaselineSamples(NamedTuple):
    """What sampling the baseline gave."""

    w1: dict         # {"q": [n], "p": [n]}
    wall_s: float    # seconds, all chunks
    figures: tuple   # (q, p) [FIGURE_EXAMPLES, N] at T


def hops(split: Split, k_main: int) -> tuple[list[int], bool]:
    """Leapfrog steps of the main K between consecutive snapshots (dt = T / K), and whether
    they are whole: then the chain through the snapshots also gives Table 1's sample."""
    T = split.times[-1]
    exact = [k_main * (split.times[i + 1] - split.times[i]) / T for i in range(len(split.steps) - 1)]
    steps = [max(1, round(x)) for x in exact]
    return steps, all(abs(x - h) < 1e-9 for x, h in zip(exact, steps, strict=True))


def _sample_chunk(model, split: Split, res: Samples, lo: int, hi: int, device, dtype) -> None:
    """Tables 1-3 of examples lo..hi of one model (wall times on the first chunk)."""
    q0, p0 = split.initial(lo, hi, device, dtype)
    T, k_main, keep = split.times[-1], res.ks[0], min(FIGURE_EXAMPLES, split.n)
    between, chained = hops(split, k_main)
    final = {}
    if lo == 0:  # Table 3's wall times: straight to T in K steps
        for k in res.ks:
            final[k], res.wall[k] = timed(device, model.sample, T, (q0, p0), steps=k)
    q, p = q0, p0  # Table 2: the flow continued from snapshot to snapshot
    for i, s in enumerate(split.steps[1:] if chained else res.inner):
        q, p = model.sample(split.times[i + 1] - split.times[i], (q, p), steps=between[i])
        if s != split.sT:
            res.record(res.w_inner, s, lo, hi, q, p, split, s)
            if lo == 0:
                res.figures[s] = (q[:keep].cpu(), p[:keep].cpu())
    if chained:
        if lo == 0:
            res.chain_diff = max(float((q - final[k_main][0]).abs().max()),
                                 float((p - final[k_main][1]).abs().max()))
        final[k_main] = (q, p)
    for k in res.ks:  # Tables 1 and 3: W1 at T
        if k not in final:
            final[k] = model.sample(T, (q0, p0), steps=k)
        res.record(res.w_final, k, lo, hi, *final[k], split, split.sT)
    if lo == 0:
        res.figures[split.sT] = (final[k_main][0][:keep].cpu(), final[k_main][1][:keep].cpu())


def sample_model(model, split: Split, ks: list[int], chunk: int, device, dtype, bar) -> Samples:
    """Sample one model on every test example, chunk by chunk (`bar`: a progress bar or None)."""
    res = Samples(ks=ks, n=split.n, inner=split.steps[1:-1])
    for lo in range(0, split.n, chunk):
        hi = min(split.n, lo + chunk)
        _sample_chunk(model, split, res, lo, hi, device, dtype)
        if bar is not None:
            bar.update(hi - lo)
    return res


def sample_baseline(baseline, split: Split, chunk: int, device, dtype) -> BaselineSamples:
    """The baseline's prediction at T of every test example, scored and timed."""
    w = {"q": np.empty(split.n), "p": np.empty(split.n)}
    wall, fig = 0.0, None
    for lo in range(0, split.n, chunk):
        hi = min(split.n, lo + chunk)
        (qb, pb), dt = timed(device, baseline.predict, split.initial(lo, hi, device, dtype))
        wall += dt
        w["q"][lo:hi] = w1(qb, split.q[split.sT][lo:hi])
        w["p"][lo:hi] = w1(pb, split.p[split.sT][lo:hi])
        if lo == 0:
            keep = min(FIGURE_EXAMPLES, split.n)
            fig = (qb[:keep].cpu(), pb[:keep].cpu())
    return BaselineSamples(w, wall, fig)


def time_pic(test, split: Split, m: int, device: torch.device) -> dict:
    """Time PIC (float64, the dataset's config) on the first m test examples; check it
    reproduces their stored final snapshot."""
    q0, p0 = split.initial(0, m, device, torch.float64)
    simulate((q0[:2], p0[:2]), test.config)  # warm-up
    traj, wall = timed(device, simulate, (q0, p0), test.config)
    diff = max(float(np.abs(traj.q[-1].cpu().numpy() - split.q[split.sT][:m]).max()),
               float(np.abs(traj.p[-1].cpu().numpy() - split.p[split.sT][:m]).max()))
    return {"n_examples": m, "dtype": "float64", "wall_s": wall, "ms_per_example": 1e3 * wall / m,
            "scheme": test.config.scheme, "max_abs_diff_to_data": diff}
