"""A generation killed at any point resumes to the same bytes as an uninterrupted run; a killed
baseline training resumes to the same model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import fastvp
import fastvp.pic.simulate
from fastvp.data import PARTIAL, PROGRESS

from .recipes import PLAIN

N_EXAMPLES, CHUNK, SEED = 600, 50, 5


pytestmark = pytest.mark.usefixtures("one_thread")

# A generation in its own process; each chunk is slowed by argv[2] seconds so that the
# test can kill it between any two chunks (the kill lands anywhere in the last one).
SCRIPT = f"""
import sys, time
import torch
import fastvp, fastvp.pic.simulate as pic

torch.set_num_threads(1)

real = pic.simulate

def slow(*args, **kwargs):
    time.sleep(float(sys.argv[2]))
    return real(*args, **kwargs)

pic.simulate = slow
fastvp.generate_dataset(sys.argv[1], n_examples={N_EXAMPLES}, seed={SEED}, chunk_size={CHUNK}, resume=True,
                        progress=False)
"""


def files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def n_done(folder: Path) -> int:
    try:
        return json.loads((folder / PROGRESS).read_text())["n_done"]
    except (OSError, ValueError, KeyError):
        return -1


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("ref") / "ds"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fastvp.generate_dataset(out, n_examples=N_EXAMPLES, seed=SEED, progress=False)
    finally:
        torch.set_num_threads(threads)
    return files(out)


def test_generation_killed_three_times_resumes_to_the_same_bytes(tmp_path, reference):
    out = tmp_path / "ds"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    killed_at = []
    for target, delay in ((100, 0.2), (250, 0.05), (450, 0.0)):
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(delay)], env=env)
        deadline = time.monotonic() + 60
        while n_done(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(n_done(out))
        if killed_at[-1] < N_EXAMPLES:  # stopped mid-run: nothing final may show
            assert not (out / "metadata.json").exists() and not (out / "Q00.npy").exists()
            assert (out / ("Q00.npy" + PARTIAL)).exists()
            with pytest.raises(ValueError, match="unfinished"):
                fastvp.load_dataset(out)
    assert 100 <= killed_at[0] < N_EXAMPLES, killed_at  # the first kill surely landed mid-run
    assert killed_at == sorted(killed_at)  # each run went on from the last one
    fastvp.generate_dataset(out, n_examples=N_EXAMPLES, seed=SEED, chunk_size=CHUNK, resume=True,
                            progress=False)
    assert files(out) == reference


def test_generation_killed_while_renaming_resumes_to_the_same_bytes(tmp_path, reference, monkeypatch):
    out = tmp_path / "ds"
    real = os.replace
    renamed = []

    def crash_on_the_fourth_array(src, dst):
        if str(dst).endswith(".npy"):
            if len(renamed) == 3:
                raise KeyboardInterrupt("killed while renaming")
            renamed.append(dst)
        return real(src, dst)

    monkeypatch.setattr("fastvp.data.writer.os.replace", crash_on_the_fourth_array)
    with pytest.raises(KeyboardInterrupt):
        fastvp.generate_dataset(out, n_examples=N_EXAMPLES, seed=SEED, chunk_size=CHUNK, progress=False)
    monkeypatch.setattr("fastvp.data.writer.os.replace", real)
    assert len(renamed) == 3 and (out / PROGRESS).exists() and not (out / "metadata.json").exists()
    with pytest.raises(ValueError, match="unfinished"):
        fastvp.load_dataset(out)
    fastvp.generate_dataset(out, n_examples=N_EXAMPLES, seed=SEED, resume=True, progress=False)
    assert files(out) == reference


def crash_after(monkeypatch, calls: int) -> None:
    """Make the PIC raise on its call number `calls` + 1, as a crash mid-generation."""
    real = fastvp.pic.simulate.simulate
    count = [0]

    def simulate(*args, **kwargs):
        if count[0] == calls:
            raise MemoryError("simulated crash")
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(fastvp.pic.simulate, "simulate", simulate)


def test_resume_with_another_chunk_size_gives_the_same_bytes(tmp_path, reference, monkeypatch):
    out = tmp_path / "ds"
    crash_after(monkeypatch, 5)
    with pytest.raises(MemoryError):
        fastvp.generate_dataset(out, n_examples=N_EXAMPLES, seed=SEED, chunk_size=CHUNK, progress=False)
    assert n_done(out) == 5 * CHUNK
    monkeypatch.undo()
    fastvp.generate_dataset(out, n_examples=N_EXAMPLES, seed=SEED, chunk_size=37, resume=True,
                            progress=False)
    assert files(out) == reference


def test_resume_of_a_finished_dataset_changes_nothing(tmp_path):
    out = tmp_path / "ds"
    kw = dict(n_examples=20, config=fastvp.PICConfig(n_particles=16), seed=2, progress=False)
    fastvp.generate_dataset(out, **kw)
    before = {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in out.iterdir()}
    ds = fastvp.generate_dataset(out, resume=True, **kw)
    assert len(ds) == 20
    assert {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in out.iterdir()} == before


def test_resume_with_damaged_partial_files_is_refused_and_overwrite_restarts(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    kw = dict(n_examples=40, config=fastvp.PICConfig(n_particles=16), seed=2, chunk_size=10,
              progress=False)
    crash_after(monkeypatch, 2)
    with pytest.raises(MemoryError):
        fastvp.generate_dataset(out, **kw)
    monkeypatch.undo()
    partial = out / ("P05.npy" + PARTIAL)
    partial.write_bytes(partial.read_bytes()[:-8])
    with pytest.raises(ValueError, match="P05.npy.partial.*overwrite=True"):
        fastvp.generate_dataset(out, resume=True, **kw)
    fastvp.generate_dataset(out, resume=True, overwrite=True, **kw)
    ref = fastvp.generate_dataset(tmp_path / "ref", **kw)
    assert files(out) == files(ref.path)


def test_a_kill_before_any_example_restarts_cleanly(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / (PROGRESS + PARTIAL)).write_text('{"plan": ')  # killed while writing the first progress
    kw = dict(n_examples=8, config=fastvp.PICConfig(n_particles=16), seed=2, progress=False)
    fastvp.generate_dataset(out, resume=True, **kw)
    assert files(out) == files(fastvp.generate_dataset(tmp_path / "ref", **kw).path)


# ---------------------------------------------------------------------------- baseline training

# A trainer run in its own process, which SIGKILLs itself on its training step argv[3]
# (counted from its start, by wrapping the loss function LOSS of MODULE): a kill
# mid-epoch, between two checkpoints. RUN starts (or resumes) the training.
KILL_SCRIPT = """
import os, signal, sys
import torch
import {module} as m

torch.set_num_threads(1)
real, calls = m.{loss}, [0]

def killed(*args, **kwargs):
    if torch.is_grad_enabled():  # a training step (validation runs without gradients)
        calls[0] += 1
        if calls[0] == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

m.{loss} = killed
{run}
"""
BASELINE = dict(epochs=4, batch_size=16, hidden=8, dtype="float64", seed=1, checkpoint_every=3)
BASELINE_SCRIPT = KILL_SCRIPT.format(
    module="fastvp.surrogate.baseline", loss="_loss",
    run=f"m.train_baseline(sys.argv[1], m.BaselineConfig(**{BASELINE!r}), out=sys.argv[2], "
        "resume=True, progress=False)")


def kill_twice(script: str, data: Path, out: Path) -> None:
    """Run `script` killed on its step 13 (epoch 1, batch 4 of 8), then resumed and killed
    on its step 12 (epoch 2, batch 6): each time the last checkpoint is 1 batch behind."""
    for kill_at, checkpointed in ((13, (1, 3)), (12, (2, 6))):
        proc = subprocess.run([sys.executable, "-c", script, str(data), str(out), str(kill_at)],
                              timeout=120)
        assert proc.returncode == -signal.SIGKILL
        ck = torch.load(out / "checkpoint.pt", weights_only=True)
        assert (ck["epoch"], ck["position"]) == checkpointed
        assert not list(out.glob("*.partial"))


def safetensors_parts(path: Path) -> tuple[dict, bytes]:
    """(header with the fastvp metadata parsed and its wall-clock times dropped, tensor bytes)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["fastvp"])
    if "history" in meta:
        meta["history"] = untimed(meta["history"])
    meta.get("training", {}).pop("wall_hours", None)
    header["__metadata__"] = meta
    return header, raw[8 + n:]


TIMES = ("seconds", "elapsed")


def untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMES} for row in history]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """200 examples of 32 particles: 8 batches of 16 per epoch of the baseline."""
    return fastvp.generate_dataset(tmp_path_factory.mktemp("data") / "ds", n_examples=200,
                                   config=fastvp.PICConfig(n_particles=32), seed=0, progress=False)


def test_baseline_training_killed_twice_resumes_to_the_same_model(tmp_path, small_dataset):
    from fastvp.surrogate.baseline import BaselineConfig, train_baseline

    straight = train_baseline(small_dataset, BaselineConfig(**BASELINE), tmp_path / "ref",
                              progress=False)
    out = tmp_path / "run"
    kill_twice(BASELINE_SCRIPT, small_dataset.path, out)
    resumed = train_baseline(small_dataset, BaselineConfig(**BASELINE), out, resume=True,
                             progress=False)
    for (ka, a), (kb, b) in zip(straight.state_dict().items(), resumed.state_dict().items(),
                                strict=True):
        assert ka == kb and torch.equal(a, b)
    assert untimed(resumed.history) == untimed(straight.history)
    assert safetensors_parts(out / "model.safetensors") == \
        safetensors_parts(tmp_path / "ref" / "model.safetensors")
    assert untimed(json.loads((out / "history.json").read_text())) == untimed(straight.history)
    ref = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    for key in ("model", "best_state", "optimizer", "scheduler", "torch_rng", "epoch",
                "position", "best_score", "best_epoch", "losses", "bad_steps"):
        assert same(ck[key], ref[key]), key


def same(a, b) -> bool:
    """a and b hold the same bits (tensors, dicts, lists and plain values, recursively)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


# ---------------------------------------------------------------------------- PDE-NHF training

PDE_NHF = dict(**PLAIN, epochs=3, batch_size=16, hidden=8, steps=3, dtype="float64", seed=1,
               checkpoint_every=3)
PDE_NHF_SCRIPT = KILL_SCRIPT.format(
    module="fastvp.surrogate.train", loss="nll",
    run=f"m.train(sys.argv[1], m.TrainConfig(**{PDE_NHF!r}), out=sys.argv[2], resume=True, "
        "progress=False)")


def test_pde_nhf_training_killed_twice_resumes_to_the_same_model(tmp_path, small_dataset):
    from fastvp.surrogate.train import TrainConfig, train

    assert len(small_dataset.split("train")) > 7 * 16  # 8 batches of 16 per epoch
    straight = train(small_dataset, TrainConfig(**PDE_NHF), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    kill_twice(PDE_NHF_SCRIPT, small_dataset.path, out)
    resumed = train(small_dataset, TrainConfig(**PDE_NHF), out, resume=True, progress=False)
    for (ka, a), (kb, b) in zip(straight.state_dict().items(), resumed.state_dict().items(),
                                strict=True):
        assert ka == kb and torch.equal(a, b), ka
    assert safetensors_parts(out / "model.safetensors") == \
        safetensors_parts(tmp_path / "ref" / "model.safetensors")
    ref = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "torch_rng", "epoch", "position", "bad_steps",
                "best_state", "best_epoch", "best_score"):
        assert same(ck[key], ref[key]), key
    assert untimed(ck["history"]) == untimed(ref["history"])
