"""``fastvp demo``: PIC and the bundled surrogate on one paper-preset batch, in seconds."""

from __future__ import annotations

import argparse

from ..backend import resolve_dtype
from ..evaluation import demo
from ._common import add_common, check_out, seed


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo", help="PIC vs the bundled surrogate on a paper-preset batch (CPU, seconds)",
        description="Simulate a batch of the paper preset with PIC (float64), sample the "
        "surrogate on the same initial particles (K = 25 and 5 leapfrog steps), print W1 at T "
        "to PIC (and the identity's), the surrogate's wall time against PIC's, and write "
        "demo.png.")
    p.add_argument("--out", default="fastvp-demo", help="folder for the figure (default fastvp-demo)")
    p.add_argument("--examples", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--model", default="paper-1d", help="bundled model name or file")
    add_common(p, dtype="float32", dtype_help=": the surrogate's; PIC itself runs in float64",
               seed_help="random seed of the batch's initial conditions (default: 0)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:

    check_out(args.out)
    demo(args.out, n_examples=args.examples, model=args.model, seed=seed(args),
         device=args.device or "cpu", dtype=resolve_dtype(args.dtype))
    return 0
