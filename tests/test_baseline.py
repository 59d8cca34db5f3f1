"""The paper's baseline: two MLPs between sorted initial and final particles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fastvp
from fastvp.surrogate import baseline as baseline_mod
from fastvp.surrogate.baseline import Baseline, BaselineConfig, train_baseline


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ds"
    return fastvp.generate_dataset(path, n_examples=300, seed=3, progress=False)


@pytest.fixture(scope="module")
def trained(dataset):
    return train_baseline(dataset, BaselineConfig(epochs=30, seed=0), progress=False)


def _identity_w1(ds):
    q0, qT, p0, pT = ds.q(0), ds.q(ds.steps[-1]), ds.p(0), ds.p(ds.steps[-1])
    w = lambda a, b: np.abs(np.sort(a, axis=1) - np.sort(b, axis=1)).mean(axis=1)  # noqa: E731
    return w(q0, qT).mean(), w(p0, pT).mean()


def test_parameter_count_is_comparable_to_pde_nhf():
    # 2 (2N H + H + H^2 + H + H N + N) with N = 256, H = 80
    assert Baseline().n_parameters == 136_512


def test_training_lowers_the_validation_loss(trained):
    losses = [h["val_loss"] for h in trained.history]
    assert len(losses) == 30
    assert min(losses[-3:]) < 0.5 * losses[0]
    assert trained.history[-1]["train_loss"] < trained.history[0]["train_loss"]


def test_trained_baseline_beats_identity_on_the_test_split(dataset, trained):
    test = dataset.split("test")
    qT, pT = trained.predict(test.batch(0))
    w_q = fastvp.wasserstein_1d(qT.double(), torch.from_numpy(test.q(test.steps[-1]))).mean()
    w_p = fastvp.wasserstein_1d(pT.double(), torch.from_numpy(test.p(test.steps[-1]))).mean()
    id_q, id_p = _identity_w1(test)
    assert w_q < 0.5 * id_q
    assert w_p < 0.5 * id_p


def test_predictions_are_sorted_and_shaped(trained):
    batch = fastvp.initial_conditions(5, seed=1)
    q, p = trained.predict(batch)
    assert q.shape == p.shape == (5, 256)
    assert q.dtype == torch.float32
    assert torch.all(q.diff(dim=1) >= 0) and torch.all(p.diff(dim=1) >= 0)


def test_prediction_is_permutation_invariant_and_translation_equivariant(trained):
    batch = fastvp.initial_conditions(3, seed=2)
    q, p = trained.predict((batch.q, batch.p))
    perm = torch.randperm(256)
    q2, p2 = trained.predict((batch.q[:, perm] + 7.0, batch.p[:, perm]))
    torch.testing.assert_close(q2, q + 7.0, atol=1e-4, rtol=0)
    torch.testing.assert_close(p2, p, atol=1e-4, rtol=0)


def test_wrong_inputs_raise_value_error(trained):
    with pytest.raises(ValueError, match="N = 256"):
        trained.predict((torch.zeros(2, 10), torch.zeros(2, 10)))
    with pytest.raises(ValueError, match="finite"):
        trained.predict((torch.full((2, 256), float("nan")), torch.zeros(2, 256)))
    with pytest.raises(ValueError, match="hidden"):
        Baseline(hidden=0)
    with pytest.raises(ValueError, match="epochs"):
        BaselineConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        BaselineConfig(lr=-1.0)
    with pytest.raises(ValueError, match="dtype"):
        BaselineConfig(dtype=torch.int32)


def test_save_load_round_trip(tmp_path, trained):
    path = trained.save(tmp_path / "base")
    assert path.name == "base.safetensors"
    meta = json.loads((tmp_path / "base.json").read_text())
    assert meta["format"] == "fastvp-baseline/1" and meta["hidden"] == trained.hidden
    assert not list(tmp_path.glob("*.partial"))
    loaded = Baseline.load(path)
    batch = fastvp.initial_conditions(4, seed=5)
    for a, b in zip(trained.predict(batch), loaded.predict(batch), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert loaded.history == trained.history
    assert Baseline.load(path, dtype="float64").predict(batch)[0].dtype == torch.float64


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        Baseline.load(tmp_path / "nothing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a fastvp baseline"):
        Baseline.load(bad)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a fastvp baseline"):
        Baseline.load(tmp_path / "other.safetensors")


# ------------------------------------------------------------------ checkpoints and NaN guard

SMALL = dict(batch_size=16, hidden=8, dtype="float64", seed=1)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """200 examples of 32 particles: 122 to train (8 batches of 16), 39 to validate."""
    path = tmp_path_factory.mktemp("small") / "ds"
    return fastvp.generate_dataset(path, n_examples=200, config=fastvp.PICConfig(n_particles=32),
                                   seed=0, progress=False)


def test_non_finite_steps_are_skipped_then_stop_training(small, tmp_path, monkeypatch, capsys):
    real, calls = baseline_mod._loss, []

    def sometimes_nan(*args, **kwargs):
        loss = real(*args, **kwargs)
        if torch.is_grad_enabled():  # training steps only, not validation
            calls.append(1)
            return loss * float("nan") if len(calls) in (3, 4) else loss
        return loss

    monkeypatch.setattr(baseline_mod, "_loss", sometimes_nan)
    model = train_baseline(small, BaselineConfig(epochs=1, **SMALL), tmp_path / "a")
    assert "epoch 1, batch 3: non-finite loss or gradient (nan); step skipped (2 in a row)" \
        in capsys.readouterr().out
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert np.isfinite(model.history[0]["train_loss"])
    ck = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert ck["bad_steps"] == 2 and ck["bad_in_a_row"] == 0
    assert all(s["step"].item() == 8 - 2 for s in ck["optimizer"]["state"].values())  # 2 skipped

    monkeypatch.setattr(baseline_mod, "_loss", lambda *a, **k: real(*a, **k) * float("inf"))
    before = {f.name: f.read_bytes() for f in (tmp_path / "a").iterdir()}
    with pytest.raises(FloatingPointError, match="3 non-finite steps in a row at epoch 2, batch 2"):
        train_baseline(small, BaselineConfig(epochs=2, max_bad_steps=3, **SMALL), tmp_path / "a",
                       resume=True, progress=False)
    assert {f.name: f.read_bytes() for f in (tmp_path / "a").iterdir()} == before


def test_resume_keeps_the_best_epoch_and_may_add_epochs(small, tmp_path, monkeypatch):
    val = [1.0, 0.5, 0.9, 0.8]  # scripted validation W1 (% of identity): epoch 2 is the best
    real, at = baseline_mod.BaselineTrainer.validate, [0]

    def scripted(self, parallel):
        row = real(self, parallel)
        at[0] += 1
        return {**row, "val_w1_q_pct": val[at[0] - 1], "val_w1_p_pct": val[at[0] - 1]}

    monkeypatch.setattr(baseline_mod.BaselineTrainer, "validate", scripted)
    straight = train_baseline(small, BaselineConfig(epochs=4, **SMALL), progress=False)
    at[0] = 0
    two = train_baseline(small, BaselineConfig(epochs=2, **SMALL), tmp_path, progress=False)
    resumed = train_baseline(small, BaselineConfig(epochs=4, **SMALL), tmp_path, resume=True,
                             progress=False)
    assert [h["val_w1_q_pct"] for h in resumed.history] == val == [h["val_w1_q_pct"] for h in
                                                                   straight.history]
    assert [h["kept"] for h in resumed.history] == [1, 2, 2, 2] and resumed.kept_epoch == 2
    saved = Baseline.load(tmp_path / "model.safetensors")
    latest = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert saved.history == resumed.history
    for k, v in straight.state_dict().items():  # all three kept epoch 2's weights
        assert torch.equal(v, resumed.state_dict()[k]) and torch.equal(v, two.state_dict()[k])
        assert torch.equal(v, saved.state_dict()[k])
    assert not torch.equal(latest["mlp_q.0.weight"], saved.mlp_q[0].weight)  # not epoch 4's


def test_checkpoints_of_other_runs_and_bad_outs_are_refused(small, tmp_path):
    cfg = BaselineConfig(epochs=1, **SMALL)
    train_baseline(small, cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a checkpoint.*resume=True"):
        train_baseline(small, cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match=r"differ for \{'lr': \(0.0003, 0.001\)\}"):
        train_baseline(small, BaselineConfig(epochs=2, **{**SMALL, "lr": 1e-3}), tmp_path / "run",
                       resume=True, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    torch.save({"format": "fastvp-train/1", "config": {}}, other / "checkpoint.pt")
    with pytest.raises(ValueError, match="not a fastvp-baseline-train/2 checkpoint"):
        train_baseline(small, cfg, other, resume=True, progress=False)
    (other / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable"):
        train_baseline(small, cfg, other, resume=True, progress=False)
    with pytest.raises(ValueError, match="out must be a folder"):
        train_baseline(small, cfg, tmp_path / "base.safetensors", progress=False)
    with pytest.raises(ValueError, match="exists and is not a folder"):
        train_baseline(small, cfg, other / "checkpoint.pt", progress=False)
    with pytest.raises(ValueError, match="resume=True needs out"):
        train_baseline(small, cfg, resume=True, progress=False)
    for kwargs in (dict(checkpoint_every=0), dict(max_bad_steps=0), dict(seed=-1)):
        with pytest.raises(ValueError, match=f"{next(iter(kwargs))} must be an integer"):
            BaselineConfig(**kwargs)


def test_cli_resumes_a_baseline_run(small, tmp_path, capsys):
    from fastvp.cli import main

    args = ["train", "--model", "baseline", "--data", str(small.path), "--out",
            str(tmp_path / "run"), "--hidden", "8", "--batch-size", "16", "--dtype", "float64",
            "--quiet"]
    assert main(args + ["--epochs", "1"]) == 0
    assert f"saved: {tmp_path / 'run' / 'model.safetensors'}" in capsys.readouterr().out
    assert main(args + ["--epochs", "2"]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(args + ["--epochs", "2", "--resume", "--checkpoint-every", "2"]) == 0
    assert len(Baseline.load(tmp_path / "run" / "model.safetensors").history) == 2
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["config"]["checkpoint_every"] == 2  # a resumable setting: may change on resume
    assert main(args + ["--epochs", "3", "--resume", "--checkpoint-every", "0"]) == 2
    assert "--checkpoint-every must be an integer" in capsys.readouterr().err
