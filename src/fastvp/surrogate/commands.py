"""The ``fastvp train`` and ``fastvp sample`` subcommands (wired in by ``fastvp.cli``).

Each ``add_*_parser(subparsers)`` registers its subcommand and sets ``func``, which
takes the parsed arguments and returns an exit status.
"""

from __future__ import annotations

import argparse
import time

import torch


def _common(parser: argparse.ArgumentParser, dtype: str) -> None:
    from ..cli import add_common

    add_common(parser, dtype=dtype)


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """`fastvp train --data DIR --out DIR [--epochs --batch-size --lr --steps --resume]`."""
    from .train import TrainConfig

    d = TrainConfig()
    p = subparsers.add_parser("train", help="train a PDE-NHF surrogate on a dataset folder",
                              description="Train PDE-NHF on the final snapshots of a dataset "
                              "folder (its train split; val split scored each epoch). Launched by "
                              "torchrun, trains data-parallel (DDP) on all its ranks.")
    p.add_argument("--data", required=True, help="dataset folder (fastvp or official layout)")
    p.add_argument("--out", required=True, help="folder for checkpoint.pt, model.safetensors, "
                   "history.json")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"examples per optimiser step, default {d.batch_size}; under torchrun the "
                   "global batch, split over the ranks")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate, default {d.lr}")
    p.add_argument("--steps", type=int, default=d.steps, help=f"leapfrog K, default {d.steps}")
    p.add_argument("--hidden", type=int, default=None,
                   help=f"hidden width (Deep Set H, default {d.hidden}; baseline: its own default)")
    p.add_argument("--schedule", default=d.schedule, choices=["constant", "cosine"])
    p.add_argument("--compile", action="store_true", help="fuse the gradient with torch.compile")
    p.add_argument("--snapshots", action="store_true",
                   help="also supervise the intermediate snapshots")
    p.add_argument("--pretrain-forces", type=int, default=0, metavar="STEPS",
                   help="first fit -dV/dq to the PIC forces of the stored snapshots for STEPS "
                   "steps (a physics-informed warm start; fastvp.surrogate.pretrain)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="also checkpoint every STEPS optimiser steps (default: at each epoch's end)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(p, "float32")
    p.set_defaults(func=run_train)
    return p


def run_train(args: argparse.Namespace) -> int:
    from .. import distributed as dist
    from .train import TrainConfig, train

    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         steps=args.steps, hidden=args.hidden or TrainConfig.hidden, dtype=args.dtype,
                         device=args.device, seed=args.seed, schedule=args.schedule,
                         method="compiled" if args.compile else "fast",
                         snapshots=args.snapshots, checkpoint_every=args.checkpoint_every)
    t0 = time.perf_counter()
    start = None
    if getattr(args, "pretrain_forces", 0) and not args.resume:
        from ..data import load_dataset
        from .model import Surrogate
        from .pretrain import PretrainConfig, pretrain_forces

        # under torchrun every rank runs the same warm start (DDP then starts all ranks
        # from rank 0's parameters); no rank waits idle in a collective meanwhile
        ds = load_dataset(args.data)
        torch.manual_seed(args.seed)
        start = Surrogate(ds.config, steps=args.steps, hidden=config.hidden)
        device = dist.device(args.device) if dist.is_initialized() else args.device
        res = pretrain_forces(start, ds, PretrainConfig(steps=args.pretrain_forces, seed=args.seed,
                                                        device=device),
                              progress=not args.quiet and dist.is_main())
        if dist.is_main():
            print(f"force matching: {args.pretrain_forces} steps, relative force error on "
                  f"validation states {res['val_loss']:.3g}")
    model = train(args.data, config, out=args.out, resume=args.resume, progress=not args.quiet,
                  model=start)
    last = model.history[-1] if model.history else {}
    if dist.is_main():  # one line under torchrun, not one per rank
        ranks = f" on {dist.world_size()} ranks" if dist.world_size() > 1 else ""
        print(f"trained {config.epochs} epochs{ranks} in {time.perf_counter() - t0:.1f} s: "
              f"val loss {last.get('val_loss', float('nan')):.3f}, a = {model.a.item():.4f}; "
              f"model in {args.out}")
    return 0


def add_sample_parser(subparsers) -> argparse.ArgumentParser:
    """`fastvp sample --model M --t T [--steps K --examples N --out FILE.npz]`."""
    p = subparsers.add_parser("sample", help="sample a surrogate at time t",
                              description="Draw initial particles from the model's config and "
                              "push them to time t with K leapfrog steps.")
    p.add_argument("--model", default="paper-1d", help="bundled model name or .safetensors file")
    p.add_argument("--t", type=float, nargs="+", required=True,
                   help="time(s) in [0, T]; several give a trajectory")
    p.add_argument("--steps", type=int, default=None, help="leapfrog steps K (default: training K)")
    p.add_argument("--examples", type=int, default=1, help="number of examples (default 1)")
    p.add_argument("--out", default=None, help="write q0, p0, t, q, p to this .npz file")
    p.add_argument("--extrapolate", action="store_true", help="allow t outside [0, T]")
    _common(p, "float64")
    p.set_defaults(func=run_sample)
    return p


def run_sample(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import numpy as np

    from ..backend import resolve_device, resolve_dtype
    from ..initial import initial_conditions
    from .model import Surrogate

    model = Surrogate.load(args.model)
    model.to(device=resolve_device(args.device), dtype=resolve_dtype(args.dtype))
    if isinstance(args.examples, bool) or args.examples < 1:
        raise ValueError(f"--examples must be >= 1, got {args.examples!r}")
    batch = initial_conditions(args.examples, model.config, seed=args.seed, device=model.device,
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
    if args.out:
        out = Path(args.out)
        if out.suffix != ".npz":
            raise ValueError(f"--out must name a .npz file, got {args.out!r}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial.npz")
        np.savez(tmp, t=t, q=q, p=p, q0=batch.q.cpu().numpy(), p0=batch.p.cpu().numpy(),
                 sigma_q=batch.sigma_q.cpu().numpy(), sigma_p=batch.sigma_p.cpu().numpy())
        os.replace(tmp, out)
        print(f"wrote {out}")
    return 0
