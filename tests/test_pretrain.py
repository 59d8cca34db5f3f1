"""Force matching: the PIC acceleration, and a potential fitted to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastvp
from fastvp.surrogate.pretrain import PretrainConfig, force_loss, pic_acceleration, pretrain_forces

from . import numpy_pic


def test_pic_acceleration_is_the_simulators_field():
    cfg = fastvp.PICConfig()
    batch = fastvp.initial_conditions(3, cfg, seed=1)
    acc = pic_acceleration(batch.q, cfg)
    ref = np.stack([numpy_pic.field_at_particles(q, 128.0, 128, 0.1) for q in batch.q.numpy()])
    np.testing.assert_allclose(acc.numpy(), ref, atol=1e-12)
    # one leapfrog step of the simulator is a kick by this acceleration
    one = fastvp.simulate(batch, cfg.replace(steps=1, save_every=1))
    v_half = batch.p + 0.5 * cfg.dt * acc
    x1 = batch.q + cfg.dt * v_half
    np.testing.assert_allclose(one.q[1].numpy(), x1.numpy(), atol=1e-12)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    cfg = fastvp.PICConfig(n_particles=32)
    path = tmp_path_factory.mktemp("ds") / "small"
    return fastvp.generate_dataset(path, 120, cfg, seed=0, progress=False)


def test_force_matching_lowers_the_force_error_and_sets_a_to_one(small_dataset):
    torch.manual_seed(0)
    model = fastvp.Surrogate(small_dataset.config, hidden=32)
    with torch.no_grad():
        model.a.fill_(0.5)
    q = torch.as_tensor(small_dataset.split("val").q(10))
    acc = pic_acceleration(q, small_dataset.config)
    before = force_loss(model.V_net.double(), q, acc).item()
    res = pretrain_forces(model, small_dataset, PretrainConfig(steps=150, batch_size=16, lr=3e-3),
                          progress=False)
    after = force_loss(model.V_net.double(), q, acc).item()
    assert model.a.item() == 1.0
    assert after < 0.5 * before, (before, after)
    assert np.mean(res["train_loss"][-20:]) < np.mean(res["train_loss"][:20])


@pytest.mark.parametrize("field,value", [("steps", 0), ("batch_size", -1), ("lr", float("nan"))])
def test_bad_pretrain_settings_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        PretrainConfig(**{field: value})


def test_cli_train_with_force_matching(small_dataset, tmp_path, capsys):
    from fastvp.cli import main

    assert main(["train", "--data", str(small_dataset.path), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--batch-size", "32", "--hidden", "16", "--steps", "5",
                 "--pretrain-forces", "20", "--quiet"]) == 0
    assert "force matching" in capsys.readouterr().out
    fastvp.Surrogate.load(tmp_path / "run" / "model.safetensors")


def test_lbfgs_refinement_lowers_the_force_error(small_dataset):
    from fastvp.surrogate.pretrain import refine_forces_lbfgs

    torch.manual_seed(1)
    model = fastvp.Surrogate(small_dataset.config, hidden=16)
    q = torch.as_tensor(small_dataset.split("train").q(0))
    acc = pic_acceleration(q, small_dataset.config)
    before = force_loss(model.V_net.double(), q, acc).item()
    res = refine_forces_lbfgs(model, small_dataset, per_snapshot=8, iterations=30, verbose=False,
                              dtype=torch.float64)
    assert res["evaluations"] >= 2
    assert res["loss"] < 0.5 * before
    with pytest.raises(ValueError, match="per_snapshot"):
        refine_forces_lbfgs(model, small_dataset, per_snapshot=0)
