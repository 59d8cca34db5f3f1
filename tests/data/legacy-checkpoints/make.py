# Run with the pre-refactor code (commit ecfb542): writes fixtures for the resume-compat test.
import shutil
from pathlib import Path

import torch

import fastvp
from fastvp.surrogate.baseline import BaselineConfig, train_baseline

root = Path("/work/main/tests/data/legacy-checkpoints")
cfg = fastvp.PICConfig(n_particles=8, steps=10, save_every=5)
ds = fastvp.generate_dataset(root / "data", n_examples=40, config=cfg, seed=3, progress=False)
tc = dict(epochs=1, batch_size=8, hidden=8, seed=5, steps=4, dtype="float64", device="cpu")
fastvp.train(root / "data", fastvp.TrainConfig(**tc), out=root / "nhf-run", progress=False)
shutil.copytree(root / "nhf-run", "/tmp/nhf-cont")
m = fastvp.train(root / "data", fastvp.TrainConfig(**{**tc, "epochs": 2}), out="/tmp/nhf-cont",
                 resume=True, progress=False)
m.save(root / "nhf-expected-epoch2")
bc = dict(epochs=1, batch_size=8, hidden=8, seed=5, dtype=torch.float64, device="cpu")
train_baseline(root / "data", BaselineConfig(**bc), out=root / "baseline-run", progress=False)
shutil.copytree(root / "baseline-run", "/tmp/base-cont")
b = train_baseline(root / "data", BaselineConfig(**{**bc, "epochs": 2}), out="/tmp/base-cont",
                   resume=True, progress=False)
b.save(root / "baseline-expected-epoch2")
