"""Train the bundled "paper-1d" model (run from the repository root; resumable stages).

    fastvp simulate --out data/paper-seed0 --examples 32768 --seed 0
    python scripts/train_paper_1d.py data/paper-seed0 runs/paper-1d [fm_steps]

Stage 1, force matching (fastvp.surrogate.pretrain): the Deep Set's -dV/dq is fitted to
the PIC acceleration of every stored snapshot of the train split, a = 1.
Stages 2 and 3, full-batch L-BFGS on the same loss over fixed sets of training states
(200, then 300 examples per snapshot). The result is runs/paper-1d/paper-1d.safetensors.
(Fine-tuning with the paper's maximum likelihood, fastvp.train(model=...), was tried from
stage 1 and raised the validation W1 after two epochs: 0.147/0.243 -> 0.217/0.291.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import fastvp
from fastvp.surrogate.pretrain import PretrainConfig, pretrain_forces, refine_forces_lbfgs


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
    # stages 2 and 3: full-batch L-BFGS on growing fixed sets of training states
    for stage, (per_snapshot, iterations, seed) in ((2, (200, 300, 0)), (3, (300, 150, 1))):
        path = out / f"stage{stage}-lbfgs.safetensors"
        if path.exists():
            model = fastvp.Surrogate.load(path).to(dtype=torch.float32)
        else:
            res = refine_forces_lbfgs(model, ds, per_snapshot, iterations, seed)
            log[f"stage{stage}_train_force_error"] = res["loss"]
            model.save(path)
        log[f"stage{stage}_val_w1"] = val_w1(model, ds)
        print(f"stage {stage} validation W1 (q, p):", log[f"stage{stage}_val_w1"], flush=True)
    model.to(dtype=torch.float64).save(out / "paper-1d")
    (out / "log.json").write_text(json.dumps(log, indent=2))
    print(log)


if __name__ == "__main__":
    main()
