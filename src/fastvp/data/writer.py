"""The resumable sharded writer of a dataset folder.

Generation fills temporary files chunk by chunk, records its progress once the rows are
synced to disk, and renames the files into place only when all are complete: a folder
shows complete files or none, and a killed run resumes where it stopped with the same
bytes, with any chunk size and any number of torch.distributed ranks. A generation is
described by its plan: its metadata.json and "files", the arrays it writes.

An unfinished folder holds every array as ``NAME.npy.partial``, a complete .npy file of
its final size whose rows are filled chunk by chunk with positioned writes (never
memory-mapped, so the process holds one chunk, not the dataset); ``.progress.json`` holds
the plan and the example intervals [lo, hi) already written and synced to disk (rank 0's,
and ``.progress.rank<r>.json`` those of rank r > 0 under torch.distributed). When every
example is written, rank 0 renames the partial files into place, writes metadata.json,
and removes the progress files last.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..files import check_free_space, fsync_dir
from .dataset import load_dataset
from .layout import METADATA, PARAMS, PARTIAL, PROGRESS, diagnostic_arrays, extra_arrays, write_json

#: The names of the files fastvp writes in a dataset folder (the others are left alone).
_OURS = re.compile(r"(?:[QP]\d+\.npy|Cond\.npy|Params\.npy|diag_[a-z_]+\.npy|metadata\.json"
                   r"|\.progress(?:\.rank\d+)?\.json)(?:\.partial)?")


def _shape(plan: dict, name: str) -> tuple[int, ...]:
    """[n, ...] of the array `name` of `plan`: [n, columns], or a diagnostic's [n, S_all(, M)]."""
    n = plan["n_examples"]
    if name in ("Cond.npy", PARAMS):
        return (n, extra_arrays(plan)[name])
    diagnostics = diagnostic_arrays(plan)
    if name in diagnostics:
        return (n, *diagnostics[name])
    return (n, plan["config"]["n_particles"])


def _row_bytes(shape: tuple[int, ...]) -> int:
    """Bytes of one example's row of a float64 array of `shape` [n, ...]."""
    return 8 * math.prod(shape[1:])


def planned_bytes(plan: dict) -> int:
    """Bytes of the arrays of `plan` (what its folder holds once written)."""
    return sum(_shape(plan, name)[0] * _row_bytes(_shape(plan, name)) for name in plan["files"])


def merge_intervals(intervals) -> list[list[int]]:
    """Sorted, disjoint [lo, hi) intervals covering the same examples."""
    out: list[list[int]] = []
    for lo, hi in sorted((int(a), int(b)) for a, b in intervals if b > a):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _count(intervals) -> int:
    return sum(hi - lo for lo, hi in intervals)


def missing_intervals(done, n: int) -> list[tuple[int, int]]:
    """The intervals of [0, n) not in `done` (merged)."""
    gaps, at = [], 0
    for lo, hi in done:
        if lo > at:
            gaps.append((at, lo))
        at = max(at, hi)
    if at < n:
        gaps.append((at, n))
    return gaps


def progress_file(out: Path, rank: int) -> Path:
    return out / PROGRESS if rank == 0 else out / f".progress.rank{rank}.json"


def read_progress(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
        plan, done = state["plan"], state["done"]
        if isinstance(done, int):  # the first format: a prefix count
            done = [[0, done]]
        done = merge_intervals((int(lo), int(hi)) for lo, hi in done)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"progress file {str(path)!r} is unreadable ({exc}): pass overwrite=True "
                         "(--overwrite) to restart the generation") from exc
    return {"plan": plan, "done": done}


def _write_progress(path: Path, plan: dict, done) -> None:
    write_json(path, {"plan": plan, "done": done, "n_done": _count(done)})


def _rank_files(out: Path) -> list[Path]:
    return sorted(f for f in out.iterdir() if re.fullmatch(r"\.progress\.rank\d+\.json", f.name))


def _gather_progress(out: Path, plan: dict) -> list[list[int]]:
    """Union of the intervals recorded by all ranks (files of another plan are ignored)."""
    done = read_progress(out / PROGRESS)["done"]
    for f in _rank_files(out):
        try:
            state = read_progress(f)
        except ValueError:
            continue  # a rank killed mid-write leaves at worst a stale file: redo its chunks
        if state["plan"] == plan:
            done = merge_intervals(done + state["done"])
    return done


def _npy_offset(path: Path, shape: tuple[int, ...]) -> int:
    """Byte offset of the data of a float64 C-order .npy file of `shape`; ValueError if not one."""
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                got, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                got, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except (ValueError, SyntaxError, tokenize.TokenError) as exc:  # a corrupted header
            raise ValueError(f"{path.name} is not a .npy file: {exc}") from exc
        offset = fh.tell()
    if got != shape or fortran or dtype != np.dtype("<f8"):
        raise ValueError(f"{path.name} holds {dtype} {got}, expected float64 {shape}")
    size, data = path.stat().st_size, shape[0] * _row_bytes(shape)
    if size != offset + data:
        raise ValueError(f"{path.name} has {size} bytes, expected {offset + data}")
    return offset


def _create_npy(path: Path, shape: tuple[int, ...]) -> None:
    """An .npy file of float64 zeros of `shape`, allocated sparsely (no data written)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
        fh.truncate(fh.tell() + shape[0] * _row_bytes(shape))


def _wipe(out: Path) -> None:
    """Remove dataset files and leftovers of fastvp from `out`; other files are kept."""
    if out.is_dir():
        for f in out.iterdir():
            if _OURS.fullmatch(f.name) and f.is_file():
                f.unlink()


def _start(out: Path, plan: dict) -> None:
    need = planned_bytes(plan)
    check_free_space(out, need, "out_dir", f"the dataset ({plan['n_examples']} examples x "
                     f"{len(plan['files'])} arrays)")
    out.mkdir(parents=True, exist_ok=True)
    _write_progress(out / PROGRESS, plan, [])  # first: from here on the folder reads as unfinished
    for name in plan["files"]:
        _create_npy(out / (name + PARTIAL), _shape(plan, name))
    fsync_dir(out)


def _complete(out: Path, plan: dict) -> bool:
    try:
        meta = json.loads((out / METADATA).read_text())
        if meta != {k: v for k, v in plan.items() if k != "files"}:
            return False
        load_dataset(out)
    except (OSError, ValueError):
        return False
    return True


def prepare(out: Path, plan: dict, resume: bool, overwrite: bool) -> list[list[int]] | None:
    """Rank 0: check the folder and get it ready. Returns the intervals already written, or
    None when `out` already holds this very dataset (resume of a finished run)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    progress_path = out / PROGRESS
    if progress_path.exists():
        try:
            state = read_progress(progress_path)
        except ValueError:
            if not overwrite:
                raise
            state = None
        if state is not None and resume and state["plan"] == plan:
            done = _gather_progress(out, plan)
            if missing_intervals(done, plan["n_examples"]):
                try:
                    for name in plan["files"]:
                        _npy_offset(out / (name + PARTIAL), _shape(plan, name))
                except (OSError, ValueError) as exc:
                    if done and not overwrite:
                        raise ValueError(f"out_dir {str(out)!r} holds an unfinished generation whose "
                                         f"files are damaged ({exc}): pass overwrite=True "
                                         "(--overwrite) to restart it") from exc
                    _wipe(out)
                    _start(out, plan)
                    return []
            _write_progress(progress_path, plan, done)
            for f in _rank_files(out):
                f.unlink()
            return done
        if not overwrite:
            if not resume:
                raise ValueError(f"out_dir {str(out)!r} holds an unfinished generation: pass resume=True "
                                 "(--resume) to continue it or overwrite=True (--overwrite) to restart")
            raise ValueError(f"out_dir {str(out)!r} holds an unfinished generation of other settings "
                             f"(n_examples, seed, config or version): resume it with the same ones, "
                             "or pass overwrite=True (--overwrite) to restart")
        _wipe(out)
    elif out.is_dir():
        entries = list(out.iterdir())
        if entries and all(_OURS.fullmatch(f.name) and f.name.endswith(PARTIAL) for f in entries):
            _wipe(out)  # killed while writing the very first progress file
        elif entries:
            if resume and _complete(out, plan):
                return None
            if not overwrite:
                raise ValueError(f"out_dir {str(out)!r} already holds data ({len(entries)} entries, e.g. "
                                 f"{sorted(f.name for f in entries)[:3]}): pass overwrite=True "
                                 "(--overwrite) to replace it")
            _wipe(out)
    _start(out, plan)
    return []


def finish(out: Path, plan: dict) -> None:
    """Rank 0, once every rank is done: rename the partial files into place."""
    n = plan["n_examples"]
    done = _gather_progress(out, plan)
    if missing_intervals(done, n):
        raise RuntimeError(f"examples {missing_intervals(done, n)} of {str(out)!r} were not written")
    _write_progress(out / PROGRESS, plan, done)
    for f in _rank_files(out):
        f.unlink()
    for name in plan["files"]:  # idempotent: a run killed while renaming resumes here
        if (out / (name + PARTIAL)).exists():
            os.replace(out / (name + PARTIAL), out / name)
    fsync_dir(out)
    write_json(out / METADATA, {k: v for k, v in plan.items() if k != "files"})
    (out / PROGRESS).unlink()
    fsync_dir(out)


def _write_rows(fd: int, offset: int, array: np.ndarray) -> None:
    """Write all bytes of `array` at byte `offset` of the open file `fd`."""
    view = memoryview(np.ascontiguousarray(array)).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


#: Seconds between two syncs of the written rows to disk (each followed by a progress
#: record): a kill loses at most this much work; more often costs fsync time.
SYNC_INTERVAL = 2.0


class ChunkWriter:
    """Writes chunks of rows into the partial files from a background thread.

    At most one chunk waits to be written while the next is simulated, so memory holds
    two chunks. Every SYNC_INTERVAL seconds, and at close, the files are fsync'ed and only
    then the written intervals are added to the progress file: progress never runs ahead
    of the data on disk, even after a power loss.
    """

    def __init__(self, out: Path, plan: dict, progress_path: Path, done: list[list[int]]):
        self.plan, self.progress_path, self.done = plan, progress_path, done
        self.fds: dict[str, tuple[int, int, int]] = {}
        for name in plan["files"]:
            shape = _shape(plan, name)
            path = out / (name + PARTIAL)
            self.fds[name] = (os.open(path, os.O_WRONLY), _npy_offset(path, shape), _row_bytes(shape))
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastvp-writer")
        self.pending = None
        self.unsynced: list[list[int]] = []
        self.last_sync = time.monotonic()

    def submit(self, lo: int, hi: int, rows: dict[str, np.ndarray]) -> None:
        self.wait()
        self.pending = self.pool.submit(self._write, lo, hi, rows)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # raises here what the writer raised

    def _write(self, lo: int, hi: int, rows: dict[str, np.ndarray]) -> None:
        for name, array in rows.items():
            fd, offset, row_bytes = self.fds[name]
            _write_rows(fd, offset + lo * row_bytes, array)
        self.unsynced.append([lo, hi])
        if time.monotonic() - self.last_sync >= SYNC_INTERVAL:
            self._sync()

    def _sync(self) -> None:
        if self.unsynced:
            for fd, _, _ in self.fds.values():
                os.fsync(fd)
            self.done = merge_intervals(self.done + self.unsynced)
            self.unsynced = []
            _write_progress(self.progress_path, self.plan, self.done)
        self.last_sync = time.monotonic()

    def close(self) -> None:
        try:
            self.wait()
            self._sync()
        finally:
            self.pool.shutdown()
            for fd, _, _ in self.fds.values():
                os.close(fd)
