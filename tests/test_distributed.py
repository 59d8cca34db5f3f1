"""torch.distributed: helpers, sharded generation and DDP training, each equal to a
single-process run (gloo, CPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import fastvp
from fastvp import distributed as dist

from .recipes import PLAIN

N_EXAMPLES, CHUNK, SEED = 300, 40, 11
WORLD = 2


def files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario: str, tmp: Path) -> list[dict]:
    """Run `scenario` on WORLD CPU processes joined by gloo; return what each rank reported."""
    port = free_port()
    mp.spawn(_rank_main, args=(scenario, str(tmp), port), nprocs=WORLD, join=True)
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(WORLD)]


def _rank_main(rank: int, scenario: str, tmp: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    report: dict = {}
    try:
        assert dist.init(backend="gloo", timeout=60)
        SCENARIOS[scenario](Path(tmp), report)
    except BaseException:
        report["crash"] = traceback.format_exc()
    finally:
        dist.shutdown()
        Path(tmp, f"rank{rank}.json").write_text(json.dumps(report))


def _generate(out: Path, **kw):
    kw = dict(n_examples=N_EXAMPLES, seed=SEED, chunk_size=CHUNK, progress=False) | kw
    return fastvp.generate_dataset(out, **kw)


def _scenario_generate(tmp: Path, report: dict) -> None:
    # the helpers first
    report["rank"], report["world"], report["main"] = dist.rank(), dist.world_size(), dist.is_main()
    report["broadcast"] = dist.broadcast_object({"from": dist.rank()})
    report["any_true"] = dist.any_true(dist.rank() == 1)
    report["mean"] = dist.all_reduce_mean(torch.tensor([float(dist.rank())])).item()
    dist.barrier()
    # a folder holding data is refused on every rank, with rank 0's message, and left alone
    try:
        _generate(tmp / "taken")
    except ValueError as exc:
        report["refused"] = str(exc)
    ds = _generate(tmp / "ds", distributed=True)
    report["n"] = len(ds)
    # rank 1 wrote rows of the dataset: its examples are those of the odd chunks
    report["progress_files_left"] = sorted(f.name for f in (tmp / "ds").iterdir() if "progress" in f.name)


def _scenario_resume(tmp: Path, report: dict) -> None:
    _generate(tmp / "ds", resume=True, chunk_size=25)  # distributed=None: the group is found
    report["ok"] = True


def _scenario_rank_fails(tmp: Path, report: dict) -> None:
    import fastvp.pic.simulate as pic

    if dist.rank() == 1:
        real, calls = pic.simulate, [0]

        def flaky(*args, **kwargs):
            calls[0] += 1
            if calls[0] == 2:
                raise MemoryError("rank 1 out of memory")
            return real(*args, **kwargs)

        pic.simulate = flaky
    try:
        _generate(tmp / "ds")
    except (MemoryError, RuntimeError) as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"


# DDP training: 18 examples give 11 training ones (batches of 5, 5 and 1: an odd global
# batch cut 2 + 3, and a last batch of one, which leaves rank 0's part empty) and 4 to
# validate (2 per rank).
TRAIN_EXAMPLES = 18
TRAIN = dict(epochs=2, batch_size=5, lr=1e-2, steps=3, hidden=8, dtype="float64", seed=1, **PLAIN)
BASELINE = dict(epochs=3, batch_size=5, hidden=8, dtype="float64", seed=1)


def _params(model) -> dict[str, list[float]]:
    return {k: v.detach().cpu().flatten().tolist() for k, v in model.state_dict().items()}


def _nan_on_second_call(monkeypatch_setattr):
    """Make _Data.loss non-finite on its second call (the second batch of epoch 0)."""
    from fastvp.surrogate import train as train_mod

    real, calls = train_mod._Data.loss, [0]

    def loss(self, *args):
        calls[0] += 1
        value = real(self, *args)
        return value * float("nan") if calls[0] == 2 else value

    monkeypatch_setattr(train_mod._Data, "loss", loss)
    return real


def _baseline_nan_on_second_step(monkeypatch_setattr):
    """Make the baseline's training loss non-finite on its second call (the second batch)."""
    from fastvp.surrogate import baseline as baseline_mod

    real, calls = baseline_mod._loss, [0]

    def loss(*args, **kwargs):
        value = real(*args, **kwargs)
        if torch.is_grad_enabled():  # not validation
            calls[0] += 1
            return value * float("nan") if calls[0] == 2 else value
        return value

    monkeypatch_setattr(baseline_mod, "_loss", loss)
    return real


def _scenario_train(tmp: Path, report: dict) -> None:
    from fastvp.surrogate import train as train_mod
    from fastvp.surrogate.baseline import BaselineConfig, train_baseline

    ds, cfg = tmp / "train_ds", fastvp.TrainConfig(**TRAIN)
    model = fastvp.train(ds, cfg, tmp / "run", progress=False)  # distributed=None: the group is found
    report["params"], report["history"] = _params(model), model.history
    # the single-process checkpoint of epoch 0, continued by two ranks
    report["resumed"] = _params(fastvp.train(ds, cfg, tmp / "resumed", resume=True, progress=False))
    # rank 1 alone sees a non-finite loss on the second batch: both ranks skip that step
    real = train_mod._Data.loss
    if dist.rank() == 1:
        _nan_on_second_call(setattr)
    try:
        model = fastvp.train(ds, cfg, progress=False)
    finally:
        train_mod._Data.loss = real
    report["nan_params"], report["nan_history"] = _params(model), model.history
    try:
        fastvp.train(ds, fastvp.TrainConfig(**TRAIN | {"batch_size": 1}), progress=False)
    except ValueError as exc:
        report["small_batch"] = str(exc)
    model = train_baseline(ds, BaselineConfig(**BASELINE), tmp / "baseline", progress=False)
    report["baseline"], report["baseline_history"] = _params(model), model.history
    # the baseline: a single-process checkpoint of epoch 1 continued by two ranks
    model = train_baseline(ds, BaselineConfig(**BASELINE), tmp / "baseline_resumed", resume=True,
                           progress=False)
    report["baseline_resumed"], report["baseline_resumed_history"] = _params(model), model.history
    # rank 1 alone sees a non-finite baseline loss on the second batch: both skip it
    from fastvp.surrogate import baseline as baseline_mod

    real = baseline_mod._loss
    if dist.rank() == 1:
        _baseline_nan_on_second_step(setattr)
    try:
        model = train_baseline(ds, BaselineConfig(**BASELINE), progress=False)
    finally:
        baseline_mod._loss = real
    report["baseline_nan"] = _params(model)


#: A problem's dataset (fastvp.problems): per-example beam speeds, Params.npy, no Cond.npy.
PROBLEM = dict(v0=[0.8, 0.9, 1.0, 1.1, 1.2], vth=0.1, particles=64, cells=16, steps=4, save_every=2)


def _scenario_problem(tmp: Path, report: dict) -> None:
    _generate(tmp / "ds", n_examples=5, chunk_size=1, problem=fastvp.problems.two_stream(**PROBLEM))
    report["ok"] = True


SCENARIOS = {"generate": _scenario_generate, "resume": _scenario_resume, "rank_fails": _scenario_rank_fails,
             "train": _scenario_train, "problem": _scenario_problem}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    # one chunk on this process's threads; the ranks use small chunks on one thread each
    return files(_generate(tmp_path_factory.mktemp("ref") / "ds", chunk_size=N_EXAMPLES).path)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_helpers_in_a_single_process():
    assert not dist.is_initialized() and not dist.launched()
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    assert dist.init() is False  # nothing to join without torchrun's variables
    dist.barrier()
    assert dist.broadcast_object([1, 2]) == [1, 2]
    assert dist.any_true(True) and not dist.any_true(False)
    x = torch.tensor([1.0, 3.0])
    assert torch.equal(dist.all_reduce_mean(x), x)
    assert dist.on_main(lambda: 7) == 7
    with pytest.raises(ValueError, match="boom"):
        dist.on_main(lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert dist.device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="backend"):
        dist.init(backend="mpi-ish")


def test_two_ranks_write_the_same_bytes_as_one_process(tmp_path, reference):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    reports = run_ranks("generate", tmp_path)
    assert all("crash" not in r for r in reports), reports
    assert [(r["rank"], r["world"], r["main"]) for r in reports] == [(0, 2, True), (1, 2, False)]
    assert all(r["broadcast"] == {"from": 0} and r["any_true"] and r["mean"] == 0.5 for r in reports)
    assert reports[0]["refused"] == reports[1]["refused"] and "already holds data" in reports[0]["refused"]
    assert files(taken) == {"notes.txt": b"mine"}
    assert all(r["n"] == N_EXAMPLES and r["progress_files_left"] == [] for r in reports)
    assert files(tmp_path / "ds") == reference


def test_two_ranks_resume_a_single_process_run(tmp_path, reference, monkeypatch, one_thread):
    import fastvp.pic.simulate as pic

    real, calls = pic.simulate, [0]

    def crash_on_the_third_chunk(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise MemoryError("crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(pic, "simulate", crash_on_the_third_chunk)
    with pytest.raises(MemoryError):
        _generate(tmp_path / "ds")
    monkeypatch.undo()
    reports = run_ranks("resume", tmp_path)
    assert all(r.get("ok") for r in reports), reports
    assert files(tmp_path / "ds") == reference


def test_a_failing_rank_stops_all_and_leaves_a_resumable_folder(tmp_path, reference, one_thread):
    reports = run_ranks("rank_fails", tmp_path)
    assert reports[1]["error"].startswith("MemoryError"), reports
    assert reports[0]["error"].startswith("RuntimeError") and "resume" in reports[0]["error"], reports
    progress = [f.name for f in (tmp_path / "ds").iterdir() if "progress" in f.name]
    assert sorted(progress) == [".progress.json", ".progress.rank1.json"]
    _generate(tmp_path / "ds", resume=True)  # one process finishes what two started
    assert files(tmp_path / "ds") == reference


def test_two_ranks_write_a_problems_dataset_as_one_process(tmp_path, one_thread):
    one = _generate(tmp_path / "one", n_examples=5, problem=fastvp.problems.two_stream(**PROBLEM))
    reports = run_ranks("problem", tmp_path)
    assert all(r.get("ok") for r in reports), reports
    assert files(tmp_path / "ds") == files(one.path)
    assert "Params.npy" in files(one.path) and "Cond.npy" not in files(one.path)


# torchrun's standalone rendezvous picks its own free port (no race with a port chosen here)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(WORLD)]


def _launch(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run a torchrun command; on failure, fail with its output (CalledProcessError hides it)."""
    res = subprocess.run(cmd, timeout=300, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, f"{' '.join(cmd)}\nexit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_torchrun_cli_writes_the_same_bytes_as_one_process(tmp_path, reference):
    out = tmp_path / "ds"
    cmd = [*TORCHRUN, "-m", "fastvp.cli", "simulate", "--out", str(out),
           "--examples", str(N_EXAMPLES), "--chunk", str(CHUNK), "--seed", str(SEED), "--quiet"]
    _launch(cmd)
    assert files(out) == reference


# ---------------------------------------------------------------------------- DDP training


def max_difference(a: dict[str, list[float]], b: dict[str, list[float]]) -> float:
    """Largest |a - b| over all parameters, relative to the largest |a| (at least 1)."""
    assert a.keys() == b.keys()
    diff = max(abs(x - y) for k in a for x, y in zip(a[k], b[k], strict=True))
    return diff / max(1.0, max(abs(x) for k in a for x in a[k]))


def assert_history_close(a: list[dict], b: list[dict],
                         keys=("train_loss", "val_loss", "val_w1_q", "val_w1_p")) -> None:
    assert len(a) == len(b)
    for ha, hb in zip(a, b, strict=True):
        for k in keys:
            assert abs(ha[k] - hb[k]) <= 1e-12 * abs(hb[k]), (k, ha[k], hb[k])


@pytest.fixture(scope="module")
def ddp_training(tmp_path_factory):
    """Single-process references, then the "train" scenario on two gloo ranks."""
    from fastvp.surrogate.baseline import BaselineConfig, train_baseline

    tmp = tmp_path_factory.mktemp("ddp")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = fastvp.generate_dataset(tmp / "train_ds", n_examples=TRAIN_EXAMPLES,
                                     config=fastvp.PICConfig(n_particles=32), seed=0, progress=False)
        cfg = fastvp.TrainConfig(**TRAIN)
        model = fastvp.train(ds, cfg, progress=False)
        ref = {"params": _params(model), "history": model.history}
        fastvp.train(ds, fastvp.TrainConfig(**TRAIN | {"epochs": 1}), tmp / "resumed", progress=False)
        mp_ = pytest.MonkeyPatch()
        try:
            _nan_on_second_call(mp_.setattr)
            model = fastvp.train(ds, cfg, progress=False)
        finally:
            mp_.undo()
        ref["nan_params"], ref["nan_history"] = _params(model), model.history
        model = train_baseline(ds, BaselineConfig(**BASELINE), progress=False)
        ref["baseline"], ref["baseline_history"] = _params(model), model.history
        model = train_baseline(ds, BaselineConfig(**BASELINE | {"epochs": 1}),
                               tmp / "baseline_resumed", progress=False)
        ref["baseline_epoch_1"] = model.history[0]
        mp_ = pytest.MonkeyPatch()
        try:
            _baseline_nan_on_second_step(mp_.setattr)
            ref["baseline_nan"] = _params(train_baseline(ds, BaselineConfig(**BASELINE),
                                                         progress=False))
        finally:
            mp_.undo()
    finally:
        torch.set_num_threads(threads)
    reports = run_ranks("train", tmp)
    assert all("crash" not in r for r in reports), [r.get("crash") for r in reports]
    return tmp, ref, reports


def test_ddp_training_equals_one_process_with_the_same_global_batches(ddp_training):
    tmp, ref, reports = ddp_training
    # the ranks hold the very same parameters, and those of one process up to round-off
    assert reports[0]["params"] == reports[1]["params"]
    assert max_difference(reports[0]["params"], ref["params"]) < 1e-12
    assert reports[0]["params"] != _params(fastvp.Surrogate(fastvp.PICConfig(n_particles=32),
                                                            steps=3, hidden=8).double())
    for r in reports:
        assert_history_close(r["history"], ref["history"])
    # rank 0 wrote the run's files, whole
    names = sorted(f.name for f in (tmp / "run").iterdir())
    assert names == ["checkpoint.pt", "history.json", "model.json", "model.safetensors"]
    saved = _params(fastvp.Surrogate.load(tmp / "run" / "model.safetensors"))
    assert saved == reports[0]["params"]
    assert [h["epoch"] for h in json.loads((tmp / "run" / "history.json").read_text())] == [1, 2]


def test_ddp_resumes_a_single_process_checkpoint(ddp_training):
    tmp, ref, reports = ddp_training
    assert reports[0]["resumed"] == reports[1]["resumed"]
    assert max_difference(reports[0]["resumed"], ref["params"]) < 1e-12


def test_a_non_finite_loss_on_one_rank_skips_the_step_on_all(ddp_training):
    _, ref, reports = ddp_training
    assert reports[0]["nan_params"] == reports[1]["nan_params"]
    assert max_difference(reports[0]["nan_params"], ref["nan_params"]) < 1e-12
    assert max_difference(ref["nan_params"], ref["params"]) > 1e-6  # a step was skipped
    for r in reports:
        assert_history_close(r["nan_history"], ref["nan_history"])


def test_a_global_batch_smaller_than_the_ranks_is_refused(ddp_training):
    _, _, reports = ddp_training
    msgs = [r.get("small_batch", "") for r in reports]
    assert msgs[0] == msgs[1] and "batch_size (1)" in msgs[0] and "2 ranks" in msgs[0]


def test_ddp_baseline_equals_one_process(ddp_training):
    from fastvp.surrogate.baseline import Baseline

    tmp, ref, reports = ddp_training
    assert reports[0]["baseline"] == reports[1]["baseline"]
    assert max_difference(reports[0]["baseline"], ref["baseline"]) < 1e-12
    for r in reports:
        assert_history_close(r["baseline_history"], ref["baseline_history"])
    assert sorted(f.name for f in (tmp / "baseline").iterdir()) == [
        "checkpoint.pt", "history.json", "model.json", "model.safetensors"]
    saved = _params(Baseline.load(tmp / "baseline" / "model.safetensors"))
    assert saved == reports[0]["baseline"]


def test_ddp_baseline_resumes_a_single_process_checkpoint(ddp_training):
    _, ref, reports = ddp_training
    assert reports[0]["baseline_resumed"] == reports[1]["baseline_resumed"]
    assert max_difference(reports[0]["baseline_resumed"], ref["baseline"]) < 1e-12
    for r in reports:  # each rank read the checkpoint: epoch 1 is the one of the single process
        assert r["baseline_resumed_history"][0] == ref["baseline_epoch_1"]  # its time_s too


def test_a_non_finite_baseline_loss_on_one_rank_skips_the_step_on_all(ddp_training):
    _, ref, reports = ddp_training
    assert reports[0]["baseline_nan"] == reports[1]["baseline_nan"]
    assert max_difference(reports[0]["baseline_nan"], ref["baseline_nan"]) < 1e-12
    assert max_difference(ref["baseline_nan"], ref["baseline"]) > 1e-6  # a step was skipped


def test_training_arguments_in_a_single_process(tmp_path):
    assert dist.shard(5) == slice(0, 5)
    from fastvp.surrogate.baseline import train_baseline

    for fn in (fastvp.train, train_baseline):
        with pytest.raises(ValueError, match="distributed must be"):
            fn(tmp_path, distributed="yes")
    with dist.data_parallel(None, "cpu") as (parallel, dev):  # no torchrun: a plain process
        assert (parallel, dev) == (False, torch.device("cpu"))
    assert not dist.is_initialized()


@pytest.mark.slow
def test_torchrun_cli_trains_like_one_process(tmp_path, ddp_training):
    data, ref, _ = ddp_training
    out = tmp_path / "run"
    cmd = [*TORCHRUN, "-m", "fastvp.cli", "train", "--data",
           str(data / "train_ds"), "--out", str(out), "--quiet", "--device", "cpu"]
    cmd += [f"--{k.replace('_', '-')}={0 if v is None else v}" for k, v in TRAIN.items()]
    res = _launch(cmd)
    assert res.stdout.count("trained 2 epochs on 2 ranks") == 1  # rank 0 alone reports
    saved = _params(fastvp.Surrogate.load(out / "model.safetensors"))
    assert max_difference(saved, ref["params"]) < 1e-12
