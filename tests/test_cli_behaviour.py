"""What a new user meets on the command line: help for every flag, a flag for every
PICConfig field, separate sigma ranges, baseline and authors'-checkpoint sampling, W1 of
unequal sizes, [B, N] single-time samples, one dtype rule, --threads everywhere, 0644 model
files."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import fastvp
from fastvp.backend import default_threads
from fastvp.cli import build_parser, main
from fastvp.cli._common import DTYPE_RULE
from fastvp.problems.paper import RNG_BLOCK, PaperInitial, draw_block
from fastvp.surrogate.baseline import Baseline, BaselineConfig, train_baseline
from fastvp.surrogate.model import Surrogate
from fastvp.surrogate.model_files import state_shapes

ROOT = Path(__file__).resolve().parents[1]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_of_every_command_has_help():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings)


def test_every_command_has_the_common_flags():
    for name, sub in _subparsers().items():
        options = {o for a in sub._actions for o in a.option_strings}
        assert {"--device", "--dtype", "--seed", "--threads", "--quiet", "--debug"} <= options, name


def test_every_dtype_help_states_the_one_rule_and_the_readme_too():
    for name, sub in _subparsers().items():
        dtype = next(a for a in sub._actions if "--dtype" in a.option_strings)
        assert DTYPE_RULE in dtype.help, name
        expected = "float64" if name in ("simulate", "sample", "check-physics") else "float32"
        assert dtype.default == expected or (name == "train" and dtype.default is None), name
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "float64 for what a command writes as data" in readme


def test_simulate_has_a_flag_for_every_picconfig_field(tmp_path):
    options = {o for a in _subparsers()["simulate"]._actions for o in a.option_strings}
    for f in dataclasses.fields(fastvp.PICConfig):
        assert "--" + f.name.replace("_", "-") in options, f.name
    out = tmp_path / "d"
    argv = ["simulate", "--out", str(out), "--examples", "8", "--quiet", "--box-length", "64",
            "--cells", "32", "--n-particles", "16", "--charge", "0.2", "--charge-over-mass", "2",
            "--dt", "0.02", "--steps", "10", "--save-every", "5", "--scheme", "official",
            "--interaction", "gravitational", "--mu-q", "30", "--mu-p", "0.5",
            "--sigma-q-range", "1", "2", "--sigma-p-range", "0.1", "0.2"]
    assert main(argv) == 0
    ds = fastvp.load_dataset(out)
    assert ds.config == fastvp.PICConfig(
        box_length=64, cells=32, n_particles=16, charge=0.2, charge_over_mass=2, dt=0.02,
        steps=10, save_every=5, scheme="official", interaction="gravitational")
    assert PaperInitial.of(ds.config) == PaperInitial(mu_q=30, mu_p=0.5, sigma_q_range=(1, 2),
                                                      sigma_p_range=(0.1, 0.2))
    cond = ds.cond
    assert ((cond[:, 0] >= 1) & (cond[:, 0] <= 2)).all()
    assert ((cond[:, 1] >= 0.1) & (cond[:, 1] <= 0.2)).all()


@pytest.mark.filterwarnings("ignore:PICConfig:DeprecationWarning")
def test_sigma_range_is_the_default_of_both_ranges():
    cfg = fastvp.PICConfig(sigma_range=(1.0, 2.0))
    assert cfg.sigma_q_range == cfg.sigma_p_range == (1.0, 2.0)
    mixed = fastvp.PICConfig(sigma_q_range=(0.1, 0.2))
    assert mixed.sigma_q_range == (0.1, 0.2) and mixed.sigma_p_range == (0.5, 1.5)
    moved = mixed.replace(sigma_range=(3.0, 4.0))  # moves the range that followed it
    assert moved.sigma_q_range == (0.1, 0.2) and moved.sigma_p_range == (3.0, 4.0)
    old = {k: v for k, v in fastvp.PICConfig().to_dict().items()
           if k not in ("sigma_q_range", "sigma_p_range")}
    old["sigma_range"] = [0.7, 0.9]  # a metadata.json written before the two ranges
    assert fastvp.PICConfig.from_dict(old).sigma_p_range == (0.7, 0.9)
    assert fastvp.PICConfig.from_dict(mixed.to_dict()) == mixed


def test_initial_conditions_of_the_default_config_are_unchanged():
    """The paper's draw, written out from the random stream: sigma = 0.5 + u, q = 64 + sigma z."""
    n = RNG_BLOCK + 5
    batch = fastvp.initial_conditions(n, seed=3)
    us, zs = zip(*(draw_block(3, b, fastvp.PICConfig()) for b in range(2)))
    u, z = np.concatenate(us)[:n], np.concatenate(zs)[:n]
    sq, sp = 0.5 + (1.5 - 0.5) * u[:, 0], 0.5 + (1.5 - 0.5) * u[:, 1]
    assert np.array_equal(batch.q.numpy(), 64.0 + sq[:, None] * z[:, 0])
    assert np.array_equal(batch.p.numpy(), 0.0 + sp[:, None] * z[:, 1])
    assert np.array_equal(batch.sigma_q.numpy(), sq) and np.array_equal(batch.sigma_p.numpy(), sp)


def test_single_time_samples_are_saved_as_b_n_and_trajectories_as_s_b_n(tmp_path):
    assert main(["sample", "--t", "0.5", "--examples", "3", "--out", str(tmp_path / "one.npz"),
                 "--steps", "2", "--quiet"]) == 0
    one = np.load(tmp_path / "one.npz")
    assert one["q"].shape == one["p"].shape == (3, 256) and one["t"].shape == ()
    assert main(["sample", "--t", "0.2", "1.0", "--examples", "3", "--steps", "2", "--out",
                 str(tmp_path / "two.npz")]) == 0
    two = np.load(tmp_path / "two.npz")
    assert two["q"].shape == (2, 3, 256) and two["t"].tolist() == [0.2, 1.0]
    model = Surrogate.load("paper-1d").double()
    q, _ = model.sample(0.5, (one["q0"], one["p0"]), steps=2)
    assert np.array_equal(q.numpy(), one["q"])


def _official(path: Path) -> dict:
    torch.manual_seed(5)
    state = {k: 0.01 * torch.randn(s, dtype=torch.float64) for k, s in state_shapes(256).items()}
    state["a"] = torch.ones(1, dtype=torch.float64)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("name", ["nhf.pt", "nhf.safetensors"])
def test_sample_reads_the_authors_checkpoint_by_its_format(tmp_path, name):
    _official(tmp_path / name)
    out = tmp_path / "o.npz"
    assert main(["sample", "--model", str(tmp_path / name), "--t", "1", "--examples", "2",
                 "--steps", "3", "--out", str(out), "--quiet"]) == 0
    got = np.load(out)
    ref = Surrogate.from_official(tmp_path / name)
    q, p = ref.sample(1.0, (got["q0"], got["p0"]), steps=3)
    assert np.array_equal(q.numpy(), got["q"]) and np.array_equal(p.numpy(), got["p"])
    assert Surrogate.load(tmp_path / name).state_dict()["a"].dtype == torch.float64


def test_a_fastvp_model_named_pt_is_read_as_safetensors(tmp_path):
    model = Surrogate(fastvp.PICConfig(n_particles=8), hidden=4)
    path = model.save(tmp_path / "m")
    os.rename(path, tmp_path / "m.pt")
    assert Surrogate.load(tmp_path / "m.pt").V_net.hidden == 4


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    cfg = fastvp.PICConfig(n_particles=16)
    ds = fastvp.generate_dataset(root / "d", n_examples=40, config=cfg, progress=False,
                                 initial=PaperInitial(sigma_q_range=(1.0, 1.2)))
    train_baseline(ds, BaselineConfig(epochs=1, batch_size=8, hidden=8, threads=1),
                   root / "run", progress=False)
    return root / "run" / "model.safetensors", cfg


def test_sample_recognises_a_baseline_file_and_predicts_t_equal_t(baseline_file, tmp_path, capsys):
    path, cfg = baseline_file
    out = tmp_path / "b.npz"
    assert main(["sample", "--model", str(path.with_suffix("")), "--t", "1.0", "--examples", "3",
                 "--out", str(out), "--quiet"]) == 0
    got = np.load(out)
    assert got["q"].shape == (3, 16)
    assert ((got["sigma_q"] >= 1.0) & (got["sigma_q"] <= 1.2)).all()  # its training config
    q, p = Baseline.load(path, dtype=torch.float64).predict((got["q0"], got["p0"]))
    assert np.array_equal(q.numpy(), got["q"]) and np.array_equal(p.numpy(), got["p"])
    capsys.readouterr()
    assert main(["sample", "--model", str(path), "--t", "0.5"]) == 2
    assert "--t must be T = 1 for the baseline" in capsys.readouterr().err
    assert main(["sample", "--model", str(path), "--t", "1", "--steps", "5"]) == 2
    assert "--steps applies to PDE-NHF only" in capsys.readouterr().err


def test_model_files_are_written_0644_like_every_output(tmp_path):
    mask = os.umask(0o022)
    try:
        path = Surrogate(fastvp.PICConfig(n_particles=8), hidden=4).save(tmp_path / "m")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.with_suffix(".json").stat().st_mode & 0o777 == 0o644
    assert json.loads(path.with_suffix(".json").read_text())["hidden"] == 4


def test_w1_of_unequal_sizes_is_the_quantile_integral():
    from scipy.stats import wasserstein_distance

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 7, generator=g, dtype=torch.float64), torch.randn(4, 12, generator=g,
                                                                           dtype=torch.float64)
    w = fastvp.wasserstein_1d(x, y)
    assert w.shape == (4,)
    ref = [wasserstein_distance(x[i].numpy(), y[i].numpy()) for i in range(4)]
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-12)
    # a sample repeated is the same distribution
    assert torch.allclose(fastvp.wasserstein_1d(torch.cat([x, x], dim=1), y), w, rtol=1e-12)
    assert torch.equal(fastvp.wasserstein_1d(y, x), w) or torch.allclose(
        fastvp.wasserstein_1d(y, x), w, rtol=1e-14)


def test_w1_of_equal_sizes_is_exactly_the_sorted_mean():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 5, 9, generator=g), torch.randn(3, 5, 9, generator=g)
    expected = (torch.sort(x, -1).values - torch.sort(y, -1).values).abs().mean(-1)
    assert torch.equal(fastvp.wasserstein_1d(x, y), expected)


def test_w1_refuses_disagreeing_leading_shapes_and_empty_samples():
    with pytest.raises(ValueError, match="same shape but for the last axis"):
        fastvp.wasserstein_1d(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="non-empty last axis"):
        fastvp.wasserstein_1d(torch.zeros(2, 0), torch.zeros(2, 3))


def test_default_threads_leave_the_busy_cores_alone(monkeypatch):
    import fastvp.backend as backend

    monkeypatch.setattr(backend.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    cases = [(0.0, 0, 2), (1.0, 0, 1), (0.0, 1, 1), (3.5, 2, 1), (0.4, 0, 2)]
    for load, running_others, threads in cases:
        monkeypatch.setattr(backend.os, "getloadavg", lambda load=load: (load, load, load))
        monkeypatch.setattr(backend, "_runnable_others", lambda r=running_others: r)
        assert default_threads() == threads, (load, running_others)


def test_generate_dataset_takes_threads_and_its_bytes_do_not_depend_on_them(tmp_path):
    kw = dict(n_examples=40, config=fastvp.PICConfig(n_particles=16), progress=False)
    a = fastvp.generate_dataset(tmp_path / "a", threads=1, **kw).path
    b = fastvp.generate_dataset(tmp_path / "b", threads=2, **kw).path
    for f in sorted(a.glob("*.npy")):
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name
    with pytest.raises(ValueError, match="threads must be an integer >= 1, got 0"):
        fastvp.generate_dataset(tmp_path / "c", threads=0, **kw)
    assert not (tmp_path / "c").exists()
