"""Training: it learns, resumes exactly, survives NaN, and its CLI runs."""

import numpy as np
import pytest
import torch

import fastvp
from fastvp.cli import build_parser
from fastvp.surrogate import train as train_mod
from fastvp.surrogate.model import Surrogate
from fastvp.surrogate.train import TrainConfig, train

from .recipes import PLAIN

CFG = fastvp.PICConfig(n_particles=32)
FAST = dict(batch_size=32, lr=3e-3, steps=5, hidden=16, dtype="float64", seed=1, **PLAIN)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """400 PIC examples (244 train, 78 validation) of 32 particles: a second to make."""
    path = tmp_path_factory.mktemp("data") / "ds"
    return fastvp.generate_dataset(path, n_examples=400, config=CFG, seed=0, progress=False)


def start(a=0.8) -> Surrogate:
    torch.manual_seed(3)
    model = Surrogate(CFG, steps=5, hidden=16).double()
    with torch.no_grad():
        model.a.fill_(a)
    return model


def test_training_lowers_the_validation_loss_and_a_moves_to_one(dataset):
    model = train(dataset, TrainConfig(epochs=8, **FAST), progress=False, model=start(0.8))
    val = [h["val_loss"] for h in model.history]
    assert val[-1] < val[0] - 5
    assert 0.8 < model.history[0]["a"] < model.a.item() <= 1.05
    # the loss is the exact NLL: its value equals -log_prob of the validation states
    ds = dataset.split("val")
    batch = ds.batch(ds.steps[-1])
    prior = ds.batch(0)
    lp = model.log_prob(batch.q, batch.p, prior, t=1.0)
    assert abs(-lp.mean().item() - val[-1]) < 1e-8 * abs(val[-1])


def test_resume_continues_exactly(dataset, tmp_path):
    straight = train(dataset, TrainConfig(epochs=2, **FAST), progress=False)
    train(dataset, TrainConfig(epochs=1, **FAST), tmp_path / "run", progress=False)
    resumed = train(dataset, TrainConfig(epochs=2, **FAST), tmp_path / "run", resume=True,
                    progress=False)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [h["epoch"] for h in resumed.history] == [1, 2]  # 1-based, as the baseline
    saved = Surrogate.load(tmp_path / "run" / "model.safetensors")
    assert torch.equal(saved.a, resumed.a)


def test_resume_mid_epoch_continues_exactly(dataset, tmp_path, monkeypatch):
    cfg = TrainConfig(epochs=1, checkpoint_every=2, **FAST)
    straight = train(dataset, cfg, progress=False)
    real, calls = train_mod._Data.loss, []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 6:  # killed during batch 5 of 8: the checkpoint holds 4 batches
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(train_mod._Data, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, cfg, tmp_path / "run", progress=False)
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (ck["epoch"], ck["position"]) == (0, 4)
    monkeypatch.setattr(train_mod._Data, "loss", real)
    resumed = train(dataset, cfg, tmp_path / "run", resume=True, progress=False)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_non_finite_steps_are_skipped_then_stop_training(dataset, tmp_path, monkeypatch):
    real, calls = train_mod._Data.loss, []

    def sometimes_nan(self, *args):
        calls.append(1)
        loss = real(self, *args)
        return loss * float("nan") if len(calls) in (3, 4) else loss

    monkeypatch.setattr(train_mod._Data, "loss", sometimes_nan)
    model = train(dataset, TrainConfig(epochs=1, **FAST), tmp_path / "a", progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["bad_steps"] == 2

    monkeypatch.setattr(train_mod._Data, "loss", lambda self, *a: real(self, *a) * float("inf"))
    before = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    with pytest.raises(FloatingPointError, match="3 non-finite steps in a row"):
        train(dataset, TrainConfig(epochs=2, max_bad_steps=3, **FAST), tmp_path / "a",
              resume=True, progress=False)
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1, got 2.5"),
    (dict(lr=-1.0), "lr must be a finite number > 0, got -1.0"),
    (dict(lr=float("nan")), "lr must be a finite number > 0, got nan"),
    (dict(steps=0), "steps must be an integer >= 1, got 0"),
    (dict(dtype="float16"), "dtype must be one of"),
    (dict(schedule="linear"), "schedule must be one of"),
    (dict(method="autograd"), "method must be 'fast' or 'compiled'"),
])
def test_bad_train_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_train_refuses_to_overwrite_a_checkpoint(dataset, tmp_path):
    train(dataset, TrainConfig(epochs=1, **FAST), tmp_path, progress=False)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(dataset, TrainConfig(epochs=1, **FAST), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"differ for \{'lr'"):
        train(dataset, TrainConfig(epochs=2, **{**FAST, "lr": 1e-3}), tmp_path, resume=True,
              progress=False)
    with pytest.raises(FileNotFoundError):
        train(tmp_path / "no-data", TrainConfig(epochs=1, **FAST), progress=False)


def test_snapshot_supervision_trains_on_every_time(dataset):
    model = train(dataset, TrainConfig(epochs=1, snapshots=True, **FAST), progress=False)
    assert np.isfinite(model.history[0]["train_loss"])


def cli(argv):
    parser = build_parser()
    return parser, parser.parse_args(argv)


def test_cli_train_then_sample(dataset, tmp_path, capsys):
    _, args = cli(["train", "--data", str(dataset.path), "--out", str(tmp_path / "run"),
                   "--epochs", "1", "--batch-size", "64", "--steps", "3", "--hidden", "8",
                   "--quiet", "--seed", "2", "--checkpoint-every", "1"])
    assert args.func(args) == 0
    assert "val loss" in capsys.readouterr().out
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["config"]["checkpoint_every"] == 1
    out = tmp_path / "s.npz"
    _, args = cli(["sample", "--model", str(tmp_path / "run" / "model.safetensors"),
                   "--t", "0.2", "1.0", "--examples", "3", "--out", str(out), "--seed", "5"])
    assert args.func(args) == 0
    with np.load(out) as f:
        assert f["q"].shape == (2, 3, 32) and f["t"].tolist() == [0.2, 1.0]
        model = Surrogate.load(tmp_path / "run" / "model.safetensors")
        assert model.dtype == torch.float32  # trained in float32, sampled in float64
        q, p = model.double().sample(1.0, (f["q0"], f["p0"]))
        np.testing.assert_allclose(f["q"][1], q.numpy(), rtol=0, atol=1e-12)
    _, args = cli(["sample", "--model", str(tmp_path / "run" / "model.safetensors"),
                   "--t", "2.0"])
    with pytest.raises(ValueError, match="t must lie"):
        args.func(args)


@pytest.mark.parametrize("command", ["train", "sample"])
def test_cli_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--device" in text and "--dtype" in text and "--seed" in text
