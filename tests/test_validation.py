"""Invalid input is refused where users enter it: ValueError (or FileNotFoundError) whose
message names the argument and the bad value, and no file is written or changed."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import fastvp
from fastvp.data import PROGRESS

CFG = fastvp.PICConfig()


def _tree(root: Path) -> dict:
    """Every entry under root: folders, and files with size, mtime and content hash."""
    out = {}
    for f in sorted(root.rglob("*")):
        if f.is_dir():
            out[str(f.relative_to(root))] = "dir"
        else:
            st = f.stat()
            out[str(f.relative_to(root))] = (st.st_size, st.st_mtime_ns,
                                             hashlib.sha256(f.read_bytes()).hexdigest())
    return out


def refused(root: Path, fn, *names, exc=ValueError):
    """Call fn(); it must raise `exc` mentioning every string of `names`, touching nothing under root."""
    before = _tree(root)
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for name in names:
        assert name in msg, f"{name!r} not in the message {msg!r}"
    assert _tree(root) == before, "a failing call wrote or changed files"
    return msg


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty current folder: calls that should write nothing are watched there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def particles(b=3, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = 64 + torch.randn(b, n, generator=g, dtype=torch.float64)
    p = torch.randn(b, n, generator=g, dtype=torch.float64)
    return q, p


# ------------------------------------------------------------------- particles


def test_nan_position_is_refused(work):
    q, p = particles()
    q[1, 5] = math.nan
    refused(work, lambda: fastvp.simulate((q, p)), "q", "nan", "(1, 5)")


def test_infinite_momentum_is_refused(work):
    q, p = particles()
    p[2, 0] = -math.inf
    refused(work, lambda: fastvp.simulate((q, p)), "p", "-inf", "(2, 0)")


def test_nan_in_numpy_input_is_refused(work):
    q, p = (x.numpy() for x in particles())
    p[0, 3] = np.nan
    refused(work, lambda: fastvp.simulate((q, p)), "p", "nan")


def test_q_and_p_of_different_shapes_are_refused(work):
    q, _ = particles(n=16)
    _, p = particles(n=12)
    refused(work, lambda: fastvp.simulate((q, p)), "q", "p", "(3, 16)", "(3, 12)")


def test_one_dimensional_particles_are_refused(work):
    q, p = particles()
    refused(work, lambda: fastvp.simulate((q[0], p[0])), "q", "2 dimensions", "(16,)")


def test_three_dimensional_particles_are_refused(work):
    q, p = particles()
    refused(work, lambda: fastvp.simulate((q[None], p[None])), "q", "2 dimensions", "(1, 3, 16)")


def test_empty_batch_is_refused(work):
    q, p = particles()
    refused(work, lambda: fastvp.simulate((q[:0], p[:0])), "q", "(0, 16)")


def test_zero_particles_are_refused(work):
    q, p = particles()
    refused(work, lambda: fastvp.simulate((q[:, :0], p[:, :0])), "q", "(3, 0)")


def test_non_numeric_particles_are_refused(work):
    refused(work, lambda: fastvp.simulate(("abc", "def")), "q", "str")


def test_batch_with_a_non_positive_sigma_is_refused(work):
    q, p = particles()
    ones = torch.ones(3, dtype=torch.float64)
    refused(work, lambda: fastvp.Batch(q, p, -ones, ones, 64 * ones, 0 * ones), "sigma_q", "-1.")


def test_batch_with_a_nan_mean_is_refused(work):
    q, p = particles()
    ones = torch.ones(3, dtype=torch.float64)
    refused(work, lambda: fastvp.Batch(q, p, ones, ones, 64 * ones, ones * math.nan), "mu_p", "nan")


# ------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field, value",
    [
        ("dt", 0.0), ("dt", -0.04), ("dt", math.nan), ("dt", math.inf), ("dt", "0.04"),
        ("box_length", 0.0), ("box_length", -128.0), ("box_length", math.nan),
        ("cells", 0), ("cells", -4), ("cells", 12.5), ("cells", math.nan), ("cells", math.inf),
        ("cells", True),
        ("steps", 2.5), ("steps", math.inf),
        ("charge", 0.0), ("charge", math.nan), ("charge", -0.1),
        ("charge_over_mass", 0.0), ("charge_over_mass", math.nan),
        ("n_particles", 0), ("steps", 0), ("save_every", 0), ("save_every", -5),
        ("mu_q", math.nan), ("mu_p", math.inf),
    ],
    ids=lambda v: repr(v),
)
def test_bad_config_value_is_refused(work, field, value):
    refused(work, lambda: fastvp.PICConfig(**{field: value}), field, repr(value))


def test_save_every_that_does_not_divide_steps_is_refused(work):
    refused(work, lambda: fastvp.PICConfig(steps=25, save_every=4), "save_every", "4", "25")


def test_unknown_scheme_is_refused(work):
    refused(work, lambda: fastvp.PICConfig(scheme="rk4"), "scheme", "'rk4'")


def test_unknown_interaction_is_refused(work):
    refused(work, lambda: fastvp.PICConfig(interaction="magnetic"), "interaction", "'magnetic'")


@pytest.mark.parametrize("sigma_range", [(0.0, 1.5), (math.nan, 1.0), (1.5, 0.5), (0.5, math.inf)],
                         ids=repr)
def test_bad_sigma_range_is_refused(work, sigma_range):
    msg = refused(work, lambda: fastvp.PICConfig(sigma_range=sigma_range), "sigma_range")
    assert any(repr(v) in msg for v in sigma_range)


def test_numpy_scalars_are_accepted_in_the_config():
    cfg = fastvp.PICConfig(cells=np.int64(64), dt=np.float32(0.05), steps=np.int32(10), save_every=5)
    assert (cfg.cells, cfg.steps) == (64, 10) and type(cfg.cells) is int and type(cfg.dt) is float
    assert json.dumps(cfg.to_dict())


def test_unknown_config_field_from_a_dict_is_refused(work):
    refused(work, lambda: fastvp.PICConfig.from_dict({"dt": 0.1, "gamma": 2}), "gamma")


# ------------------------------------------------------------------- initial conditions


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.nan, math.inf], ids=repr)
def test_bad_sigma_q_is_refused(work, sigma):
    refused(work, lambda: fastvp.initial_conditions(4, sigma_q=sigma), "sigma_q", repr(sigma))


def test_sigma_p_of_the_wrong_length_is_refused(work):
    refused(work, lambda: fastvp.initial_conditions(4, sigma_p=[1.0, 1.0]), "sigma_p", "[4]", "(2,)")


@pytest.mark.parametrize("n", [0, -3, 2.5, True], ids=repr)
def test_bad_number_of_examples_is_refused(work, n):
    refused(work, lambda: fastvp.initial_conditions(n), "n_examples", repr(n))


def test_negative_seed_is_refused(work):
    refused(work, lambda: fastvp.initial_conditions(4, seed=-1), "seed", "-1")


@pytest.mark.parametrize("device", ["tpu", "gpu:0", 3.5], ids=repr)
def test_unknown_device_is_refused(work, device):
    refused(work, lambda: fastvp.initial_conditions(4, device=device), "device", repr(device))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_device_without_cuda_is_refused(work):
    refused(work, lambda: fastvp.initial_conditions(4, device="cuda"), "device", "'cuda'")


@pytest.mark.parametrize("dtype", ["float16", torch.float16, torch.int64, "double"], ids=repr)
def test_unknown_dtype_is_refused(work, dtype):
    refused(work, lambda: fastvp.initial_conditions(4, dtype=dtype), "dtype", repr(dtype))


# ------------------------------------------------------------------- simulate options


@pytest.mark.parametrize("chunk", [0, -1, 2.0], ids=repr)
def test_bad_chunk_size_is_refused(work, chunk):
    refused(work, lambda: fastvp.simulate(particles(), chunk_size=chunk), "chunk_size", repr(chunk))


def test_unknown_kernels_are_refused(work):
    refused(work, lambda: fastvp.simulate(particles(), kernels="cuda"), "kernels", "'cuda'")


def test_unknown_fft_is_refused(work):
    refused(work, lambda: fastvp.simulate(particles(), fft="fftw"), "fft", "'fftw'")


def test_config_of_the_wrong_type_is_refused(work):
    refused(work, lambda: fastvp.simulate(particles(), config={"dt": 0.1}), "config", "dict")


# ------------------------------------------------------------------- dataset folders


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ds"
    fastvp.generate_dataset(out, n_examples=6, config=CFG.replace(n_particles=8), seed=1, progress=False)
    return out


@pytest.fixture
def copy(small_dataset, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(small_dataset, dst)
    return dst


def test_missing_dataset_folder_is_refused(tmp_path):
    refused(tmp_path, lambda: fastvp.load_dataset(tmp_path / "nowhere"), "nowhere",
            exc=FileNotFoundError)


def test_empty_dataset_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    refused(tmp_path, lambda: fastvp.load_dataset(tmp_path / "empty"), "empty", "Q??.npy")


def test_dataset_missing_an_array_is_refused(copy, tmp_path):
    (copy / "P10.npy").unlink()
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "P10.npy", "missing")


def test_dataset_missing_cond_is_refused(copy, tmp_path):
    (copy / "Cond.npy").unlink()
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "Cond.npy", "missing")


def test_cond_of_the_wrong_length_is_refused(copy, tmp_path):
    np.save(copy / "Cond.npy", np.ones((5, 2)))
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "Cond.npy", "(5, 2)", "(6, 8)")


def test_cond_of_the_wrong_width_is_refused(copy, tmp_path):
    np.save(copy / "Cond.npy", np.ones((6, 3)))
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "Cond.npy", "(6, 3)")


def test_arrays_of_different_widths_are_refused(copy, tmp_path):
    np.save(copy / "Q15.npy", np.ones((6, 7)))
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "Q15.npy", "(6, 7)")


def test_truncated_array_is_refused(copy, tmp_path):
    data = (copy / "Q05.npy").read_bytes()
    (copy / "Q05.npy").write_bytes(data[: len(data) - 100])
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "unreadable", "Q05.npy")


def test_truncated_header_is_refused(copy, tmp_path):
    (copy / "P25.npy").write_bytes((copy / "P25.npy").read_bytes()[:20])
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "unreadable", "P25.npy")


def test_garbage_array_is_refused(copy, tmp_path):
    (copy / "P00.npy").write_bytes(b"this is not an array" * 50)
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "unreadable", "P00.npy")


def test_integer_array_is_refused(copy, tmp_path):
    np.save(copy / "Q20.npy", np.ones((6, 8), dtype=np.int64))
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "Q20.npy", "int64")


def test_arrays_disagreeing_with_the_metadata_are_refused(copy, tmp_path):
    meta = json.loads((copy / "metadata.json").read_text())
    meta["config"]["n_particles"] = 16
    (copy / "metadata.json").write_text(json.dumps(meta))
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "metadata", "(6, 8)", "16")


def test_garbage_metadata_is_refused(copy, tmp_path):
    (copy / "metadata.json").write_bytes(b"\x00\xff{not json")
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "metadata.json")


def test_unfinished_generation_is_not_loaded(copy, tmp_path):
    (copy / PROGRESS).write_text("{}")
    refused(tmp_path, lambda: fastvp.load_dataset(copy), "unfinished")


# ------------------------------------------------------------------- output folders


def gen(out, **kw):
    kw = {"n_examples": 6, "config": CFG.replace(n_particles=8), "seed": 1, "progress": False} | kw
    return lambda: fastvp.generate_dataset(out, **kw)


def test_output_folder_holding_other_files_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused(tmp_path, gen(out), "out_dir", "already holds data", "notes.txt", "overwrite")


def test_output_folder_holding_a_dataset_is_refused(copy, tmp_path):
    refused(tmp_path, gen(copy), "out_dir", "already holds data", "overwrite")


def test_resume_into_a_dataset_of_other_settings_is_refused(copy, tmp_path):
    refused(tmp_path, gen(copy, seed=2, resume=True), "out_dir", "already holds data")


def test_unfinished_generation_needs_resume_or_overwrite(copy, tmp_path):
    (copy / PROGRESS).write_text(json.dumps({"plan": {}, "done": []}))
    refused(tmp_path, gen(copy), "out_dir", "unfinished", "resume=True", "overwrite=True")


def test_resume_of_an_unfinished_generation_of_other_settings_is_refused(copy, tmp_path):
    (copy / PROGRESS).write_text(json.dumps({"plan": {"seed": 7}, "done": [[0, 2]]}))
    refused(tmp_path, gen(copy, resume=True), "out_dir", "other settings")


def test_resume_with_a_garbage_progress_file_is_refused(copy, tmp_path):
    (copy / PROGRESS).write_text("{trunc")
    refused(tmp_path, gen(copy, resume=True), PROGRESS, "unreadable", "overwrite=True")


def test_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    refused(tmp_path, gen(tmp_path / "file"), "out_dir", "not a folder")


@pytest.mark.parametrize(
    "arg, value",
    [("n_examples", 0), ("n_examples", 2.5), ("seed", -1), ("chunk_size", 0), ("chunk_size", 1.5),
     ("device", "tpu"), ("kernels", "fast"), ("resume", "yes"), ("overwrite", 1),
     ("distributed", "auto"), ("config", {"dt": 0.04})],
    ids=repr,
)
def test_bad_generate_argument_is_refused_before_any_file(tmp_path, arg, value):
    msg = refused(tmp_path, gen(tmp_path / "out", **{arg: value}), arg)
    assert repr(value) in msg or type(value).__name__ in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_triton_kernels_without_cuda_are_refused_before_any_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    refused(tmp_path, gen(tmp_path / "out", kernels="triton"), "kernels='triton'")


def test_not_enough_disk_space_is_refused_before_any_file(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("fastvp.files.shutil.disk_usage", lambda p: usage._replace(free=1000))
    refused(tmp_path, gen(tmp_path / "out"), "out_dir", "needs 22.2 kB", "1 kB are free", exc=OSError)
