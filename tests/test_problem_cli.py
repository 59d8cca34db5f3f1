"""The plasma problems on the command line and in dataset folders: `fastvp check-physics`,
`fastvp simulate --problem`, Params.npy and metadata.json, resumes, and the refusals of
train and evaluate for data their model cannot use."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastvp
from fastvp.cli import main
from fastvp.data import dataset_fingerprint, fingerprint_difference, require_gaussian
from fastvp.problems import PARAMETERS, PROBLEMS, check

from .test_cli_errors import refused

pytestmark = pytest.mark.usefixtures("one_thread")

#: Small numerics for every problem with them (the paper preset has its own).
SMALL = ["--particles", "64", "--cells", "16", "--steps", "4", "--save-every", "2"]

#: One per-example range per problem: (flag, lo, hi).
RANGES = {"landau": ("alpha", 0.01, 0.02), "two_stream": ("v0", 0.8, 1.2),
          "bump_on_tail": ("vb", 4.0, 5.0), "plasma_oscillation": ("alpha", 0.01, 0.05),
          "jeans": ("vth", 0.8, 1.2), "paper": ("sigma_q", 0.5, 1.0)}

N, SEED = 5, 3


def simulate(out, name: str, *extra: str, quiet_start: bool = False) -> int:
    flag, lo, hi = RANGES[name]
    argv = ["simulate", "--problem", name, "--out", str(out), "--examples", str(N), "--seed",
            str(SEED), "--chunk", "2", "--quiet", f"--{flag.replace('_', '-')}-range", str(lo), str(hi),
            *([] if name == "paper" else SMALL), *extra]
    return main(argv + (["--quiet-start"] if quiet_start else []))


def rebuilt(ds) -> fastvp.problems.Problem:
    """The problem of a dataset made again from its metadata (shared parameters) and its
    Params.npy (per-example ones): an independent reading of what the folder says."""
    entry = ds.problem
    shared = {k: v for k, v in entry["params"].items() if k not in entry["columns"]}
    per_example = {c: ds.params[:, j] for j, c in enumerate(ds.param_names)}
    return PROBLEMS[entry["name"]](**shared, **per_example)


# --- fastvp check-physics -----------------------------------------------------------------


def test_check_physics_prints_a_line_per_problem_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "phys"
    assert main(["check-physics", "--problems", "plasma_oscillation", "--out", str(out),
                 "--quiet", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("plasma_oscillation: gamma ") and lines[0].endswith("passed")
    for words in ("(theory +1.0000, error ", "energy drift ", "momentum drift "):
        assert words in lines[0]
    assert lines[-1] == f"report: {out}/report.md"
    assert "| plasma_oscillation |" in (out / "report.md").read_text()
    assert {f.name for f in out.glob("*.png")} == {
        f"plasma_oscillation_{s}.png" for s in ("mode", "phase_space", "conservation")}


def test_check_physics_exits_1_when_a_problem_misses_its_tolerance(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(check.TOLERANCES, "plasma_oscillation", {"omega": 1e-12})
    assert main(["check-physics", "--problems", "plasma_oscillation", "--out", str(tmp_path),
                 "--quiet"]) == 1
    assert "FAILED (omega over 1e-10 %)" in capsys.readouterr().out


def test_check_physics_refuses_an_unknown_problem(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["check-physics", "--problems", "vlasov", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "'vlasov'" in err
    assert not (tmp_path / "x").exists()


# --- fastvp simulate --problem --------------------------------------------------------------


@pytest.mark.parametrize("command", ["simulate", "check-physics"])
def test_help_shows_the_problems_and_the_common_flags(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    text = capsys.readouterr().out
    assert info.value.code == 0
    for word in ("--device", "--dtype", "--seed", "--threads", "--quiet", "--debug", "jeans"):
        assert word in text
    if command == "simulate":  # every parameter of every problem is a flag
        for table in PARAMETERS.values():
            for p in table:
                assert "--" + p.name.replace("_", "-") in text, p.name
        assert "range (--X-range LO HI): each example draws its own uniformly in [LO, HI]" in \
            " ".join(text.split())


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_simulate_problem_writes_the_problems_examples(tmp_path, name):
    out = tmp_path / name
    assert simulate(out, name, quiet_start=name in ("landau", "paper")) == 0
    ds = fastvp.load_dataset(out)
    assert ds.problem["name"] == name and ds.problem["quiet"] == (name in ("landau", "paper"))
    assert ds.param_names == [p.name for p in PARAMETERS[name] if p.per_example]
    prob = rebuilt(ds)
    assert prob.config == ds.config
    batch = prob.initial_conditions(N, seed=SEED, quiet=ds.problem["quiet"])
    first, last = ds.steps[0], ds.steps[-1]
    assert ds.q(first).tobytes() == batch.q.numpy().tobytes()
    assert ds.p(first).tobytes() == batch.p.numpy().tobytes()
    traj = fastvp.simulate(batch, prob.config)
    assert ds.q(last).tobytes() == traj.q[-1].numpy().tobytes()
    assert ds.p(last).tobytes() == traj.p[-1].numpy().tobytes()
    # Params.npy: the range drawn per example, the other per-example parameters constant
    flag, lo, hi = RANGES[name]
    column = ds.params[:, ds.param_names.index(flag)]
    assert ((column >= lo) & (column <= hi)).all() and len(set(column)) == N
    assert ds.problem["params"][flag]["per_example"] == "Params.npy"
    for j, c in enumerate(ds.param_names):
        default = next(p.default for p in PARAMETERS[name] if p.name == c)
        if c != flag and default is not None:
            np.testing.assert_array_equal(ds.params[:, j], default)
    # Cond.npy where the initial conditions are Gaussians (the paper's), and nowhere else
    assert (out / "Cond.npy").exists() == (name == "paper") == ds.gaussian
    if name == "paper":
        np.testing.assert_array_equal(ds.cond, ds.params)
        np.testing.assert_array_equal(ds.cond[:, 0], batch.sigma_q.numpy())


def test_the_paper_problem_draws_the_presets_examples(tmp_path):
    assert main(["simulate", "--problem", "paper", "--out", str(tmp_path / "a"), "--examples",
                 "6", "--quiet", "--seed", "2"]) == 0
    assert main(["simulate", "--out", str(tmp_path / "b"), "--examples", "6", "--quiet", "--seed",
                 "2"]) == 0
    for f in (tmp_path / "b").glob("*.npy"):
        assert f.read_bytes() == (tmp_path / "a" / f.name).read_bytes(), f.name
    a = fastvp.load_dataset(tmp_path / "a")
    np.testing.assert_array_equal(a.params, a.cond)  # the drawn sigmas
    assert "problem" not in fastvp.load_dataset(tmp_path / "b").metadata


def test_step_numbers_are_padded_to_the_last_steps_digits(tmp_path):
    out = tmp_path / "po"
    assert main(["simulate", "--problem", "plasma_oscillation", "--out", str(out), "--examples", "2",
                 "--particles", "32", "--steps", "100", "--save-every", "50", "--quiet"]) == 0
    assert sorted(f.name for f in out.glob("[QP][0-9]*.npy")) == [
        f"{v}{s}.npy" for v in "PQ" for s in ("000", "050", "100")]
    ds = fastvp.load_dataset(out)
    q50 = ds.q(50)
    assert ds.steps == [0, 50, 100] and q50.shape == (2, 32)
    # a folder of the earlier naming (two digits at least: Q00, Q50, Q100) is still read
    for v in "QP":
        (out / f"{v}000.npy").rename(out / f"{v}00.npy")
        (out / f"{v}050.npy").rename(out / f"{v}50.npy")
    old = fastvp.load_dataset(out)
    assert old.steps == [0, 50, 100] and np.array_equal(old.q(50), q50)


def test_a_resumed_problem_generation_gives_the_same_bytes_with_another_chunk(tmp_path, monkeypatch):
    ref, out = tmp_path / "ref", tmp_path / "out"
    argv = ["--problem", "two_stream", "--examples", "7", "--v0-range", "0.8", "1.2", "--vth", "0.1",
            *SMALL, "--quiet"]
    assert main(["simulate", "--out", str(ref), "--chunk", "7", *argv]) == 0
    real, calls = fastvp.pic.simulate.simulate, []

    def fails_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("the disk went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(fastvp.pic.simulate, "simulate", fails_third)
    assert main(["simulate", "--out", str(out), "--chunk", "2", *argv]) == 2
    assert not (out / "metadata.json").exists()
    monkeypatch.setattr(fastvp.pic.simulate, "simulate", real)
    assert main(["simulate", "--out", str(out), "--chunk", "3", "--resume", *argv]) == 0
    assert {f.name: f.read_bytes() for f in out.iterdir()} == {f.name: f.read_bytes() for f in ref.iterdir()}


def test_the_fingerprint_tells_problems_apart(tmp_path):
    small = dict(particles=32, cells=8, steps=2, save_every=1)
    a = fastvp.generate_dataset(tmp_path / "a", 4, problem=fastvp.problems.landau(**small),
                                progress=False)
    b = fastvp.generate_dataset(tmp_path / "b", 4, problem=fastvp.problems.landau(alpha=0.02, **small),
                                progress=False)
    fa, fb = dataset_fingerprint(a), dataset_fingerprint(b)
    assert fa["digest"] != fb["digest"] and a.metadata["fingerprint"] != b.metadata["fingerprint"]
    [told] = fingerprint_difference(fa, fb)
    assert told.startswith("problem params: a {") and "'alpha': 0.02" in told
    quiet = fastvp.generate_dataset(tmp_path / "q", 4, problem=fastvp.problems.landau(**small),
                                    quiet=True, progress=False)
    assert dataset_fingerprint(quiet)["digest"] != fa["digest"]


@pytest.mark.parametrize("argv, words", [
    (["--problem", "landau", "--v0", "1"], ["--v0 is not a parameter of --problem landau",
                                            "two_stream", "--alpha"]),
    (["--problem", "landau", "--box-length", "3"], ["--box-length is not a parameter"]),
    (["--problem", "paper", "--steps", "10"], ["--steps is not a parameter of --problem paper"]),
    (["--alpha", "0.1"], ["--alpha needs --problem"]),
    (["--quiet-start"], ["--quiet-start needs --problem"]),
    (["--problem", "landau", "--k", "0.5", "0.6"], ["--k takes one value", "[0.5, 0.6]"]),
    (["--problem", "landau", "--alpha", "0.005", "0.02"],
     ["--alpha takes one value (a range each example draws from is --alpha-range LO HI)"]),
    (["--problem", "landau", "--alpha", "0.01", "--alpha-range", "0.01", "0.02"],
     ["--alpha and --alpha-range exclude each other"]),
    (["--alpha-range", "0.01", "0.02"], ["--alpha-range needs --problem"]),
    (["--problem", "landau", "--v0-range", "1", "2"],
     ["--v0-range is not a parameter of --problem landau"]),
    (["--problem", "landau", "--sigma-q-range", "1", "2"], ["--sigma-q-range is not a parameter"]),
    (["--problem", "landau", "--alpha", "1.5"], ["--alpha must be", "1.5"]),
    (["--problem", "landau", "--alpha-range", "0.02", "0.01"],
     ["--alpha-range", "LO <= HI", "[0.02, 0.01]"]),
    (["--problem", "landau", "--alpha-range", "0.01", "1.5"], ["--alpha-range must be", "1.5"]),
    (["--problem", "jeans", "--particles", "0"], ["--particles must be", "got 0"]),
    (["--problem", "jeans", "--n-particles", "0"], ["--n-particles must be", "got 0"]),
    (["--problem", "landau", "--examples", "0", "--alpha-range", "0.01", "0.02"],
     ["--examples", "got 0"]),
    (["--problem", "landau", "--examples", "3", "--alpha-range", "0.01", "0.02", "--chunk", "0",
      "--particles", "16"], ["--chunk", "got 0"]),
])
def test_wrong_problem_flags_are_refused_in_one_line(tmp_path, capsys, argv, words):
    refused(capsys, ["simulate", "--out", str(tmp_path / "d"), "--quiet", *argv], *words,
            root=tmp_path)


def test_a_word_means_one_thing_in_python_and_on_the_command_line():
    """alpha: a value (one per example in a sequence); alpha_range / --alpha-range: a draw."""
    two = fastvp.problems.build("landau", {"alpha": [0.01, 0.02], "particles": 16})
    assert two.examples == 2 and list(two.params["alpha"]) == [0.01, 0.02]
    drawn = fastvp.problems.build("landau", {"alpha_range": (0.01, 0.02), "particles": 16},
                                  examples=3, seed=4)
    assert drawn.examples == 3 and ((drawn.params["alpha"] >= 0.01) & (drawn.params["alpha"] <= 0.02)).all()
    for values, words in [({"k_range": (0.4, 0.5)}, "k takes one value"),
                          ({"alpha": 0.01, "alpha_range": (0.01, 0.02)}, "exclude each other"),
                          ({"alpha_range": 0.01}, "must be a range")]:
        with pytest.raises(ValueError, match=words):
            fastvp.problems.build("landau", values, examples=2)


def test_an_unknown_problem_is_refused_by_argparse(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--problem", "vlasov", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "'vlasov'" in err


def test_generate_dataset_checks_its_problem_arguments(tmp_path):
    prob = fastvp.problems.landau(alpha=[0.01, 0.02], particles=16)
    for kwargs, words in [(dict(problem=prob, n_examples=3), "n_examples must be 2"),
                          (dict(problem=prob, n_examples=2, config=fastvp.PICConfig()), "config"),
                          (dict(problem="vlasov"), "problem must be one of"),
                          (dict(problem=3), "problem must be a fastvp.problems.Problem"),
                          (dict(quiet=True), "quiet=True needs a problem")]:
        with pytest.raises(ValueError, match=words):
            fastvp.generate_dataset(tmp_path / "d", progress=False, **kwargs)
    assert not (tmp_path / "d").exists()


# --- train and evaluate ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def landau_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("landau") / "ds"
    fastvp.generate_dataset(out, 20, problem=fastvp.problems.landau(particles=32, steps=4, save_every=2),
                            progress=False)
    return out


def test_train_refuses_a_problem_without_an_initial_density_and_trains_the_others(tmp_path, capsys,
                                                                                   landau_data):
    cold = tmp_path / "cold"
    fastvp.generate_dataset(cold, 20, problem=fastvp.problems.two_stream(particles=32, steps=4,
                                                                          save_every=2), progress=False)
    with pytest.raises(ValueError, match="'two_stream' problem with cold beams"):
        fastvp.train(cold, fastvp.TrainConfig(epochs=1), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    refused(capsys, ["train", "--data", str(cold), "--out", str(tmp_path / "run"), "--quiet"],
            "cold beams", "--vth", root=tmp_path)
    for init in ("field-energy",):  # the field-energy start is the paper's Deep Set
        refused(capsys, ["train", "--data", str(landau_data), "--out", str(tmp_path / "run"),
                         "--init", init, "--quiet"], "PDE-NHF's likelihood", "--problem paper",
                root=tmp_path)
    model = fastvp.train(landau_data, fastvp.TrainConfig(epochs=1, batch_size=4, steps=2, hidden=8,
                                                         modes=3, val_examples=4, val_w1_examples=4,
                                                         threads=1), progress=False)
    assert model.periodic and model.problem.name == "landau"
    with pytest.raises(ValueError, match="cond"):
        _ = fastvp.load_dataset(landau_data).cond
    batch = fastvp.load_dataset(landau_data).batch(0)  # no invented Gaussians: f0 is the problem's
    assert not batch.gaussian and batch.sigma_p is None and batch.mu_q is None


def test_evaluate_tells_a_problem_dataset_first(tmp_path, capsys, landau_data):
    err = refused(capsys, ["evaluate", "--model", "paper-1d", "--data", str(landau_data), "--out",
                           str(tmp_path / "r"), "--quiet"],
                  "initial conditions: model the paper's Gaussians, data the 'landau' problem",
                  "--allow-mismatch", root=tmp_path)
    assert err.index("initial conditions") < err.index("box_length")


def test_evaluate_scores_a_baseline_on_a_problem_dataset(tmp_path, capsys, landau_data):
    from fastvp.surrogate.baseline import Baseline

    ds = fastvp.load_dataset(landau_data)
    path = Baseline(ds.n_particles, hidden=4, final_time=ds.times[-1]).save(tmp_path / "b")
    assert main(["evaluate", "--model", str(path), "--data", str(landau_data), "--out",
                 str(tmp_path / "r"), "--quiet"]) == 0
    assert "W1 at T, baseline: positions" in capsys.readouterr().out
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert set(r["table1"]) == {"baseline", "identity"}


def test_a_paper_problem_dataset_trains(tmp_path):
    ds = fastvp.generate_dataset(tmp_path / "p", 20, problem="paper", quiet=True, progress=False)
    require_gaussian(ds)
    model = fastvp.train(ds, fastvp.TrainConfig(epochs=1, batch_size=8, steps=2, hidden=8, threads=1,
                                                val_w1_examples=2), progress=False)
    assert model.kept_epoch == 1
    assert json.loads((tmp_path / "p" / "metadata.json").read_text())["problem"]["gaussian"]
