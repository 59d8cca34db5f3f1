"""``fastvp simulate``: a PIC dataset folder in the authors' .npy layout (+ metadata.json)."""

from __future__ import annotations

import argparse
import time

from ..config import PICConfig
from ._common import add_common, add_flags, flags, given, seed

#: PICConfig fields as flags.
CONFIG_FLAGS = flags("box_length", "cells", "n_particles", "charge", "charge_over_mass", "dt", "steps",
                     "save_every", "scheme", "interaction", "mu_q", "mu_p", "sigma_range",
                     "sigma_q_range", "sigma_p_range")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="generate a PIC dataset folder (official .npy layout)",
                       description="Simulate examples with PIC and write them as Q00.npy, P00.npy, "
                       "..., Cond.npy and metadata.json (resumable; sharded under torchrun).")
    p.add_argument("--out", required=True,
                   help="output folder (created; checked for writability and free space first)")
    p.add_argument("--examples", type=int, default=32768, help="number of examples (default 32768)")
    p.add_argument("--particles", type=int, dest="n_particles", default=None,
                   help="alias of --n-particles")
    add_flags(p, CONFIG_FLAGS, PICConfig())
    p.add_argument("--chunk", type=int, default=None,
                   help="examples per chunk (bounds memory; default: automatic)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted generation")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    add_common(p, dtype_help=": datasets are float64, as the authors' layout", dtypes=("float64",))
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..data import generate_dataset
    from ..distributed import is_main

    cfg = PICConfig(**given(args, CONFIG_FLAGS))
    t0 = time.perf_counter()
    ds = generate_dataset(args.out, n_examples=args.examples, config=cfg, seed=seed(args),
                          chunk_size=args.chunk, device=args.device, resume=args.resume,
                          overwrite=args.overwrite, progress=not args.quiet, threads=args.threads)
    if is_main():  # one line under torchrun, not one per rank
        print(f"wrote {len(ds)} examples ({cfg.scheme}, {cfg.interaction}) to {args.out} in "
              f"{time.perf_counter() - t0:.1f} s")
    return 0
