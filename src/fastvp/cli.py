"""The ``fastvp`` command line: simulate | train | sample | evaluate | demo."""

from __future__ import annotations

import argparse
import sys
import time

import torch


def add_common(parser: argparse.ArgumentParser, dtype: str = "float64") -> None:
    """--device, --dtype, --seed: shared by every subcommand."""
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--dtype", default=dtype, choices=["float32", "float64"],
                        help=f"floating-point precision (default: {dtype})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def _simulate(args: argparse.Namespace) -> int:
    from .config import PICConfig
    from .data import generate_dataset

    if args.dtype != "float64":
        raise ValueError(f"--dtype must be float64 for datasets (the official layout), got {args.dtype!r}")
    cfg = PICConfig(scheme=args.scheme, interaction=args.interaction, steps=args.steps, dt=args.dt,
                    save_every=args.save_every, n_particles=args.particles)
    t0 = time.perf_counter()
    ds = generate_dataset(args.out, n_examples=args.examples, config=cfg, seed=args.seed,
                          chunk_size=args.chunk, device=args.device, resume=args.resume,
                          overwrite=args.overwrite, progress=not args.quiet)
    dt = time.perf_counter() - t0
    from .distributed import is_main

    if is_main():  # one line under torchrun, not one per rank
        print(f"wrote {len(ds)} examples ({cfg.scheme}, {cfg.interaction}) to {args.out} in {dt:.1f} s")
    return 0


def _train(args: argparse.Namespace) -> int:
    from . import distributed as dist
    from .eval_commands import run_train_baseline
    from .surrogate.commands import run_train

    run = run_train_baseline if args.model == "baseline" else run_train
    if not dist.launched():
        return run(args)
    # under torchrun: one process group for the whole command (DDP training), left after
    backend = "nccl" if dist.device(args.device).type == "cuda" else "gloo"
    with dist.session(backend):
        return run(args)


def build_parser() -> argparse.ArgumentParser:
    from .config import INTERACTIONS, SCHEMES, PICConfig

    paper = PICConfig()
    parser = argparse.ArgumentParser(
        prog="fastvp",
        description="Batched PIC for 1D Vlasov-Poisson and PDE-NHF, its Hamiltonian-flow surrogate.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="generate a PIC dataset folder (official .npy layout)")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--examples", type=int, default=32768, help="number of examples (default 32768)")
    sim.add_argument("--scheme", default="leapfrog", choices=SCHEMES)
    sim.add_argument("--interaction", default="electrostatic", choices=INTERACTIONS)
    sim.add_argument("--steps", type=int, default=paper.steps)
    sim.add_argument("--dt", type=float, default=paper.dt)
    sim.add_argument("--save-every", type=int, default=paper.save_every)
    sim.add_argument("--particles", type=int, default=paper.n_particles)
    sim.add_argument("--chunk", type=int, default=None, help="examples per chunk (bounds memory)")
    sim.add_argument("--resume", action="store_true", help="continue an interrupted generation")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(sim)
    sim.set_defaults(func=_simulate)

    from .eval_commands import add_baseline_train_options, add_evaluate_parser, run_demo
    from .surrogate.commands import add_sample_parser, add_train_parser

    train = add_train_parser(sub)
    train.add_argument("--model", default="pde-nhf", choices=["pde-nhf", "baseline"],
                       help="what to train: the PDE-NHF surrogate or the paper's MLP baseline")
    add_baseline_train_options(train)
    train.set_defaults(func=_train)
    add_sample_parser(sub)
    add_evaluate_parser(sub)

    demo = sub.add_parser("demo", help="PIC vs the bundled surrogate on a paper-preset batch (CPU, seconds)")
    demo.add_argument("--out", default="fastvp-demo", help="folder for the figure (default fastvp-demo)")
    demo.add_argument("--examples", type=int, default=128, help="batch size (default 128)")
    demo.add_argument("--model", default="paper-1d", help="bundled model name or file")
    add_common(demo, dtype="float32")
    demo.set_defaults(func=run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "dtype", None):
        args.torch_dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"fastvp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
