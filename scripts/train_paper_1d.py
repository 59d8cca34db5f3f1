"""Train the bundled "paper-1d" model (run from the repository root; resumable stages).

    fastvp simulate --out data/paper-seed0 --examples 32768 --seed 0
    python scripts/train_paper_1d.py data/paper-seed0 runs/paper-1d [fm_steps] [epochs]

Stage 1, force matching (fastvp.surrogate.pretrain): the Deep Set's -dV/dq is fitted to
the PIC acceleration of every stored snapshot of the train split, a = 1.
Stage 2, the paper's maximum likelihood (fastvp.train) from that start: pull the final
states back with K = 25 and maximise the Gaussian log-likelihood; cosine schedule.
The model of the stage with the lower validation W1 at T is written to
runs/paper-1d/paper-1d.safetensors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import fastvp
from fastvp.surrogate.pretrain import PretrainConfig, pretrain_forces


def val_w1(model, ds, n=512):
    val = ds.split("val")
    batch = val.batch(0, dtype=torch.float32)[:n]
    q, p = model.sample(ds.config.final_time, batch)
    qT = torch.as_tensor(val.q(ds.config.steps)[:n], dtype=torch.float32)
    pT = torch.as_tensor(val.p(ds.config.steps)[:n], dtype=torch.float32)
    return (fastvp.wasserstein_1d(q, qT).mean().item(), fastvp.wasserstein_1d(p, pT).mean().item())


def main():
    data, out = sys.argv[1], Path(sys.argv[2])
    fm_steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    out.mkdir(parents=True, exist_ok=True)
    ds = fastvp.load_dataset(data)
    log = {}
    stage1 = out / "stage1-forces.safetensors"
    if stage1.exists():
        model = fastvp.Surrogate.load(stage1)
    else:
        torch.manual_seed(0)
        model = fastvp.Surrogate(ds.config)
        res = pretrain_forces(model, ds, PretrainConfig(steps=fm_steps, batch_size=64, lr=5e-4, seed=0))
        log["force_matching_val_loss"] = res["val_loss"]
        model.save(stage1)
    model = model.to(dtype=torch.float32)
    log["stage1_val_w1"] = val_w1(model, ds)
    print("stage 1 validation W1 (q, p):", log["stage1_val_w1"], flush=True)
    cfg = fastvp.TrainConfig(epochs=epochs, batch_size=128, lr=1e-4, steps=25, seed=0,
                             schedule="cosine", min_lr_ratio=0.05, val_examples=512,
                             checkpoint_every=25, method="compiled")
    resume = (out / "stage2" / "checkpoint.pt").exists()
    model2 = fastvp.train(ds, cfg, out=out / "stage2", resume=resume, model=model)
    model2 = model2.to(dtype=torch.float32)
    log["stage2_val_w1"] = val_w1(model2, ds)
    print("stage 2 validation W1 (q, p):", log["stage2_val_w1"], flush=True)
    best = model2 if sum(log["stage2_val_w1"]) <= sum(log["stage1_val_w1"]) else model
    log["chosen"] = "stage2" if best is model2 else "stage1"
    best.to(dtype=torch.float64).save(out / "paper-1d")
    (out / "log.json").write_text(json.dumps(log, indent=2))
    print(log)


if __name__ == "__main__":
    main()
