"""Train the bundled likelihood models with fastvp's recipe (``fastvp.TrainConfig()``).

    fastvp simulate --out data/paper-seed0 --examples 32768 --seed 0
    python scripts/train_paper_1d.py data/paper-seed0 runs/paper-1d --name paper-1d

    fastvp simulate --out data/official-seed0 --scheme official --examples 32768 --seed 0
    python scripts/train_paper_1d.py data/official-seed0 runs/official --name paper-1d-official-scheme

The paper's method: a Deep Set potential from a random start, trained by maximum likelihood
on each train example's initial Gaussian (Cond.npy) and its t = T snapshot only, `a`
learned. Resumable: run the same command again after a kill (the run folder holds the
checkpoint). At the end the kept epoch (lowest validation W1 at T) is written to
src/fastvp/weights/NAME.safetensors (+ .json, whose "training" entry records the recipe,
the epochs and the wall time) and NAME.history.json (one row per epoch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import fastvp
from fastvp.files import atomic_write_text

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "fastvp" / "weights"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="dataset folder")
    p.add_argument("out", help="run folder (checkpoint.pt, model.safetensors, history.json)")
    p.add_argument("--name", default="paper-1d", help="bundled name to write (default paper-1d)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--no-install", action="store_true", help="do not copy into the package")
    args = p.parse_args(argv)
    out = Path(args.out)
    config = fastvp.TrainConfig(threads=args.threads)
    resume = (out / "checkpoint.pt").exists()
    model = fastvp.train(args.data, config, out=out, resume=resume)
    print(f"kept epoch {model.kept_epoch} of {len(model.history)}: "
          f"{json.dumps(model.history[model.kept_epoch - 1])}")
    if args.no_install:
        return 0
    install(model, args.name, f"scripts/train_paper_1d.py {args.data} {args.out} --name {args.name}")
    return 0


def install(model: fastvp.Surrogate, name: str, script: str) -> None:
    """Write `model` as the bundled NAME (.safetensors + .json, its training entry naming
    `script`) and its per-epoch history as NAME.history.json."""
    model.training_info = {**model.training_info, "a_learned": True, "script": script}
    model.save(WEIGHTS / name)
    atomic_write_text(WEIGHTS / f"{name}.history.json", json.dumps(model.history, indent=1) + "\n")
    print(f"installed {WEIGHTS / name}.safetensors (+ .json, .history.json)")


if __name__ == "__main__":
    sys.exit(main())
