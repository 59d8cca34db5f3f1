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
    print(f"wrote {len(ds)} examples ({cfg.scheme}, {cfg.interaction}) to {args.out} in {dt:.1f} s")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .config import PICConfig
    from .initial import initial_conditions
    from .metrics import wasserstein_1d
    from .pic.simulate import simulate

    cfg = PICConfig()
    batch = initial_conditions(args.examples, cfg, seed=args.seed, device=args.device)
    simulate(batch[:8], cfg)  # warm-up
    t0 = time.perf_counter()
    traj = simulate(batch, cfg)
    elapsed = time.perf_counter() - t0
    w_q = wasserstein_1d(traj.q[-1], traj.q[0]).mean().item()
    w_p = wasserstein_1d(traj.p[-1], traj.p[0]).mean().item()
    print(f"PIC: {len(batch)} examples x {cfg.n_particles} particles, {cfg.steps} steps in "
          f"{elapsed * 1e3:.1f} ms ({elapsed / len(batch) * 1e6:.1f} us per example)")
    print(f"W1(initial, final) at T={cfg.final_time:g}: positions {w_q:.3f}, momenta {w_p:.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(traj.q[0, 0].cpu(), traj.p[0, 0].cpu(), s=6, label="t = 0")
    ax.scatter(traj.q[-1, 0].cpu(), traj.p[-1, 0].cpu(), s=6, label=f"t = {cfg.final_time:g} (PIC)")
    ax.set(xlabel="position q", ylabel="momentum p", title="Phase space of example 0")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "demo.png.partial.png", dpi=120)
    plt.close(fig)
    (out / "demo.png.partial.png").replace(out / "demo.png")
    print(f"figure: {out / 'demo.png'}")
    return 0


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

    demo = sub.add_parser("demo", help="PIC vs the bundled surrogate on a paper-preset batch (CPU, seconds)")
    demo.add_argument("--out", default="fastvp-demo", help="folder for the figure (default fastvp-demo)")
    demo.add_argument("--examples", type=int, default=256, help="batch size (default 256)")
    demo.add_argument("--model", default="paper-1d", help="bundled model name or file")
    add_common(demo)
    demo.set_defaults(func=_demo)
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
