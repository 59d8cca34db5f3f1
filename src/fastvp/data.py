"""Dataset folders in the layout of the authors' generator, plus fastvp's metadata.

A folder holds one float64 ``.npy`` file per snapshot and variable, named by the step
number: ``Q00.npy, P00.npy, Q05.npy, P05.npy, ..., Q25.npy, P25.npy`` ([n, N]) and
``Cond.npy`` ([n, 2] = sigma_q, sigma_p). fastvp adds ``metadata.json`` (config, scheme,
seed, version); folders without it (the official generator's) are read with the paper
preset. Generation fills temporary files chunk by chunk, records its progress after each
flushed chunk, and renames the files into place only when all are complete: a folder
shows complete files or none, and a killed run resumes where it stopped with the same bytes.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .backend import resolve_device
from .config import PAPER_SPLIT, PICConfig

SPLITS = ("train", "val", "test")
METADATA = "metadata.json"
PROGRESS = ".progress.json"
PARTIAL = ".partial"


def _name(var: str, step: int) -> str:
    return f"{var}{step:02d}.npy"


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes: the paper's 20000/6384/6384 of 32768, in proportion otherwise."""
    total = sum(PAPER_SPLIT)
    n_train = round(n * PAPER_SPLIT[0] / total)
    n_val = round(n * PAPER_SPLIT[1] / total)
    return n_train, n_val, n - n_train - n_val


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + PARTIAL)
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- reading


@dataclass
class Dataset:
    """Snapshots of n examples, read lazily (memory-mapped) from a dataset folder.

    times: snapshot times; steps: their step numbers; q(step), p(step): [n, N] float64;
    cond: [n, 2] (sigma_q, sigma_p); config: the PICConfig that made it.
    """

    path: Path
    config: PICConfig
    steps: list[int]
    indices: slice
    metadata: dict

    @property
    def times(self) -> list[float]:
        return [s * self.config.dt for s in self.steps]

    def __len__(self) -> int:
        start, stop, _ = self.indices.indices(self._total())
        return max(0, stop - start)

    def _total(self) -> int:
        return self._array("Cond.npy").shape[0]

    def _array(self, name: str) -> np.ndarray:
        return np.load(self.path / name, mmap_mode="r")

    def _step(self, step: int) -> int:
        if step not in self.steps:
            raise ValueError(f"step must be one of the snapshot steps {self.steps}, got {step!r}")
        return step

    def q(self, step: int) -> np.ndarray:
        """Positions at snapshot `step`: [n, N] float64."""
        return np.asarray(self._array(_name("Q", self._step(step)))[self.indices])

    def p(self, step: int) -> np.ndarray:
        """Momenta at snapshot `step`: [n, N] float64."""
        return np.asarray(self._array(_name("P", self._step(step)))[self.indices])

    @property
    def cond(self) -> np.ndarray:
        """[n, 2] = (sigma_q, sigma_p) of each example."""
        return np.asarray(self._array("Cond.npy")[self.indices])

    @property
    def n_particles(self) -> int:
        return self._array(_name("Q", self.steps[0])).shape[1]

    def split(self, name: str) -> Dataset:
        """The "train", "val" or "test" part (the paper's order and proportions)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        start, stop, _ = self.indices.indices(self._total())
        sizes = split_sizes(stop - start)
        lo = start + sum(sizes[: SPLITS.index(name)])
        return Dataset(self.path, self.config, self.steps, slice(lo, lo + sizes[SPLITS.index(name)]),
                       self.metadata)

    def batch(self, step: int = 0, device=None, dtype=torch.float64):
        """The examples' state at snapshot `step` as a fastvp.Batch (mu from the config)."""
        from .initial import Batch

        cond = torch.as_tensor(self.cond, dtype=dtype, device=device)
        n = cond.shape[0]
        return Batch(
            q=torch.as_tensor(self.q(step), dtype=dtype, device=device),
            p=torch.as_tensor(self.p(step), dtype=dtype, device=device),
            sigma_q=cond[:, 0].contiguous(),
            sigma_p=cond[:, 1].contiguous(),
            mu_q=torch.full((n,), self.config.mu_q, dtype=dtype, device=device),
            mu_p=torch.full((n,), self.config.mu_p, dtype=dtype, device=device),
        )


def load_dataset(path) -> Dataset:
    """Open a dataset folder written by fastvp or by the authors' generator."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {str(path)!r} does not exist")
    if (path / PROGRESS).exists():
        raise ValueError(f"dataset folder {str(path)!r} is an unfinished generation: resume it first")
    meta_path = path / METADATA
    if meta_path.exists():
        try:
            metadata = json.loads(meta_path.read_text())
            config = PICConfig.from_dict(metadata["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{str(meta_path)!r} is not a fastvp metadata file: {exc}") from exc
    else:
        metadata = {}
        config = PICConfig(scheme="official")
    found = {}
    for f in path.iterdir():
        m = re.fullmatch(r"([QP])(\d+)\.npy", f.name)
        if m:
            found.setdefault(int(m.group(2)), set()).add(m.group(1))
    if not found:
        raise ValueError(f"dataset folder {str(path)!r} holds no Q??.npy / P??.npy arrays")
    steps = sorted(found)
    missing = [_name(v, s) for s in steps for v in "QP" if v not in found[s]]
    if not (path / "Cond.npy").exists():
        missing.append("Cond.npy")
    if missing:
        raise ValueError(f"dataset folder {str(path)!r} is missing {missing}")
    if meta_path.exists() and steps != config.snapshot_steps:
        raise ValueError(f"dataset folder {str(path)!r} holds steps {steps}, its metadata says "
                         f"{config.snapshot_steps}")
    try:
        cond = np.load(path / "Cond.npy", mmap_mode="r")
        shapes = {_name(v, s): np.load(path / _name(v, s), mmap_mode="r").shape for s in steps for v in "QP"}
    except (ValueError, OSError) as exc:
        raise ValueError(f"dataset folder {str(path)!r} holds an unreadable array: {exc}") from exc
    if cond.ndim != 2 or cond.shape[1] != 2:
        raise ValueError(f"Cond.npy in {str(path)!r} must have shape [n, 2], got {cond.shape}")
    bad = {k: s for k, s in shapes.items() if len(s) != 2 or s[0] != cond.shape[0]}
    ref = shapes[_name("Q", steps[0])]
    bad.update({k: s for k, s in shapes.items() if s != ref})
    if bad:
        raise ValueError(f"arrays of {str(path)!r} disagree in shape: Cond.npy {cond.shape}, {bad}")
    if not metadata and ref[1] != config.n_particles:
        config = config.replace(n_particles=ref[1])
    return Dataset(path, config, steps, slice(0, cond.shape[0]), metadata)


# ---------------------------------------------------------------------------- writing


def _plan(n_examples: int, config: PICConfig, seed: int) -> dict:
    from . import __version__

    return {
        "format": "fastvp-dataset/1",
        "fastvp_version": __version__,
        "n_examples": n_examples,
        "seed": seed,
        "scheme": config.scheme,
        "config": config.to_dict(),
        "files": [_name(v, s) for s in config.snapshot_steps for v in "QP"] + ["Cond.npy"],
        "split": dict(zip(SPLITS, split_sizes(n_examples))),
    }


def generate_dataset(
    out_dir,
    n_examples: int = 32768,
    config: PICConfig | None = None,
    seed: int = 0,
    *,
    chunk_size: int | None = None,
    device=None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    kernels: str | None = None,
) -> Dataset:
    """Simulate `n_examples` paper-style examples and write them as a dataset folder.

    Writes Q00.npy, P00.npy, ..., Cond.npy (float64, the official layout) and metadata.json.
    Simulation runs in float64 on `device`, `chunk_size` examples at a time (memory stays
    bounded); example i is the same whatever the chunking. `resume=True` continues an
    interrupted generation; `overwrite=True` replaces an existing dataset.
    """
    from .initial import initial_conditions
    from .pic.simulate import simulate

    config = config or PICConfig()
    if not isinstance(config, PICConfig):
        raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
    if isinstance(n_examples, bool) or not isinstance(n_examples, (int, np.integer)) or n_examples < 1:
        raise ValueError(f"n_examples must be an integer >= 1, got {n_examples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    n_examples, seed = int(n_examples), int(seed)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    plan = _plan(n_examples, config, seed)
    progress_path = out / PROGRESS

    done = 0
    if progress_path.exists():
        if not resume and not overwrite:
            raise ValueError(f"out_dir {str(out)!r} holds an unfinished generation: pass resume=True "
                             "(--resume) to continue it or overwrite=True (--overwrite) to restart")
        if resume:
            state = json.loads(progress_path.read_text())
            if state["plan"] != plan:
                raise ValueError(f"out_dir {str(out)!r} holds an unfinished generation of other "
                                 "settings: resume it with the same ones, or pass overwrite=True")
            done = int(state["done"])
    elif out.is_dir() and any(out.iterdir()):
        if resume and not overwrite and (out / METADATA).exists():
            meta = json.loads((out / METADATA).read_text())
            if meta == {k: v for k, v in plan.items() if k != "files"}:
                return load_dataset(out)  # already complete
        if not overwrite:
            raise ValueError(f"out_dir {str(out)!r} already holds data: pass overwrite=True "
                             "(--overwrite) to replace it")
    if overwrite and done == 0:
        for name in plan["files"] + [METADATA, PROGRESS]:
            for f in (out / name, out / (name + PARTIAL)):
                if f.exists():
                    f.unlink()
    out.mkdir(parents=True, exist_ok=True)

    if not done:
        _atomic_json(progress_path, {"plan": plan, "done": 0})
    n = config.n_particles
    arrays = {}
    if done < n_examples:
        for name in plan["files"]:
            shape = (n_examples, 2) if name == "Cond.npy" else (n_examples, n)
            arrays[name] = np.lib.format.open_memmap(out / (name + PARTIAL), mode="r+" if done else "w+",
                                                     dtype=np.float64, shape=shape)

    dev = resolve_device(device) if device is not None else torch.device("cpu")
    chunk = chunk_size or 4096
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_examples, initial=done, unit="ex", desc="simulate", leave=False)
    try:
        for lo in range(done, n_examples, chunk):
            hi = min(n_examples, lo + chunk)
            batch = initial_conditions(hi - lo, config=config, seed=seed, start=lo, device=dev)
            traj = simulate(batch, config, kernels=kernels)
            for i, step in enumerate(config.snapshot_steps):
                arrays[_name("Q", step)][lo:hi] = traj.q[i].cpu().numpy()
                arrays[_name("P", step)][lo:hi] = traj.p[i].cpu().numpy()
            arrays["Cond.npy"][lo:hi, 0] = batch.sigma_q.cpu().numpy()
            arrays["Cond.npy"][lo:hi, 1] = batch.sigma_p.cpu().numpy()
            for a in arrays.values():
                a.flush()
            _atomic_json(progress_path, {"plan": plan, "done": hi})
            if bar is not None:
                bar.update(hi - lo)
    finally:
        if bar is not None:
            bar.close()
    for a in arrays.values():
        a.flush()
    del arrays
    for name in plan["files"]:  # idempotent: a run killed while renaming resumes here
        if (out / (name + PARTIAL)).exists():
            os.replace(out / (name + PARTIAL), out / name)
    _atomic_json(out / METADATA, {k: v for k, v in plan.items() if k != "files"})
    progress_path.unlink()
    return load_dataset(out)
