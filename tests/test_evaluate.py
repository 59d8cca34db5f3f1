"""evaluate_models(): report files, tables checked against independent recomputations; demo; CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fastvp
from fastvp.cli import build_parser
from fastvp.evaluation import demo, evaluate_models
from fastvp.surrogate.baseline import BaselineConfig, train_baseline
from fastvp.surrogate.model import Surrogate

N_EVAL = 6
FIGURES = ("cdf_final.png", "cdf_over_time.png", "phase_space.png", "w1_vs_time.png",
           "w1_vs_steps.png")


def _w1_numpy(a, b):
    return np.abs(np.sort(a, axis=1) - np.sort(b, axis=1)).mean(axis=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ds"
    return fastvp.generate_dataset(path, n_examples=200, seed=7, progress=False)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = Surrogate()
    with torch.no_grad():  # a potential that does something, so W1 differs from identity's
        m.V_net.rho[2].weight.mul_(50.0)
        m.a.fill_(1.1)
    return m


@pytest.fixture(scope="module")
def baseline(dataset):
    return train_baseline(dataset, BaselineConfig(epochs=20), progress=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory, dataset, model, baseline):
    out = tmp_path_factory.mktemp("report")
    results = evaluate_models(model, dataset.path, out, baseline=baseline, steps_list=(5, 2, 1),
                              n_examples=N_EVAL, progress=False, chunk_size=4)
    return out, results


def test_writes_report_results_and_figures(report):
    out, results = report
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    text = (out / "report.md").read_text()
    for title in ("## Table 1", "## Table 2", "## Table 3", "Learned a", "PDE-NHF", "baseline",
                  "identity"):
        assert title in text
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    assert not [f for f in out.iterdir() if "partial" in f.name]


def test_identity_w1_equals_an_independent_computation(report, dataset):
    _, r = report
    test = dataset.split("test")
    s0 = test.steps[0]
    for s, row in zip(test.steps[1:-1], r["table2"], strict=True):
        assert row["step"] == s
        assert row["identity"]["q"]["mean"] == pytest.approx(
            _w1_numpy(test.q(s0)[:N_EVAL], test.q(s)[:N_EVAL]).mean(), rel=1e-12)
    w_q = _w1_numpy(test.q(s0)[:N_EVAL], test.q(test.steps[-1])[:N_EVAL])
    w_p = _w1_numpy(test.p(s0)[:N_EVAL], test.p(test.steps[-1])[:N_EVAL])
    ident = r["table1"]["identity"]
    assert ident["q"]["mean"] == pytest.approx(w_q.mean(), rel=1e-12)
    assert ident["p"]["mean"] == pytest.approx(w_p.mean(), rel=1e-12)
    assert ident["q"]["sem"] == pytest.approx(w_q.std(ddof=1) / np.sqrt(N_EVAL), rel=1e-10)


def test_model_w1_equals_sampling_it_directly(report, dataset, model):
    _, r = report
    test = dataset.split("test")
    sT = test.steps[-1]
    q0, p0 = test.q(0)[:N_EVAL], test.p(0)[:N_EVAL]
    for row in r["table3"]:
        q, p = model.sample(1.0, (q0, p0), steps=row["K"])
        assert row["q"]["mean"] == pytest.approx(
            _w1_numpy(q.double().numpy(), test.q(sT)[:N_EVAL]).mean(), rel=1e-6)
        assert row["p"]["mean"] == pytest.approx(
            _w1_numpy(p.double().numpy(), test.p(sT)[:N_EVAL]).mean(), rel=1e-6)
    assert r["table1"]["pde_nhf"]["q"] == r["table3"][0]["q"]
    # the model is not the identity: the comparison is not vacuous
    t1 = r["table1"]
    assert t1["pde_nhf"]["q"]["mean"] != pytest.approx(t1["identity"]["q"]["mean"])


def test_intermediate_times_follow_the_flow_with_the_training_step(report, dataset, model):
    _, r = report
    test = dataset.split("test")
    assert [row["t"] for row in r["table2"]] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert [row["leapfrog_steps"] for row in r["table2"]] == [1, 2, 3, 4]  # K = 5, dt = 0.2
    assert r["model"]["chained_to_T"] and r["model"]["chain_vs_direct_max_abs_diff"] < 1e-3
    q, p = model.sample(0.6, (test.q(0)[:N_EVAL], test.p(0)[:N_EVAL]), steps=3)
    w = _w1_numpy(q.double().numpy(), test.q(15)[:N_EVAL]).mean()
    assert r["table2"][2]["pde_nhf"]["q"]["mean"] == pytest.approx(w, rel=1e-4)


def test_baseline_beats_identity_after_short_training(report):
    _, r = report
    pct = r["table1"]["baseline"]["percent_of_identity"]
    assert pct["q"] < 100 and pct["p"] < 100


def test_flow_hamiltonian_is_conserved_and_a_reported(report, model):
    _, r = report
    assert r["model"]["a"] == pytest.approx(1.1)
    assert r["energy"]["max_rel_to_kinetic"] < 1e-2
    assert r["pic"]["max_abs_diff_to_data"] < 1e-9  # PIC reproduces its own dataset


def test_invalid_arguments_raise_value_error(tmp_path, dataset, model):
    with pytest.raises(ValueError, match="n_examples"):
        evaluate_models(model, dataset, tmp_path, n_examples=0, progress=False)
    with pytest.raises(ValueError, match="n_examples"):
        evaluate_models(model, dataset, tmp_path, n_examples=10**6, progress=False)
    with pytest.raises(ValueError, match="steps_list"):
        evaluate_models(model, dataset, tmp_path, steps_list=(), progress=False)
    with pytest.raises(ValueError, match="steps_list"):
        evaluate_models(model, dataset, tmp_path, steps_list=(0,), progress=False)
    with pytest.raises(ValueError, match="model"):
        evaluate_models(object(), dataset, tmp_path, progress=False)
    with pytest.raises(FileNotFoundError):
        evaluate_models(model, tmp_path / "no-data", tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_demo_without_weights_shows_pic_only(tmp_path, capsys):
    r = demo(tmp_path, n_examples=4, model="no-such-model")
    assert r["surrogate"] is None and "no-such-model" in r["reason"]
    assert "PIC only" in capsys.readouterr().out
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_with_a_model_file(tmp_path, model):
    path = model.save(tmp_path / "m")
    r = demo(tmp_path / "out", n_examples=4, model=path, steps=(2,), verbose=False)
    run = r["surrogate"]["runs"][0]
    assert run["K"] == 2 and run["w1_q"] > 0 and run["speedup_vs_pic"] > 0
    assert (tmp_path / "out" / "demo.png").exists()


def test_demo_says_the_time_against_pic_plainly():
    from fastvp.evaluation.demo import versus_pic

    assert versus_pic(1.0, 50.0, "cpu") == "the surrogate took 50.0x PIC's time on this CPU"
    assert versus_pic(2.0, 0.5, "cpu") == "4.0x faster than PIC on this CPU"


def test_cli_trains_a_baseline_and_evaluates(tmp_path, dataset, model):
    parser = build_parser()
    args = parser.parse_args(["train", "--model", "baseline", "--data", str(dataset.path),
                              "--out", str(tmp_path / "base"), "--epochs", "2", "--quiet"])
    assert args.func(args) == 0
    path = model.save(tmp_path / "m")
    args = parser.parse_args(["evaluate", "--model", str(path), "--data", str(dataset.path),
                              "--out", str(tmp_path / "rep"), "--baseline",
                              str(tmp_path / "base" / "model.safetensors"), "--examples", "3",
                              "--steps", "2", "1", "--quiet"])
    assert args.func(args) == 0
    r = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert r["data"]["n_examples"] == 3 and [row["K"] for row in r["table3"]] == [2, 1]
    assert "baseline" in r["table1"]


def test_evaluate_scores_a_baseline_file_given_as_a_model(tmp_path, dataset, model, capsys):
    from fastvp.surrogate.baseline import Baseline
    from fastvp.surrogate.loading import model_kind, read_model

    torch.manual_seed(0)
    tiny = Baseline(dataset.n_particles, hidden=4, final_time=dataset.times[-1])
    base = tiny.save(tmp_path / "tiny-baseline")
    pde = model.save(tmp_path / "m")
    assert model_kind(base) == "baseline" and model_kind(pde) == model_kind("paper-1d") == "pde-nhf"
    assert isinstance(read_model(base), Baseline) and isinstance(read_model(pde), Surrogate)
    parser = build_parser()
    common = ["--data", str(dataset.path), "--examples", "3", "--steps", "2", "--quiet"]
    for name, flags in (("alone", ["--model", str(base)]), ("flag", ["--baseline", str(base)])):
        args = parser.parse_args(["evaluate", *flags, "--out", str(tmp_path / name), *common])
        assert args.func(args) == 0
        r = json.loads((tmp_path / name / "results.json").read_text())
        assert r["models"] == [] and r["model"] is None and set(r["table1"]) == {"identity", "baseline"}
        assert r["table1"]["baseline"]["percent_of_identity"]["q"] > 0
        assert (tmp_path / name / "report.md").exists() and r["figures"] == ["cdf_final.png"]
    assert "W1 at T, baseline: positions" in capsys.readouterr().out
    args = parser.parse_args(["evaluate", "--model", str(base), "--model", str(pde), "--out",
                              str(tmp_path / "both"), *common])
    assert args.func(args) == 0
    r = json.loads((tmp_path / "both" / "results.json").read_text())
    assert [m["name"] for m in r["models"]] == ["m"] and "baseline" in r["table1"]
    with pytest.raises(ValueError, match="2 baselines"):
        evaluate_models([base], dataset, tmp_path / "two", baseline=base, progress=False)
    with pytest.raises(ValueError, match="--model or --baseline"):
        args = parser.parse_args(["evaluate", "--out", str(tmp_path / "none"), *common])
        args.func(args)


def test_several_models_in_one_report(tmp_path, dataset, model):
    other = Surrogate()  # a random potential: a different model
    r = evaluate_models([model, other], dataset, tmp_path, steps_list=(2,), n_examples=3,
                        progress=False)
    assert [m["name"] for m in r["models"]] == ["PDE-NHF (1)", "PDE-NHF (2)"]
    assert r["table1"]["pde_nhf"] == r["models"][0]["table1"]
    assert r["models"][0]["table1"]["q"] != r["models"][1]["table1"]["q"]
    text = (tmp_path / "report.md").read_text()
    assert "PDE-NHF (1) (K = 2)" in text and "PDE-NHF (2) (K = 2)" in text
    assert "no training record" in text  # neither model says how it was made


def test_data_of_other_physics_is_refused_unless_allowed(tmp_path, model):
    grav = fastvp.generate_dataset(tmp_path / "grav", n_examples=20, seed=1, progress=False,
                                   config=fastvp.PICConfig(interaction="gravitational"))
    with pytest.raises(ValueError, match="interaction: model electrostatic, data gravitational"):
        evaluate_models(model, grav, tmp_path / "r", steps_list=(2,), progress=False)
    assert not (tmp_path / "r").exists()
    r = evaluate_models(model, grav, tmp_path / "r", steps_list=(2,), progress=False,
                        allow_mismatch=True)
    assert r["models"][0]["physics_mismatch"] == ["interaction: model electrostatic, "
                                                  "data gravitational"]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "gravitational" in text.splitlines()[2] and "Physics differs" in text
