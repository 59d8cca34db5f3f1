"""A generation killed at any point resumes to the same bytes as an uninterrupted run."""

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

    monkeypatch.setattr("fastvp.data.os.replace", crash_on_the_fourth_array)
    with pytest.raises(KeyboardInterrupt):
        fastvp.generate_dataset(out, n_examples=N_EXAMPLES, seed=SEED, chunk_size=CHUNK, progress=False)
    monkeypatch.setattr("fastvp.data.os.replace", real)
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
