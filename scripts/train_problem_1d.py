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

import fastvp
from fastvp.files import atomic_write_text

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "fastvp" / "weights"

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
        dict(epochs=16, batch_size=4, lr=2e-2, warmup=20, steps=150, hidden=32, modes=16,
             curriculum_steps=75, curriculum_fraction=0.5, val_examples=32, val_w1_examples=32,
             potential="fourier", dtype=torch.float32),
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
    model = fastvp.train(data, config, out=out, resume=resume)
    print(f"kept epoch {model.kept_epoch} of {len(model.history)} "
          f"({time.perf_counter() - t0:.0f} s this session): "
          f"{json.dumps(model.history[model.kept_epoch - 1])}")
    if args.no_install:
        return 0
    model.training_info = {**model.training_info,
                           "script": f"scripts/train_problem_1d.py {args.name}"}
    model.save(WEIGHTS / args.name)
    atomic_write_text(WEIGHTS / f"{args.name}.history.json", json.dumps(model.history, indent=1) + "\n")
    print(f"installed {WEIGHTS / args.name}.safetensors (+ .json, .history.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
