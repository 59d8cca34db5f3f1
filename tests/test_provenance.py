"""Provenance: every dataset, model file and training run says what made it, and a resumed
run refuses data other than its own; a folder is read as the authors' only when it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import fastvp
from fastvp.cli import main
from fastvp.data import dataset_fingerprint, recipe_digest
from fastvp.surrogate.baseline import BaselineConfig, train_baseline
from fastvp.surrogate.checkpoint import CHECKPOINT, MODEL
from fastvp.surrogate.train import TrainConfig, train

from .recipes import PLAIN

CFG = fastvp.PICConfig(n_particles=16)
TINY = dict(epochs=1, batch_size=8, steps=2, hidden=8, threads=1, val_w1_examples=4, **PLAIN)
OFFICIAL = Path(__file__).parent / "data" / "official-generator-8"


def _gen(path: Path, config=CFG, seed=0, n=40):
    return fastvp.generate_dataset(path, n_examples=n, config=config, seed=seed, progress=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("prov")
    return {"plasma": _gen(root / "plasma"), "grav": _gen(root / "grav", CFG.replace(
        interaction="gravitational")), "seed1": _gen(root / "seed1", seed=1)}


def _files(folder: Path) -> dict:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


def test_metadata_holds_the_fingerprint_of_its_recipe(folders, tmp_path):
    meta = folders["plasma"].metadata
    assert meta["fingerprint"] == recipe_digest(meta)
    assert meta["interaction"] == "electrostatic" and meta["scheme"] == "leapfrog"
    fps = {k: dataset_fingerprint(ds)["digest"] for k, ds in folders.items()}
    assert len(set(fps.values())) == 3
    # the same recipe in another folder is the same data: the same fingerprint
    again = _gen(tmp_path / "again")
    assert dataset_fingerprint(again)["digest"] == fps["plasma"]
    assert again.metadata["fingerprint"] == meta["fingerprint"]
    # a split is another view of the folder: it is told apart
    assert dataset_fingerprint(again.split("train"))["digest"] != fps["plasma"]


def test_an_authors_folder_is_fingerprinted_by_its_content(tmp_path):
    a = shutil.copytree(OFFICIAL, tmp_path / "a")
    fp = dataset_fingerprint(fastvp.load_dataset(a))
    assert fp["layout"] == "authors" and fp["seed"] is None and len(fp["content"]) == 16
    cond = np.load(a / "Cond.npy")
    np.save(a / "Cond.npy", cond[::-1].copy())
    assert dataset_fingerprint(fastvp.load_dataset(a))["digest"] != fp["digest"]


@pytest.mark.parametrize("trainer", ["pde-nhf", "baseline"])
def test_resume_on_other_data_is_refused_naming_both(folders, tmp_path, trainer):
    out = tmp_path / "run"
    if trainer == "pde-nhf":
        def run(ds, epochs, resume):
            return train(ds, TrainConfig(**{**TINY, "epochs": epochs}), out, resume=resume,
                         progress=False)
    else:
        def run(ds, epochs, resume):
            return train_baseline(ds, BaselineConfig(epochs=epochs, batch_size=8, hidden=8,
                                                     threads=1), out, False, resume=resume)
    run(folders["plasma"], 1, False)
    before = _files(out)
    for other, differs in (("grav", "interaction: run electrostatic, given gravitational"),
                           ("seed1", "seed: run 0, given 1")):
        with pytest.raises(ValueError) as info:
            run(folders[other], 2, True)
        msg = str(info.value)
        assert str(folders["plasma"].path) in msg and str(folders[other].path) in msg
        assert differs in msg and "resume=True" in msg
        assert _files(out) == before  # nothing written
    ck = torch.load(out / CHECKPOINT, weights_only=True)
    assert ck["data"]["digest"] == dataset_fingerprint(folders["plasma"])["digest"]
    # the model file says what made it: the data's fingerprint and path
    meta = json.loads((out / MODEL).with_suffix(".json").read_text())
    assert meta["training"]["data_fingerprint"]["digest"] == ck["data"]["digest"]
    # the same data moved to another folder resumes
    moved = shutil.copytree(folders["plasma"].path, tmp_path / "moved")
    assert len(run(fastvp.load_dataset(moved), 2, True).history) == 2


def test_cli_resume_on_other_data_is_one_line_in_cli_words(folders, tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["--out", out, "--epochs", "1", "--batch-size", "8", "--steps", "2", "--hidden", "8",
              "--val-w1-examples", "4", "--threads", "1", "--quiet"]
    assert main(["train", "--data", str(folders["plasma"].path), *common]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(folders["grav"].path), *common, "--resume",
                 "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "resume=True" not in err
    assert "interaction: run electrostatic, given gravitational" in err


def test_a_folder_without_metadata_is_the_authors_only_with_their_files(folders, tmp_path):
    ok = shutil.copytree(OFFICIAL, tmp_path / "ok")
    ds = fastvp.load_dataset(ok)
    assert ds.layout == "authors" and ds.config.scheme == "official" and ds.steps == [0, 5, 10, 15,
                                                                                     20, 25]
    short = shutil.copytree(OFFICIAL, tmp_path / "short")
    for name in ("Q25.npy", "P25.npy"):
        (short / name).unlink()
    with pytest.raises(ValueError, match=r"no metadata.json and is not in the authors' layout.*"
                                         r"missing \['P25.npy', 'Q25.npy'\]"):
        fastvp.load_dataset(short)
    extra = shutil.copytree(OFFICIAL, tmp_path / "extra")
    shutil.copy(extra / "Q25.npy", extra / "Q30.npy")
    shutil.copy(extra / "P25.npy", extra / "P30.npy")
    with pytest.raises(ValueError, match=r"unexpected \['P30.npy', 'Q30.npy'\]"):
        fastvp.load_dataset(extra)
    # a fastvp folder of other snapshots that lost its metadata is not taken for theirs
    other = _gen(tmp_path / "other", CFG.replace(steps=10, save_every=2), n=6).path
    (other / "metadata.json").unlink()
    with pytest.raises(ValueError, match="not in the authors' layout"):
        fastvp.load_dataset(other)


def test_an_authors_folder_with_inconsistent_shapes_is_refused(tmp_path):
    bad = shutil.copytree(OFFICIAL, tmp_path / "bad")
    np.save(bad / "P15.npy", np.load(bad / "P15.npy")[:, :-1])
    with pytest.raises(ValueError, match="disagree in shape.*P15.npy"):
        fastvp.load_dataset(bad)
