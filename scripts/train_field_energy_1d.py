"""Build the bundled "field-energy-1d" model (run from the repository root; resumable stages).

    fastvp simulate --out data/paper-seed0 --examples 32768 --seed 0
    python scripts/train_field_energy_1d.py data/paper-seed0 runs/field-energy-1d

This model is NOT the paper's method: V is constructed from the PIC field energy and fitted
to PIC forces at every stored snapshot, with a fixed at 1 (the "training" entry of its JSON
says so). The paper's likelihood-trained model is scripts/train_paper_1d.py.

Stage 1, the field-energy Deep Set (fastvp.surrogate.field_energy): V is set to the energy
of the particles' field on a grid of the centred frame, its window R from the largest
displacement in the train split, a = 1.
Stage 2, force matching by full-batch L-BFGS in float64 (fastvp.surrogate.pretrain): every
parameter of V is fitted to the PIC acceleration of a fixed set of training states
(``PER_SNAPSHOT`` examples of the train split at every snapshot). Only the train split is
read; the validation W1 at T is printed after each stage. The result is
runs/field-energy-1d/field-energy-1d.safetensors (+ .json) and its log.json.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import fastvp
from fastvp.surrogate.field_energy import field_energy_init, window_from_data, zero_field_offset
from fastvp.surrogate.pretrain import refine_forces_lbfgs

PER_SNAPSHOT, ITERATIONS, SEED = 100, 60, 0


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
    train = ds.split("train")
    log_path = out / "log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}  # a resumed run adds to it
    stage1 = out / "stage1-field-energy.safetensors"
    if stage1.exists():
        model = fastvp.Surrogate.load(stage1)
    else:
        window = window_from_data(np.concatenate([np.asarray(train.q(s)) for s in train.steps]))
        model = fastvp.Surrogate(ds.config).to(dtype=torch.float64)
        field_energy_init(model, ds.config, window)
        log["window"] = window
        model.save(stage1)
    log["stage1_val_w1"] = val_w1(model, ds)
    print("stage 1 validation W1 at T (q, p):", log["stage1_val_w1"], flush=True)
    stage2 = out / "stage2-lbfgs.safetensors"
    if stage2.exists():
        model = fastvp.Surrogate.load(stage2)
    else:
        t0 = time.perf_counter()
        res = refine_forces_lbfgs(model, ds, PER_SNAPSHOT, ITERATIONS, SEED, dtype=torch.float64)
        log["stage2"] = {**res, "seconds": time.perf_counter() - t0}
        model.to(dtype=torch.float64).save(stage2)
    log["stage2_val_w1"] = val_w1(model, ds)
    print("stage 2 validation W1 at T (q, p):", log["stage2_val_w1"], flush=True)
    model = model.to(dtype=torch.float64)
    zero_field_offset(model.V_net)  # V's constant only: the flow is unchanged
    model.training_info = {
        "objective": "field-energy + force matching", "supervised_times": [0.2, 0.4, 0.6, 0.8, 1.0],
        "init": "field-energy", "a_learned": False,
        "recipe": {"window": log.get("window"), "per_snapshot": PER_SNAPSHOT,
                   "iterations": ITERATIONS, "seed": SEED, "script": "scripts/train_field_energy_1d.py"},
        "data": str(data), "device": "cpu",
    }
    model.save(out / "field-energy-1d")
    log_path.write_text(json.dumps(log, indent=2) + "\n")
    print(log)


if __name__ == "__main__":
    main()
