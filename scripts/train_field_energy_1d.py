"""Build the bundled "field-energy-1d" model (run from the repository root).

    fastvp simulate --out data/paper-seed0 --examples 32768 --seed 0
    python scripts/train_field_energy_1d.py data/paper-seed0 runs/field-energy-1d

This model is NOT the paper's method: V is constructed from the PIC field energy and fitted
to PIC forces at every stored snapshot, with a fixed at 1 (the "training" entry of its JSON
says so). The paper's likelihood-trained model is scripts/train_paper_1d.py.

The recipe is ``fastvp.surrogate.field_energy.build_field_energy_model`` with its defaults
(the same steps as ``fastvp train --init field-energy``):
stage 1, the field-energy Deep Set: V is set to the energy of the particles' field on a grid
of the centred frame, its window R from the largest displacement in the train split, a = 1;
stage 2, force matching by full-batch L-BFGS in float64: every parameter of V is fitted to
the PIC acceleration of a fixed set of training states (``PER_SNAPSHOT`` examples of the
train split at every snapshot). Only the train split is read; the validation W1 at T is
printed after each stage. The result is runs/field-energy-1d/field-energy-1d.safetensors
(+ .json) and its log.json.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import torch

import fastvp
from fastvp.surrogate.field_energy import ITERATIONS, PER_SNAPSHOT, SEED, build_field_energy_model


def val_w1(model, ds, n=1024):
    val = ds.split("val")
    batch = val.batch(0, dtype=torch.float32)[:n]
    q, p = copy.deepcopy(model).to(dtype=torch.float32).sample(ds.config.final_time, batch)
    qT = torch.as_tensor(val.q(ds.config.steps)[:n], dtype=torch.float32)
    pT = torch.as_tensor(val.p(ds.config.steps)[:n], dtype=torch.float32)
    return (fastvp.wasserstein_1d(q, qT).mean().item(), fastvp.wasserstein_1d(p, pT).mean().item())


def main():
    data, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    ds = fastvp.load_dataset(data)
    log = {}

    def after_stage(stage, model):
        log[f"{stage}_val_w1"] = val_w1(model, ds)
        print(f"{stage}: validation W1 at T (q, p):", log[f"{stage}_val_w1"], flush=True)

    t0 = time.perf_counter()
    model, info = build_field_energy_model(ds, per_snapshot=PER_SNAPSHOT, iterations=ITERATIONS, seed=SEED,
                                           after_stage=after_stage)
    log.update(info, seconds=time.perf_counter() - t0)
    model.training_info = {
        "objective": "field-energy + force matching", "supervised_times": [0.2, 0.4, 0.6, 0.8, 1.0],
        "init": "field-energy", "a_learned": False,
        "recipe": {"window": info["window"], "per_snapshot": PER_SNAPSHOT, "iterations": ITERATIONS,
                   "seed": SEED, "function": "fastvp.surrogate.field_energy.build_field_energy_model",
                   "script": "scripts/train_field_energy_1d.py"},
        "data": str(data), "device": "cpu",
    }
    model.save(out / "field-energy-1d")
    (out / "log.json").write_text(json.dumps(log, indent=2) + "\n")
    print(log)


if __name__ == "__main__":
    main()
