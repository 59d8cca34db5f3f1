"""Dataset folders: the official layout, chunk-invariant bytes, overwrite, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import fastvp
from fastvp.data import PARTIAL, PROGRESS
from fastvp.data.writer import merge_intervals, missing_intervals, read_progress

SMALL = fastvp.PICConfig(n_particles=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def files(folder) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def test_dataset_bytes_do_not_depend_on_the_chunk_size(tmp_path):
    runs = [files(fastvp.generate_dataset(tmp_path / f"c{c}", n_examples=300, seed=4, chunk_size=c,
                                          progress=False).path)
            for c in (300, 50, 37, 1000)]
    assert all(r == runs[0] for r in runs[1:])
    assert len(runs[0]) == 20  # 12 arrays, Cond.npy, 6 of diagnostics, metadata.json


def test_dataset_holds_the_simulated_snapshots_and_their_sigmas(tmp_path):
    cfg = SMALL.replace(steps=10, save_every=2, scheme="official")
    ds = fastvp.generate_dataset(tmp_path / "ds", n_examples=30, config=cfg, seed=9, chunk_size=7,
                                 progress=False)
    batch = fastvp.initial_conditions(30, cfg, seed=9)
    traj = fastvp.simulate(batch, cfg)
    assert ds.steps == [0, 2, 4, 6, 8, 10] and len(ds) == 30 and ds.config == cfg
    for i, step in enumerate(ds.steps):
        np.testing.assert_array_equal(ds.q(step), traj.q[i].numpy())
        np.testing.assert_array_equal(ds.p(step), traj.p[i].numpy())
    np.testing.assert_array_equal(ds.cond, np.stack([batch.sigma_q, batch.sigma_p], axis=1))
    # readable by plain numpy, as the official code reads it
    q = np.load(ds.path / "Q10.npy")
    assert q.dtype == np.float64 and q.shape == (30, 32) and q.flags.c_contiguous


def test_overwrite_replaces_the_dataset_and_keeps_other_files(tmp_path):
    out = tmp_path / "ds"
    fastvp.generate_dataset(out, n_examples=10, config=SMALL.replace(steps=30), progress=False)
    (out / "notes.txt").write_text("mine")
    fastvp.generate_dataset(out, n_examples=12, config=SMALL, overwrite=True, progress=False)
    names = {f.name for f in out.iterdir()}
    assert "Q30.npy" not in names and "notes.txt" in names
    assert len(fastvp.load_dataset(out)) == 12


def test_overwrite_restarts_an_unfinished_generation_of_other_settings(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    import fastvp.pic.simulate as pic

    monkeypatch.setattr(pic, "simulate", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        fastvp.generate_dataset(out, n_examples=10, config=SMALL, seed=1, progress=False)
    monkeypatch.undo()
    assert (out / PROGRESS).exists()
    ds = fastvp.generate_dataset(out, n_examples=10, config=SMALL, seed=2, overwrite=True, progress=False)
    assert ds.metadata["seed"] == 2 and not any(f.name.endswith(PARTIAL) for f in out.iterdir())


def test_split_follows_the_paper_proportions(tmp_path):
    ds = fastvp.generate_dataset(tmp_path / "ds", n_examples=64, config=SMALL, progress=False)
    parts = [ds.split(s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [39, 12, 13]
    np.testing.assert_array_equal(np.concatenate([p.cond for p in parts]), ds.cond)


def test_progress_intervals_merge_and_leave_the_right_gaps():
    done = merge_intervals([[50, 100], [0, 50], [200, 250], [220, 230], [300, 300]])
    assert done == [[0, 100], [200, 250]]
    assert missing_intervals(done, 400) == [(100, 200), (250, 400)]
    assert missing_intervals([[0, 400]], 400) == []


def test_progress_of_the_first_format_is_read(tmp_path):
    (tmp_path / PROGRESS).write_text(json.dumps({"plan": {"seed": 1}, "done": 120}))
    assert read_progress(tmp_path / PROGRESS) == {"plan": {"seed": 1}, "done": [[0, 120]]}


MEMORY_SCRIPT = """
import resource, sys, torch, fastvp
torch.set_num_threads(1)
fastvp.generate_dataset(sys.argv[1], n_examples=int(sys.argv[2]), seed=0, chunk_size=1024,
                        progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_rss_mb(out, n: int) -> int:
    run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(out), str(n)], check=True,
                         capture_output=True, text=True)
    return int(run.stdout.split()[-1])


@pytest.mark.slow
def test_memory_stays_bounded_by_the_chunk_not_the_dataset(tmp_path):
    # 16x more examples (0.4 GB vs 27 MB of arrays) must not raise the peak
    # resident memory by more than a little: the writer holds one chunk, never the files
    small = peak_rss_mb(tmp_path / "small", 1024)
    large = peak_rss_mb(tmp_path / "large", 16 * 1024)
    assert large - small < 100, (small, large)


def test_a_corrupted_npy_header_is_refused_naming_the_file(tmp_path):
    """numpy's header parser raises tokenize.TokenError (not a ValueError) on a header whose
    closing brace is gone: found by test_fuzz; load_dataset names the file instead."""
    out = tmp_path / "d"
    fastvp.generate_dataset(out, 4, config=fastvp.PICConfig(n_particles=8), progress=False)
    raw = bytearray((out / "Q00.npy").read_bytes())
    brace = raw.index(b"}")
    raw[brace:brace + 1] = b" "
    (out / "Q00.npy").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="unreadable array Q00.npy"):
        fastvp.load_dataset(out)
