"""``fastvp train``: PDE-NHF by maximum likelihood (or, ``--model baseline``, the paper's MLPs)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import distributed as dist
from ..surrogate.baseline import BaselineConfig
from ..surrogate.checkpoint import CHECKPOINT, saved_config
from ..surrogate.field_energy import build_field_energy_model
from ..surrogate.model import Surrogate
from ..surrogate.pretrain import PretrainConfig, pretrain_forces
from ..surrogate.train import TrainConfig
from ._common import add_common, add_flags, check_out, flags, given, seed

#: Settings both trainers share (``loop.LoopConfig``) as flags.
LOOP_FLAGS = flags("epochs", "batch_size", "lr", "warmup", "schedule", "min_lr_ratio", "clip",
                   "checkpoint_every", "max_bad_steps")
#: PDE-NHF's own settings as flags.
NHF_FLAGS = flags("steps", "hidden", "curriculum_steps", "curriculum_fraction", "init_scale",
                  "lr_pool", "lr_phi0", "method", "val_examples", "val_w1_examples", "snapshots",
                  "potential", "modes")
#: --recipe: the configs' defaults.
RECIPES = {"fastvp": TrainConfig, "paper": TrainConfig.paper, "quick": TrainConfig.quick}
#: Flags whose 0 means "none" (the config's None).
ZERO_IS_NONE = ("curriculum_steps", "val_examples")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train PDE-NHF (or the baseline) on a dataset folder",
                       description="Train PDE-NHF by maximum likelihood on the final snapshots of a "
                       "dataset folder (its train split; the val split is scored each epoch). "
                       "Launched by torchrun, trains data-parallel (DDP) on all its ranks. On "
                       "--resume, settings not given keep the run's saved values.")
    p.add_argument("--data", required=True, help="dataset folder (fastvp or official layout)")
    p.add_argument("--out", required=True,
                   help="run folder: checkpoint.pt, model.safetensors (the kept epoch), history.json")
    p.add_argument("--model", default="pde-nhf", choices=["pde-nhf", "baseline"],
                   help="what to train: the PDE-NHF surrogate or the paper's MLP baseline")
    p.add_argument("--recipe", default="fastvp", choices=list(RECIPES),
                   help="the defaults: fastvp's recipe (TrainConfig()), the paper's "
                   "(TrainConfig.paper(): float64, constant lr 3e-4, 200 epochs) or quick "
                   "(TrainConfig.quick(): fastvp's in 30 epochs, a few minutes on one CPU core)")
    add_flags(p, LOOP_FLAGS, TrainConfig())
    add_flags(p, NHF_FLAGS, TrainConfig())
    p.add_argument("--init", default="random", metavar="random|field-energy|PATH",
                   help="PDE-NHF's start: torch's random initialisation, the field-energy Deep Set "
                   "(built from the PIC physics and fitted to its forces, as the bundled "
                   "field-energy-1d: fastvp.surrogate.field_energy.build_field_energy_model), or a "
                   "model file (default: random)")
    p.add_argument("--compile", action="store_true", help="the same as --method compiled")
    p.add_argument("--pretrain-forces", type=int, default=0, metavar="STEPS",
                   help="first fit -dV/dq to the PIC forces of the stored snapshots for STEPS steps "
                   "(a physics-informed warm start; fastvp.surrogate.pretrain)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    add_common(p, dtype="float32", dtype_help=": training in float64 is about 1.5x slower "
               "(--recipe paper: float64)",
               seed_help="random seed (default: 0; a resumed run keeps its own)")
    p.set_defaults(func=run, dtype=None)
    return p


def run(args: argparse.Namespace) -> int:
    check_out(args.out)  # before the data is read or a model built
    runner = _run_baseline if args.model == "baseline" else _run_nhf
    if not dist.launched():
        return runner(args)
    # under torchrun: one process group for the whole command (DDP training), left after
    backend = "nccl" if dist.device(args.device).type == "cuda" else "gloo"
    with dist.session(backend):
        return runner(args)


def _settings(args: argparse.Namespace, flags, config_cls, base, migrate) -> object:
    """The config: the saved one of a resumed run, else the recipe's; flags given override."""
    chosen = {**given(args, flags), "seed": args.seed, "dtype": args.dtype,
              "threads": args.threads, "device": args.device}
    chosen = {k: v for k, v in chosen.items() if v is not None}
    chosen.update({k: None for k in ZERO_IS_NONE if chosen.get(k) == 0})
    if args.resume and (Path(args.out) / CHECKPOINT).exists():
        base = saved_config(Path(args.out) / CHECKPOINT, config_cls, migrate)
    return base.replace(**chosen)


def _start_model(args: argparse.Namespace, config: TrainConfig):
    """The model to start from: None (random), the field-energy Deep Set, a model file, or a
    force-matched warm start (--pretrain-forces)."""
    if args.resume or (args.init == "random" and not args.pretrain_forces):
        return None
    from ..data import load_dataset, require_gaussian

    ds = load_dataset(args.data)
    require_gaussian(ds)  # before a warm start is built for data train() refuses
    if args.init == "field-energy":
        # the bundled field-energy-1d's recipe: the field-energy Deep Set, then its force fit
        start, _ = build_field_energy_model(ds, steps=config.steps, hidden=config.hidden,
                                            verbose=not args.quiet and dist.is_main())
    elif args.init != "random":
        if not Path(args.init).exists():
            raise ValueError(f"--init must be random, field-energy or a model file, got "
                             f"{args.init!r} (no such file)")
        start = Surrogate.load(args.init)
    else:
        from ..surrogate.train import initial_model

        start = initial_model(config, ds.config)
    if args.pretrain_forces:
        _pretrain(args, ds, start)
    return start


def _pretrain(args: argparse.Namespace, ds, start) -> None:
    # under torchrun every rank runs the same warm start (DDP then starts all ranks from
    # rank 0's parameters); no rank waits idle in a collective meanwhile
    device = dist.device(args.device) if dist.is_initialized() else args.device
    res = pretrain_forces(start, ds, PretrainConfig(steps=args.pretrain_forces, seed=seed(args),
                                                    device=device),
                          progress=not args.quiet and dist.is_main())
    if dist.is_main():
        print(f"force matching: {args.pretrain_forces} steps, relative force error on "
              f"validation states {res['val_loss']:.3g}")


def _run_nhf(args: argparse.Namespace) -> int:
    from ..surrogate.train import migrate, train

    base = RECIPES[args.recipe]()
    config = _settings(args, LOOP_FLAGS + NHF_FLAGS, TrainConfig, base, migrate)
    if args.compile:
        config = config.replace(method="compiled")
    t0 = time.perf_counter()
    model = train(args.data, config, out=args.out, resume=args.resume, progress=not args.quiet,
                  model=_start_model(args, config))
    if dist.is_main():  # one line under torchrun, not one per rank
        ranks = f" on {dist.world_size()} ranks" if dist.world_size() > 1 else ""
        print(f"trained {config.epochs} epochs{ranks} in {time.perf_counter() - t0:.1f} s; "
              f"{_kept(model)}; a = {model.a.item():.4f}; model in {args.out}")
    return 0


def _kept(model) -> str:
    row = next((h for h in model.history if h["epoch"] == model.kept_epoch), None)
    if row is None:
        return "no epoch scored"
    text = f"kept epoch {row['epoch']}: val loss {row.get('val_loss', float('nan')):.4g}"
    if "val_w1_q_pct" in row:
        text += (f", W1 at T {row['val_w1_q']:.4f} / {row['val_w1_p']:.4f} "
                 f"({row['val_w1_q_pct']:.2f} % / {row['val_w1_p_pct']:.2f} % of the identity)")
    return text


def _run_baseline(args: argparse.Namespace) -> int:
    from ..surrogate.baseline import migrate, train_baseline

    flags = LOOP_FLAGS + tuple(f for f in NHF_FLAGS if f.field == "hidden")
    config = _settings(args, flags, BaselineConfig, BaselineConfig(), migrate)
    t0 = time.perf_counter()
    model = train_baseline(args.data, config, out=args.out, resume=args.resume,
                           progress=not args.quiet)
    if dist.is_main():  # under torchrun rank 0 reports
        print(f"trained the baseline ({model.n_parameters:,} parameters) for {config.epochs} "
              f"epochs in {time.perf_counter() - t0:.1f} s; {_kept(model)}")
        print(f"saved: {Path(args.out) / 'model.safetensors'}")
    return 0
