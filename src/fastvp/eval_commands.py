"""Command-line parts of ``fastvp evaluate``, ``fastvp train --model baseline`` and ``fastvp demo``.

``cli.py`` wires them in:

    add_evaluate_parser(sub)                 # fastvp evaluate --model M --data DIR --out DIR ...
    add_baseline_train_options(train_parser)  # the options `fastvp train --model baseline` needs
    ... if args.model == "baseline": return run_train_baseline(args)
    demo parser: set_defaults(func=run_demo)  # needs --out, --examples, --model (+ common)

Each ``run_*`` takes the parsed namespace and returns an exit status.
"""

from __future__ import annotations

import argparse
import time

#: Options of ``run_train_baseline``: (flags, keyword arguments of add_argument).
BASELINE_TRAIN_OPTIONS = (
    (("--data",), dict(required=True, help="dataset folder (official .npy layout)")),
    (("--out",), dict(required=True, help="run folder: checkpoint.pt, model.safetensors (+ .json), "
                      "history.json")),
    (("--epochs",), dict(type=int, default=200,
                         help="passes over the training split (default 200)")),
    (("--batch-size",), dict(type=int, default=128, help="minibatch size (default 128)")),
    (("--lr",), dict(type=float, default=3e-4, help="Adam learning rate (default 3e-4)")),
    (("--hidden",), dict(type=int, default=None,
                         help="baseline: width of the MLPs' two hidden layers (default 80)")),
    (("--resume",), dict(action="store_true", help="continue the checkpoint in --out")),
    (("--checkpoint-every",), dict(type=int, default=None, metavar="STEPS",
                                   help="also checkpoint every STEPS optimiser steps")),
    (("--quiet",), dict(action="store_true", help="no progress bar")),
)


def _common(parser: argparse.ArgumentParser, dtype: str) -> None:
    from .cli import add_common

    add_common(parser, dtype=dtype)


def _dtype(args: argparse.Namespace):
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[args.dtype]


# ------------------------------------------------------------------ evaluate


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``fastvp evaluate`` on an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "evaluate", help="W1 tables and figures of a surrogate on a dataset's test split",
        description="Evaluate PDE-NHF (and optionally the baseline) against PIC on the test "
                    "split: writes report.md, results.json and PNG figures (the paper's "
                    "Tables 1-3, Fig. 2).")
    p.add_argument("--model", required=True,
                   help="surrogate: bundled name (paper-1d) or .safetensors file")
    p.add_argument("--data", required=True, help="dataset folder (fastvp or official layout)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--baseline", default=None, help="baseline .safetensors file (optional)")
    p.add_argument("--examples", type=int, default=None,
                   help="evaluate the first N test examples (default: the whole test split)")
    p.add_argument("--steps", type=int, nargs="+", default=[25, 10, 5, 2, 1],
                   help="leapfrog steps K of Table 3; the first is used for Tables 1-2 "
                        "(default 25 10 5 2 1)")
    p.add_argument("--chunk", type=int, default=512, help="examples sampled at once (default 512)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(p, dtype="float32")
    p.set_defaults(func=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .evaluate import evaluate

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    r = evaluate(args.model, args.data, args.out, baseline=args.baseline, steps_list=args.steps,
                 n_examples=args.examples, device=args.device, dtype=_dtype(args),
                 progress=not args.quiet, chunk_size=args.chunk)
    t1 = r["table1"]
    print(f"evaluated {r['data']['n_examples']} test examples in {time.perf_counter() - t0:.1f} s")
    for key in ("pde_nhf", "baseline", "identity"):
        if key in t1:
            e = t1[key]
            print(f"  W1 at T, {key:8s}: positions {e['q']['mean']:.4f} ± {e['q']['sem']:.4f}, "
                  f"momenta {e['p']['mean']:.4f} ± {e['p']['sem']:.4f}")
    print(f"  learned a = {r['model']['a']:.4f}")
    print(f"report: {args.out}/report.md")
    return 0


# ------------------------------------------------------------------ train --model baseline


def add_baseline_train_options(parser: argparse.ArgumentParser) -> None:
    """Add to `parser` (e.g. that of ``fastvp train``) the options of ``run_train_baseline``
    it does not have yet, and --device/--dtype/--seed if missing."""
    have = set(parser._option_string_actions)
    for flags, kw in BASELINE_TRAIN_OPTIONS:
        if not have.intersection(flags):
            parser.add_argument(*flags, **kw)
    if "--dtype" not in have:
        _common(parser, dtype="float32")


def run_train_baseline(args: argparse.Namespace) -> int:
    """Train the baseline (``fastvp train --model baseline``): needs args.data, out, epochs,
    batch_size, lr, hidden (None: default), device, dtype, seed; resume and quiet optional."""
    from pathlib import Path

    from .surrogate.baseline import HIDDEN, MODEL, BaselineConfig, train_baseline

    config = BaselineConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            hidden=getattr(args, "hidden", None) or HIDDEN, dtype=_dtype(args),
                            device=args.device, seed=args.seed,
                            checkpoint_every=getattr(args, "checkpoint_every", None))
    t0 = time.perf_counter()
    model = train_baseline(args.data, config, out=args.out, resume=getattr(args, "resume", False),
                           progress=not getattr(args, "quiet", False))
    from .distributed import is_main

    if not is_main():  # under torchrun rank 0 reports
        return 0
    last = model.history[-1] if model.history else {}
    best = next((h for h in model.history if h["epoch"] == model.kept_epoch), None)
    print(f"trained the baseline ({model.n_parameters:,} parameters) for {config.epochs} epochs "
          f"in {time.perf_counter() - t0:.1f} s; last train loss "
          f"{last.get('train_loss', float('nan')):.4g}")
    if best is not None and "val_w1_q" in best:
        print(f"  kept epoch {best['epoch']} (lowest validation W1): validation loss "
              f"{best['val_loss']:.4g}, W1 at T positions {best['val_w1_q']:.4f}, momenta "
              f"{best['val_w1_p']:.4f}")
    print(f"saved: {Path(args.out) / MODEL}")
    return 0


# ------------------------------------------------------------------ demo


def run_demo(args: argparse.Namespace) -> int:
    """``fastvp demo``: needs args.out, examples, model, seed, device, dtype."""
    from .evaluate import demo

    demo(args.out, n_examples=args.examples, model=args.model, seed=args.seed,
         device=args.device or "cpu", dtype=_dtype(args))
    return 0
