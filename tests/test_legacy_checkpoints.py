"""Run folders written before the shared training loop (formats fastvp-train/1 and
fastvp-baseline-train/1, made by tests/data/legacy-checkpoints/make.py with the code of
that time) still resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

import fastvp
from fastvp.surrogate.baseline import Baseline, BaselineConfig, train_baseline

from .recipes import PLAIN

LEGACY = Path(__file__).parent / "data" / "legacy-checkpoints"
NHF = dict(batch_size=8, hidden=8, seed=5, steps=4, dtype="float64", device="cpu", **PLAIN, lr=3e-4)
BASE = dict(batch_size=8, hidden=8, seed=5, dtype=torch.float64, device="cpu")


def test_a_legacy_pde_nhf_run_resumes_to_what_the_old_code_gave(tmp_path):
    run = shutil.copytree(LEGACY / "nhf-run", tmp_path / "run")
    model = fastvp.train(LEGACY / "data", fastvp.TrainConfig(epochs=2, **NHF), run, resume=True,
                         progress=False)
    expected = fastvp.Surrogate.load(LEGACY / "nhf-expected-epoch2.safetensors")
    for (k, a), (_, b) in zip(model.state_dict().items(), expected.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]  # the old 0-based epoch renumbered
    assert history[-1]["kept"] == 2 and "val_w1_q_pct" in history[-1]


def test_a_legacy_baseline_run_resumes(tmp_path):
    run = shutil.copytree(LEGACY / "baseline-run", tmp_path / "run")
    before = json.loads((run / "history.json").read_text())
    model = train_baseline(LEGACY / "data", BaselineConfig(epochs=2, **BASE), run, resume=True,
                           progress=False)
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0]["val_loss"] == before[0]["val_loss"]  # the old epoch is kept as it was
    assert all(torch.isfinite(p).all() for p in model.parameters())
    saved = Baseline.load(run / "model.safetensors")
    assert saved.history == history
