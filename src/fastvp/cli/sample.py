"""``fastvp sample``: push initial particles to time t with a surrogate, write an .npz file.

The model is read by its format, whatever the file's suffix: a fastvp PDE-NHF or baseline
.safetensors file, a bundled name, or the authors' checkpoint (a torch pickle, read with
``weights_only``). The baseline predicts t = T only.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ..backend import resolve_device, resolve_dtype
from ..config import PICConfig
from ..files import atomic_write
from ..problems.paper import PaperInitial, gaussian_initial_conditions
from ..surrogate.baseline import Baseline
from ..surrogate.loading import read_model
from ._common import add_common, add_flags, check_out, flags, given, seed

#: Initial-condition ranges of the examples drawn.
RANGE_FLAGS = flags("sigma_q_range", "sigma_p_range")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("sample", help="sample a surrogate (PDE-NHF or the baseline) at time t",
                       description="Draw initial particles from the model's config (its sigma "
                       "ranges unless --sigma-q-range / --sigma-p-range are given) and push them "
                       "to time t with K leapfrog steps (the baseline: its map to T).")
    p.add_argument("--model", default="paper-1d",
                   help="bundled model name, a fastvp .safetensors file (PDE-NHF or the baseline, "
                   "told apart by its header) or the authors' torch checkpoint (default paper-1d)")
    p.add_argument("--t", type=float, nargs="+", required=True,
                   help="time(s) in [0, T]; several give a trajectory (the baseline: T only)")
    p.add_argument("--steps", type=int, default=None,
                   help="leapfrog steps K (default: training K; PDE-NHF only)")
    p.add_argument("--examples", type=int, default=1, help="number of examples (default 1)")
    p.add_argument("--out", default=None,
                   help="write q0, p0, sigma_q, sigma_p, t and q, p to this .npz file: q, p [B, N] "
                   "for one time, [S, B, N] for S times")
    p.add_argument("--extrapolate", action="store_true", help="allow t outside [0, T]")
    add_flags(p, RANGE_FLAGS, None)
    add_common(p, dtype="float64", dtype_help=": samples are data, compared with PIC",
               seed_help="random seed of the initial conditions drawn (default: 0)")
    p.set_defaults(func=run)
    return p


def _baseline_config(model):
    """The PIC config a baseline was trained for (its file's training entry, if any)."""
    info = getattr(model, "training_info", None) or {}
    if "config" in info:
        return PICConfig.from_dict(info["config"])
    return PICConfig(n_particles=model.n_particles)


def _check_args(args: argparse.Namespace) -> None:
    if args.out is not None:
        check_out(args.out, "file", ".npz")
    if isinstance(args.examples, bool) or args.examples < 1:
        raise ValueError(f"--examples must be an integer >= 1, got {args.examples!r}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be an integer >= 1, got {args.steps!r}")


def _run_baseline(model, args: argparse.Namespace, batch):
    T = model.final_time
    if len(args.t) != 1 or not math.isclose(args.t[0], T, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"--t must be T = {T:g} for the baseline (it predicts the final time "
                         f"only), got {' '.join(f'{x:g}' for x in args.t)}")
    if args.steps is not None:
        raise ValueError(f"--steps applies to PDE-NHF only, not to the baseline, got {args.steps}")
    return model.predict(batch)


def run(args: argparse.Namespace) -> int:
    _check_args(args)  # before the model is read and anything sampled
    model = read_model(args.model)
    is_baseline = isinstance(model, Baseline)
    model.to(device=resolve_device(args.device), dtype=resolve_dtype(args.dtype))
    config = _baseline_config(model) if is_baseline else model.config
    initial = PaperInitial.of(config).replace(**given(args, RANGE_FLAGS))
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    batch = gaussian_initial_conditions(args.examples, config, initial, seed=seed(args),
                                        device=device, dtype=dtype)
    t0 = time.perf_counter()
    if is_baseline:
        res, K = _run_baseline(model, args, batch), None
    else:
        times = args.t if len(args.t) > 1 else args.t[0]
        res = model.sample(times, batch, steps=args.steps, extrapolate=args.extrapolate)
        K = args.steps or model.steps
    elapsed = time.perf_counter() - t0
    if len(args.t) > 1:
        t, q, p = res.t.cpu().numpy(), res.q.cpu().numpy(), res.p.cpu().numpy()
    else:  # one time: q, p [B, N]
        t, q, p = np.array(args.t[0]), res[0].cpu().numpy(), res[1].cpu().numpy()
    how = "the baseline's map to T" if is_baseline else f"{K} steps each"
    print(f"sampled {args.examples} examples x {batch.n_particles} particles at t = "
          f"{', '.join(f'{x:g}' for x in args.t)} ({how}) in {elapsed * 1e3:.1f} ms")
    last_q, last_p = (q[-1], p[-1]) if q.ndim == 3 else (q, p)
    print(f"position spread {last_q.std(axis=1).mean():.4f}, momentum spread "
          f"{last_p.std(axis=1).mean():.4f} at t = {args.t[-1]:g}")
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(t=t, q=q, p=p, q0=batch.q.cpu().numpy(), p0=batch.p.cpu().numpy(),
                      sigma_q=batch.sigma_q.cpu().numpy(), sigma_p=batch.sigma_p.cpu().numpy())
        atomic_write(out, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")
        print(f"wrote {out}")
    return 0
