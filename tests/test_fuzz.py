"""Fuzzing the validators (hypothesis, bounded): random configs, shapes, dtypes, paths and
corrupted files against the public API, and random argv against the CLI in process.

Every case either works or raises the documented error (ValueError, FileNotFoundError;
the CLI: exit status 2 with one line on stderr, or argparse's SystemExit 2), and a
refused case writes nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastvp
from fastvp.cli import main
from fastvp.problems.paper import PaperInitial

FUZZ = settings(max_examples=int(os.environ.get("FASTVP_FUZZ_EXAMPLES", 25)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DOCUMENTED = (ValueError, FileNotFoundError)
SMALL = fastvp.PICConfig(n_particles=8, cells=16, box_length=16.0, steps=2, save_every=1)

#: Values of every kind a user may pass where a number, a name or a pair is expected.
ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.sampled_from([0.0, -1.0, 1e-300, 1e300]),
    st.floats(allow_nan=True, allow_infinity=True, width=64), st.text(max_size=6),
    st.tuples(st.floats(-2, 3), st.floats(-2, 3)), st.lists(st.floats(0.1, 2), max_size=3),
)


@contextlib.contextmanager
def workdir():
    """A fresh empty current folder for one example; removed after."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def _entries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------------- configs


PIC_FIELDS = ["box_length", "cells", "n_particles", "charge", "charge_over_mass", "dt", "steps",
              "save_every", "scheme", "interaction", "mu_q", "mu_p", "sigma_range",
              "sigma_q_range", "sigma_p_range"]


@FUZZ
@pytest.mark.filterwarnings("ignore:PICConfig:DeprecationWarning")
@given(st.dictionaries(st.sampled_from(PIC_FIELDS), ANY | st.sampled_from(
    ["leapfrog", "official", "electrostatic", "gravitational"]), max_size=4))
def test_picconfig_is_valid_or_refused(kwargs):
    try:
        cfg = fastvp.PICConfig(**kwargs)
    except DOCUMENTED:
        return
    assert cfg.box_length > 0 and cfg.cells >= 1 and cfg.dt > 0 and cfg.steps % cfg.save_every == 0
    initial = PaperInitial.of(cfg)
    assert math.isfinite(initial.centre(cfg)) and 0 < initial.sigma_q_range[0] <= initial.sigma_q_range[1]
    assert fastvp.PICConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


TRAIN_FIELDS = ["epochs", "batch_size", "lr", "steps", "hidden", "warmup", "schedule", "clip",
                "min_lr_ratio", "checkpoint_every", "max_bad_steps", "threads", "seed", "dtype",
                "curriculum_steps", "curriculum_fraction", "init_scale", "snapshots", "device",
                "val_examples", "val_w1_examples", "method", "init"]


@FUZZ
@given(st.dictionaries(st.sampled_from(TRAIN_FIELDS), ANY | st.sampled_from(
    ["cosine", "constant", "float32", "float64", "cpu", "fast", "random"]), max_size=4))
def test_trainconfig_is_valid_or_refused(kwargs):
    try:
        cfg = fastvp.TrainConfig(**kwargs)
    except DOCUMENTED:
        return
    assert cfg.epochs >= 1 and cfg.lr > 0 and cfg.hidden >= 1 and cfg.dtype in (torch.float32,
                                                                                  torch.float64)


@FUZZ
@given(n=ANY, seed=ANY, sigma_q=ANY, dtype=st.sampled_from(
    ["float32", "float64", "float16", torch.float32, torch.int64, None, "x"]),
    device=st.sampled_from([None, "cpu", "cuda:7", "tpu", 3]))
def test_initial_conditions_are_valid_or_refused(n, seed, sigma_q, dtype, device):
    try:
        batch = fastvp.initial_conditions(n, SMALL, seed=seed, sigma_q=sigma_q, dtype=dtype,
                                          device=device)
    except DOCUMENTED:
        return
    assert batch.q.shape == batch.p.shape == (n, 8) and len(batch) == n
    assert torch.isfinite(batch.q).all() and (batch.sigma_q > 0).all()


# ------------------------------------------------------------------------- arrays

SHAPES = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)
DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex64, np.float16])


def _array(shape, dtype, fill):
    a = np.asarray(np.full(shape, 64.0) + np.arange(int(np.prod(shape))).reshape(shape) % 3)
    if fill is not None and a.size and np.dtype(dtype).kind in "fc":
        a.flat[0] = fill
    return a.astype(dtype)


@FUZZ
@given(shape_q=SHAPES, shape_p=SHAPES, dtype=DTYPES, fill=st.sampled_from([None, np.nan, np.inf]),
       as_tensor=st.booleans())
def test_simulate_takes_any_array_or_refuses_it(shape_q, shape_p, dtype, fill, as_tensor):
    q, p = _array(shape_q, dtype, fill), _array(shape_p, dtype, None)
    if as_tensor:
        q, p = torch.from_numpy(q), torch.from_numpy(p)
    try:
        traj = fastvp.simulate((q, p), config=SMALL)
    except DOCUMENTED:
        return
    assert np.dtype(dtype).kind not in "bc", "booleans or complex numbers taken as positions"
    assert traj.q.shape == (SMALL.n_snapshots, *shape_q) and torch.isfinite(traj.q).all()


@FUZZ
@given(shape_x=SHAPES, n_y=st.integers(0, 5), dtype=DTYPES, as_tensor=st.booleans())
def test_wasserstein_takes_any_sample_or_refuses_it(shape_x, n_y, dtype, as_tensor):
    x = _array(shape_x, dtype, None)
    y = _array((*shape_x[:-1], n_y), dtype, None) if shape_x else _array((n_y,), dtype, None)
    if as_tensor:
        x, y = torch.from_numpy(x), torch.from_numpy(y)
    try:
        w = fastvp.wasserstein_1d(x, y)
    except DOCUMENTED:
        return
    assert tuple(w.shape) == shape_x[:-1] and bool((w >= 0).all())


# ------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    fastvp.generate_dataset(root / "ds", n_examples=6, config=SMALL, progress=False)
    torch.manual_seed(0)
    model = fastvp.Surrogate(SMALL, steps=2, hidden=4)
    model.save(root / "model")
    torch.save(model.state_dict(), root / "official.pt")
    return root


def _corrupt(data: bytes, how: str, at: float, junk: bytes) -> bytes:
    i = int(at * len(data))
    if how == "truncate":
        return data[:i]
    if how == "flip":
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:] if i < len(data) else data
    if how == "junk":
        return data[:i] + junk + data[i + len(junk):]
    return junk


CORRUPTION = dict(how=st.sampled_from(["truncate", "flip", "junk", "replace"]),
                  at=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64))


@FUZZ
@given(name=st.sampled_from(["model.safetensors", "official.pt"]), **CORRUPTION)
def test_a_corrupted_model_file_loads_or_is_refused(originals, name, how, at, junk):
    with workdir() as root:
        path = root / name
        path.write_bytes(_corrupt((originals / name).read_bytes(), how, at, junk))
        before = _entries(root)
        try:
            model = fastvp.Surrogate.load(path)
        except DOCUMENTED:
            assert _entries(root) == before
            return
        q, p = model.sample(model.final_time, fastvp.initial_conditions(2, SMALL), steps=2)
        assert q.shape == (2, 8)


@FUZZ
@given(t=ANY | st.lists(st.floats(-1, 2), max_size=3), steps=ANY, n=ANY)
def test_sample_is_valid_or_refused(originals, t, steps, n):
    model = fastvp.Surrogate.load(originals / "model")
    try:
        out = model.sample(t, steps=steps, n_examples=n, seed=0)
    except DOCUMENTED:
        return
    q = out[0] if isinstance(out, tuple) else out.q
    assert q.shape[-1] == 8 and torch.isfinite(q).all()


@FUZZ
@given(name=st.sampled_from(["Q00.npy", "P02.npy", "Cond.npy", "metadata.json", "Q01.npy"]),
       action=st.sampled_from(["delete", "corrupt", "reshape", "json"]), shape=SHAPES, dtype=DTYPES,
       value=ANY, **CORRUPTION)
def test_a_corrupted_dataset_loads_or_is_refused(originals, name, action, shape, dtype, value, how,
                                                 at, junk):
    with workdir() as root:
        folder = shutil.copytree(originals / "ds", root / "ds")
        target = folder / name
        if action == "delete":
            target.unlink()
        elif action == "corrupt":
            target.write_bytes(_corrupt(target.read_bytes(), how, at, junk))
        elif action == "reshape" and name.endswith(".npy"):
            np.save(target, _array(shape, dtype, None))
        else:
            meta = json.loads((folder / "metadata.json").read_text())
            meta["config"]["n_particles" if at < 0.5 else "save_every"] = value
            (folder / "metadata.json").write_text(json.dumps(meta))
        before = _entries(root)
        try:
            ds = fastvp.load_dataset(folder)
            ds.split("train").q(ds.steps[-1]), ds.cond
        except DOCUMENTED:
            assert _entries(root) == before
            return
        assert ds.q(ds.steps[0]).shape == (6, ds.n_particles)


# ------------------------------------------------------------------------- the CLI


TOKENS = st.sampled_from([
    "--examples", "--steps", "--t", "--out", "--seed", "--threads", "--dtype", "--device",
    "--scheme", "--interaction", "--dt", "--cells", "--n-particles", "--sigma-q-range",
    "--sigma-range", "--chunk", "--resume", "--overwrite", "--extrapolate", "--model", "--nope",
    "0", "1", "2", "-1", "0.5", "nan", "inf", "1e9", "float32", "float64", "cpu", "cuda",
    "official", "gravitational", "x.npz", "s_noext", "sub/x.npz", "/proc/nope", "", "é",
])
BASES = {
    "simulate": ["simulate", "--out", "d", "--examples", "3", "--n-particles", "8", "--cells", "8",
                 "--steps", "2", "--save-every", "1", "--quiet"],
    "sample": ["sample", "--examples", "2", "--steps", "2", "--t", "1.0", "--quiet"],
    "train": ["train", "--data", "missing", "--out", "run", "--quiet"],
    "evaluate": ["evaluate", "--model", "paper-1d", "--data", "missing", "--out", "r", "--quiet"],
    "demo": ["demo", "--out", "/proc/nope", "--quiet"],
}


@settings(FUZZ, max_examples=2 * FUZZ.max_examples)
@given(command=st.sampled_from(sorted(BASES)), extra=st.lists(TOKENS, max_size=5))
def test_the_cli_works_or_exits_2_with_one_line(command, extra):
    argv = BASES[command] + extra
    with workdir() as root:
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse: its own error, or --help
                status = exc.code
        assert status in (0, 2), (argv, status, err.getvalue())
        if status == 2:
            assert err.getvalue().count("\n") == 1 and "Traceback" not in err.getvalue(), argv
            assert _entries(root) == [], (argv, _entries(root))
