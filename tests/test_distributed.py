"""torch.distributed: helpers, and sharded generation equal to a single-process run (gloo, CPU)."""

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


SCENARIOS = {"generate": _scenario_generate, "resume": _scenario_resume, "rank_fails": _scenario_rank_fails}


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


@pytest.mark.slow
def test_torchrun_cli_writes_the_same_bytes_as_one_process(tmp_path, reference):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(WORLD),
           "--master-port", str(free_port()), "-m", "fastvp.cli", "simulate", "--out", str(out),
           "--examples", str(N_EXAMPLES), "--chunk", str(CHUNK), "--seed", str(SEED), "--quiet"]
    subprocess.run(cmd, check=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert files(out) == reference
