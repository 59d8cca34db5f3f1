"""`fastvp train --recipe NAME` starts from that recipe's TrainConfig (no training is run)."""

from __future__ import annotations

import pytest
import torch

import fastvp.surrogate.train as train_module
from fastvp import TrainConfig
from fastvp.cli import main


class _Stop(Exception):
    """Raised by the stand-in of ``train`` once it has seen the config."""


@pytest.fixture
def chosen(monkeypatch, tmp_path):
    """run(*flags) -> the TrainConfig `fastvp train` passes to ``train``."""
    seen = {}

    def fake_train(data, config, **kwargs):
        seen["config"] = config
        raise _Stop

    monkeypatch.setattr(train_module, "train", fake_train)

    def run(*flags):
        with pytest.raises(_Stop):
            main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                  "--quiet", *flags])
        return seen["config"]

    return run


def test_quick_recipe_settings():
    quick, fastvp = TrainConfig.quick(), TrainConfig()
    # fastvp's recipe (rates per layer, cosine, K = 5 then 25, float32), shorter
    assert quick.epochs == 30 and quick.epochs < fastvp.epochs and quick.warmup == 20
    assert (quick.val_examples, quick.val_w1_examples) == (64, 128)
    for name in ("lr", "schedule", "min_lr_ratio", "batch_size", "hidden", "steps",
                 "curriculum_steps", "curriculum_fraction", "lr_pool", "lr_phi0", "method"):
        assert getattr(quick, name) == getattr(fastvp, name), name
    assert quick.dtype == torch.float32 and quick.steps == 25 and quick.curriculum_steps == 5
    assert TrainConfig.quick(epochs=3).epochs == 3


@pytest.mark.parametrize("recipe, expected", [("quick", TrainConfig.quick), ("paper", TrainConfig.paper),
                                              ("fastvp", TrainConfig)])
def test_recipe_flag_selects_the_recipe(chosen, recipe, expected):
    config = chosen("--recipe", recipe, "--threads", "1")
    assert config == expected(threads=1)


def test_flags_override_the_quick_recipe(chosen):
    config = chosen("--recipe", "quick", "--epochs", "3", "--hidden", "64")
    assert config == TrainConfig.quick(epochs=3, hidden=64)


def test_default_recipe_is_fastvps(chosen):
    assert chosen() == TrainConfig()
