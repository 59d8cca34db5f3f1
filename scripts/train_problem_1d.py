"""Train the bundled plasma-problem surrogates (two-stream-1d, landau-1d) by likelihood.

    python scripts/train_problem_1d.py landau-1d         # data/landau-1d, runs/landau-1d
    python scripts/train_problem_1d.py two-stream-1d

Each model: PDE-NHF with the periodic Fourier potential (``fastvp.surrogate.periodic``)
from a random start, trained by maximum likelihood on each train example's f0 (the
problem's initial density, its parameters only) and its t = T snapshot, `a` learned. The
dataset (random particle draws from f0, PIC leapfrog) is made first if missing. Resumable:
run the same command again after a kill (the run folder holds the checkpoint). At the end
the kept epoch (lowest validation W1 at T) is written to src/fastvp/weights/NAME.safetensors
(+ .json with its "training" and "problem" entries) and NAME.history.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from train_paper_1d import install  # scripts/ is on the path of a script run from it

import fastvp
from fastvp.files import atomic_write_text
from fastvp.surrogate.train import initial_model

#: Random restarts of the quadratic form's scale before gradient training, per model: the
#: two-stream likelihood is far from convex in it (past saturation, a wrong growth rate
#: leaves a pulled-back state in another basin), landau's is not.
RESTARTS = {"two-stream-1d": 16}

#: Further likelihood stages, each from the previous stage's kept model: name -> the
#: recipe's changes, per stage (no curriculum in them: the fraction is moot).
LATER_STAGES = {"two-stream-1d": [
    dict(epochs=12, lr=2e-3, warmup=10, curriculum_steps=None, curriculum_fraction=0.85),
    dict(epochs=12, lr=1e-3, warmup=10, curriculum_steps=None, curriculum_fraction=0.85),
]}

#: name -> (the problem, dataset examples, the training recipe)
RECIPES = {
    "landau-1d": (
        dict(name="landau", k=0.5, alpha=0.05, vth=1.0, particles=2**14, cells=64, dt=0.1,
             steps=200, save_every=200),
        512,
        dict(epochs=16, batch_size=4, lr=2e-2, warmup=20, steps=50, hidden=32, modes=8,
             curriculum_steps=25, curriculum_fraction=0.5, val_examples=32, val_w1_examples=32,
             potential="fourier", dtype=torch.float32),
    ),
    "two-stream-1d": (
        dict(name="two_stream", k=0.5, v0=1.0, vth=0.2, alpha=2e-3, particles=2**13, cells=64,
             dt=0.1, steps=200, save_every=200),
        512,
        dict(epochs=16, batch_size=4, lr=5e-3, warmup=20, steps=150, hidden=0, modes=16,
             curriculum_steps=75, curriculum_fraction=0.5, val_examples=32, val_w1_examples=32,
             potential="fourier", dtype=torch.float32, clip=10.0),
    ),
}


def dataset(name: str, root: Path) -> Path:
    """The recipe's dataset folder (made with PIC if missing): random draws from f0, seed 0."""
    spec, examples, _ = RECIPES[name]
    spec = dict(spec)
    problem = fastvp.problems.PROBLEMS[spec.pop("name")](**spec)
    out = root / name
    if not (out / "metadata.json").exists():
        fastvp.generate_dataset(out, examples, problem=problem, seed=0, resume=out.exists())
    return out


def random_restarts(data: Path, config: fastvp.TrainConfig, draws: int, examples: int = 8,
                    seed: int = 0) -> tuple[fastvp.Surrogate, dict]:
    """A start found by likelihood: `draws` random models whose quadratic form has one
    shared scale theta_m = u ~ U(0, 2) (the rest torch's seeded initialisation), scored by
    the NLL of `examples` train examples pulled back with K = config.curriculum_steps (or
    config.steps without a curriculum);
    the best is returned with the record of the search."""
    ds = fastvp.load_dataset(data)
    train = ds.split("train")
    n, last = min(examples, len(train)), train.steps[-1]
    dtype = config.dtype
    qT = torch.as_tensor(train.q(last)[:n], dtype=dtype)
    pT = torch.as_tensor(train.p(last)[:n], dtype=dtype)
    f0 = train.distribution().subset(range(n))
    gen = torch.Generator().manual_seed(seed)
    best, scores = None, []
    for i in range(draws):
        model = initial_model(config, ds.config, ds).to(dtype=dtype)
        scale = 2 * torch.rand((), generator=gen, dtype=torch.float64).item()
        with torch.no_grad():
            model.V_net.quadratic.fill_(scale)
            q0, p0 = model.pullback(qT, pT, ds.config.final_time, steps=config.curriculum_steps)
            nll = -f0.log_prob(q0, p0).mean().item()
        scores.append({"scale": scale, "nll": nll})
        print(f"restart {i}: theta scale {scale:.3f}, NLL {nll:.1f}", flush=True)
        if best is None or nll < best[1]:
            best = (model, nll)
    return best[0], {"draws": draws, "examples": n, "scores": scores}


def later_stage(first: fastvp.Surrogate, data: Path, config: fastvp.TrainConfig, out: Path,
                stage: int) -> fastvp.Surrogate:
    """Train on by likelihood from the previous stage's kept model (a run folder of its own,
    resumable); the result's history holds every stage's epochs, numbered on, and its
    training entry every stage's recipe, epochs and wall time."""
    model = fastvp.train(data, config, out=out, resume=(out / "checkpoint.pt").exists(), model=first)
    one, two = first.training_info, model.training_info
    offset_epochs, offset_time = len(first.history), first.history[-1]["elapsed"]
    rows = [dict(r) for r in first.history]
    for r in model.history:
        rows.append({**r, "epoch": r["epoch"] + offset_epochs, "elapsed": r["elapsed"] + offset_time,
                     "kept": r["kept"] + offset_epochs, "stage": stage})
    model.history = rows
    model.kept_epoch = model.kept_epoch + offset_epochs
    keys = ("recipe", "epochs", "kept_epoch", "wall_hours")
    stages = one.get("stages", [{k: one[k] for k in keys}]) + [{k: two[k] for k in keys}]
    words = (f"stage {stage}: lr {config.lr:g}, {config.warmup}-step warm-up, no curriculum "
             f"(K = {config.steps}), {config.epochs} epochs")
    model.training_info = {
        **two, "init": one["init"] + f"; then {words}, from that model",
        "epochs": len(rows), "kept_epoch": model.kept_epoch,
        "wall_hours": one["wall_hours"] + two["wall_hours"], "stages": stages,
        **({"restarts": one["restarts"]} if "restarts" in one else {})}
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(RECIPES), help="the bundled model to train")
    p.add_argument("--data-root", default="data", help="where the dataset folder goes")
    p.add_argument("--runs", default="runs", help="where the run folder goes")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--no-install", action="store_true", help="do not copy into the package")
    args = p.parse_args(argv)
    data = dataset(args.name, Path(args.data_root))
    out = Path(args.runs) / args.name
    config = fastvp.TrainConfig(threads=args.threads, **RECIPES[args.name][2])
    resume = (out / "checkpoint.pt").exists()
    t0 = time.perf_counter()
    start, search = None, None
    if args.name in RESTARTS:
        torch.set_num_threads(args.threads)
        start, search = random_restarts(data, config, RESTARTS[args.name])
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "restarts.json", json.dumps(search, indent=1) + "\n")
    model = fastvp.train(data, config, out=out, resume=resume, model=start)
    if search is not None:
        model.training_info = {**model.training_info, "init": (
            f"random restarts: {search['draws']} seeded random models with theta_m = u ~ U(0, 2) "
            f"shared by the modes, the best by the likelihood of {search['examples']} train "
            "examples (t = T snapshots), then trained by likelihood"), "restarts": search}
    for i, changes in enumerate(LATER_STAGES.get(args.name, []), start=2):
        model = later_stage(model, data, config.replace(**changes),
                            Path(args.runs) / f"{args.name}-stage{i}", i)
    print(f"kept epoch {model.kept_epoch} of {len(model.history)} "
          f"({time.perf_counter() - t0:.0f} s this session): "
          f"{json.dumps(model.history[model.kept_epoch - 1])}")
    if args.no_install:
        return 0
    install(model, args.name, f"scripts/train_problem_1d.py {args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
