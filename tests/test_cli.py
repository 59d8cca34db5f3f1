"""The command line: datasets from `fastvp simulate`, errors reported, not raised."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastvp
from fastvp.cli import main
from fastvp.data.layout import DIAGNOSTICS


def test_simulate_writes_a_dataset_in_the_official_layout(tmp_path):
    out = tmp_path / "ds"
    assert main(["simulate", "--out", str(out), "--examples", "40", "--chunk", "16", "--quiet",
                 "--seed", "3"]) == 0
    names = sorted(f.name for f in out.iterdir())
    assert names == sorted([f"{v}{s:02d}.npy" for s in range(0, 30, 5) for v in "QP"]
                           + ["Cond.npy", "metadata.json"] + [f"diag_{name}.npy" for name in DIAGNOSTICS])
    q25 = np.load(out / "Q25.npy")
    assert q25.shape == (40, 256) and q25.dtype == np.float64
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["seed"] == 3 and meta["scheme"] == "leapfrog" and meta["n_examples"] == 40
    # the same numbers as the API
    batch = fastvp.initial_conditions(40, seed=3)
    traj = fastvp.simulate(batch)
    np.testing.assert_array_equal(q25, traj.q[-1].numpy())
    np.testing.assert_array_equal(np.load(out / "Cond.npy")[:, 1], batch.sigma_p.numpy())


def test_simulate_refuses_to_overwrite_without_the_flag(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["simulate", "--out", str(out), "--examples", "8", "--quiet"]
    assert main(args) == 0
    before = {f.name: f.stat().st_mtime_ns for f in out.iterdir()}
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {f.name: f.stat().st_mtime_ns for f in out.iterdir()} == before
    assert main(args + ["--overwrite"]) == 0


def test_official_scheme_from_the_cli(tmp_path):
    out = tmp_path / "off"
    assert main(["simulate", "--out", str(out), "--examples", "4", "--scheme", "official", "--quiet"]) == 0
    ds = fastvp.load_dataset(out)
    assert ds.config.scheme == "official"
    ref = fastvp.simulate((ds.q(0), ds.p(0)), fastvp.PICConfig(scheme="official"))
    np.testing.assert_array_equal(ds.p(25), ref.p[-1].numpy())


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x"), "--examples", "0", "--quiet"]) == 2
    assert "--examples must be an integer >= 1, got 0" in capsys.readouterr().err  # CLI words
    assert main(["simulate", "--out", str(tmp_path / "y"), "--dt", "-1", "--quiet"]) == 2
    assert "dt" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(SystemExit):
        main(["simulate", "--out", str(tmp_path / "z"), "--scheme", "nope"])


def test_demo_runs_and_writes_its_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--examples", "16"]) == 0
    assert (tmp_path / "demo.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "W1" in out
    # it names the model it ran and how that model was made
    assert "surrogate 'paper-1d': likelihood; start: random; supervised at t = 1; a learned" in out
