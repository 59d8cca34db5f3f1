"""Datasets keep the diagnostics of every step: ``Dataset.diagnostics`` is what
``simulate(..., diagnostics=True)`` gives, the other files are the same bytes with or without
them, folders without them still load, and a rate fits from a problem's dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import fastvp
from fastvp.cli import main
from fastvp.data.layout import DIAGNOSTICS, diagnostic_file
from fastvp.particles import Diagnostics

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = fastvp.PICConfig(n_particles=32, steps=10, save_every=5)
FIXTURE = Path(__file__).parent / "data" / "official-generator-8"


def files(folder) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(Path(folder).iterdir())}


def assert_same(a: Diagnostics, b: Diagnostics) -> None:
    for name in a.keys():
        assert a[name].dtype == torch.float64 and torch.equal(a[name], b[name]), name


def test_a_dataset_keeps_the_diagnostics_simulate_gives(tmp_path):
    ds = fastvp.generate_dataset(tmp_path / "ds", n_examples=30, config=SMALL, seed=5, chunk_size=7,
                                 progress=False)
    traj = fastvp.simulate(fastvp.initial_conditions(30, SMALL, seed=5), SMALL, diagnostics=True)
    assert_same(ds.diagnostics, traj.diagnostics)
    assert ds.diagnostics.modes.shape == (11, 30, 5) and ds.diagnostics.field_energy.shape == (11, 30)
    test = ds.split("test")
    rows = slice(30 - len(test), 30)
    assert_same(test.diagnostics, Diagnostics(
        **{k: (v if k == "t" else v[:, rows]) for k, v in traj.diagnostics.as_dict().items()}))
    entry = ds.metadata["diagnostics"]
    assert entry["rows"] == 11 and entry["modes"] == 5
    assert entry["files"] == {name: diagnostic_file(name) for name in DIAGNOSTICS}
    rows = np.load(ds.path / "diag_modes.npy")  # plain numpy: [n, S_all, M] float64
    assert rows.dtype == np.float64 and rows.shape == (30, 11, 5)


def test_the_diagnostics_do_not_depend_on_the_chunks_nor_change_the_other_files(tmp_path):
    runs = [files(fastvp.generate_dataset(tmp_path / f"c{c}", n_examples=20, config=SMALL, seed=2,
                                          chunk_size=c, progress=False).path) for c in (20, 3, 1)]
    assert runs[1] == runs[0] and runs[2] == runs[0]
    bare = files(fastvp.generate_dataset(tmp_path / "bare", n_examples=20, config=SMALL, seed=2,
                                         progress=False, diagnostics=False).path)
    added = sorted(set(runs[0]) - set(bare))
    assert added == sorted(diagnostic_file(name) for name in DIAGNOSTICS)
    assert all(runs[0][k] == v for k, v in bare.items() if k != "metadata.json")
    with_diag, without = (json.loads(r["metadata.json"]) for r in (runs[0], bare))
    assert with_diag.pop("diagnostics") and with_diag == without  # same fingerprint too


def test_a_folder_without_diagnostics_loads_and_says_how_to_get_them(tmp_path):
    ds = fastvp.generate_dataset(tmp_path / "old", n_examples=6, config=SMALL, progress=False)
    meta = json.loads((ds.path / "metadata.json").read_text())
    del meta["diagnostics"]  # a folder of an earlier release
    (ds.path / "metadata.json").write_text(json.dumps(meta))
    for name in DIAGNOSTICS:
        (ds.path / diagnostic_file(name)).unlink()
    for folder in (ds.path, FIXTURE):
        old = fastvp.load_dataset(folder)
        assert len(old) > 0
        with pytest.raises(ValueError, match="has no diagnostics.*fastvp simulate"):
            _ = old.split("train").diagnostics


def test_a_missing_or_damaged_diagnostics_file_is_refused(tmp_path):
    ds = fastvp.generate_dataset(tmp_path / "a", n_examples=6, config=SMALL, progress=False)
    shutil.copytree(ds.path, tmp_path / "b")
    (ds.path / "diag_modes.npy").unlink()
    with pytest.raises(ValueError, match="missing.*diag_modes.npy"):
        fastvp.load_dataset(ds.path)
    np.save(tmp_path / "b" / "diag_phases.npy", np.zeros((6, 11, 4)))
    with pytest.raises(ValueError, match=r"diag_phases.npy .* shape \(6, 11, 5\)"):
        fastvp.load_dataset(tmp_path / "b")


def test_a_quiet_landau_dataset_fits_to_theory(tmp_path, capsys):
    # alpha 0.03: at the default 0.01 the quiet start's harmonics (modes 2-4, which set the
    # fit's noise floor) end the window at t = 9 and gamma comes out 4 % off
    out = tmp_path / "landau"
    assert main(["simulate", "--problem", "landau", "--particles", "65536", "--examples", "2",
                 "--alpha", "0.03", "--quiet-start", "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("writing 2 examples x 65536 particles x 6 snapshots") and "MB" in said[0]
    ds = fastvp.load_dataset(out)
    theory = fastvp.problems.landau(alpha=0.03).theory()
    rate = fastvp.problems.fit_rate(ds.diagnostics, example=0)
    assert abs(rate.gamma / theory.gamma - 1) < 0.02, (rate, theory)
    assert abs(rate.omega / theory.omega - 1) < 0.03, (rate, theory)
    test = ds.split("test")  # example 1
    assert fastvp.problems.fit_rate(test.diagnostics, example=0) == \
        fastvp.problems.fit_rate(ds.diagnostics, example=1)


def test_no_diagnostics_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["simulate", "--out", str(out), "--examples", "4", "--n-particles", "16", "--quiet",
                 "--no-diagnostics"]) == 0
    said = capsys.readouterr().out.splitlines()[0]
    assert said == "writing 4 examples x 16 particles x 6 snapshots: 6.21 kB", said
    assert not list(out.glob("diag_*")) and "diagnostics" not in fastvp.load_dataset(out).metadata
