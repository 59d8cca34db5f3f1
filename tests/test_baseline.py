"""The paper's baseline: two MLPs between sorted initial and final particles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fastvp
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
