"""``fastvp sample``: push initial particles to time t with a surrogate, write an .npz file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._common import add_common, seed


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("sample", help="sample a surrogate at time t",
                       description="Draw initial particles from the model's config and push them "
                       "to time t with K leapfrog steps.")
    p.add_argument("--model", default="paper-1d", help="bundled model name or .safetensors file")
    p.add_argument("--t", type=float, nargs="+", required=True,
                   help="time(s) in [0, T]; several give a trajectory")
    p.add_argument("--steps", type=int, default=None, help="leapfrog steps K (default: training K)")
    p.add_argument("--examples", type=int, default=1, help="number of examples (default 1)")
    p.add_argument("--out", default=None, help="write q0, p0, t, q, p to this .npz file")
    p.add_argument("--extrapolate", action="store_true", help="allow t outside [0, T]")
    add_common(p, dtype="float64")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..backend import resolve_device, resolve_dtype
    from ..files import atomic_write
    from ..initial import initial_conditions
    from ..surrogate.model import Surrogate

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix != ".npz":
        raise ValueError(f"--out must name a .npz file, got {args.out!r}")
    if isinstance(args.examples, bool) or args.examples < 1:
        raise ValueError(f"--examples must be >= 1, got {args.examples!r}")
    model = Surrogate.load(args.model)
    model.to(device=resolve_device(args.device), dtype=resolve_dtype(args.dtype))
    batch = initial_conditions(args.examples, model.config, seed=seed(args), device=model.device,
                               dtype=model.dtype)
    t0 = time.perf_counter()
    times = args.t if len(args.t) > 1 else args.t[0]
    res = model.sample(times, batch, steps=args.steps, extrapolate=args.extrapolate)
    elapsed = time.perf_counter() - t0
    if len(args.t) > 1:
        t, q, p = res.t.cpu().numpy(), res.q.cpu().numpy(), res.p.cpu().numpy()
    else:
        t, q, p = np.array(args.t), res[0][None].cpu().numpy(), res[1][None].cpu().numpy()
    K = args.steps or model.steps
    print(f"sampled {args.examples} examples x {batch.n_particles} particles at t = "
          f"{', '.join(f'{x:g}' for x in args.t)} ({K} steps each) in {elapsed * 1e3:.1f} ms")
    print(f"position spread {q[-1].std(axis=1).mean():.4f}, momentum spread "
          f"{p[-1].std(axis=1).mean():.4f} at t = {args.t[-1]:g}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(t=t, q=q, p=p, q0=batch.q.cpu().numpy(), p0=batch.p.cpu().numpy(),
                      sigma_q=batch.sigma_q.cpu().numpy(), sigma_p=batch.sigma_p.cpu().numpy())
        atomic_write(out, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")
        print(f"wrote {out}")
    return 0
