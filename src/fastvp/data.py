"""Dataset folders in the layout of the authors' generator, plus fastvp's metadata.

A folder holds one float64 ``.npy`` file per snapshot and variable, named by the step
number zero-padded to the digits of the last step (at least two): ``Q00.npy, P00.npy,
Q05.npy, P05.npy, ..., Q25.npy, P25.npy`` ([n, N]) for the paper preset, ``Q000.npy ...
Q250.npy`` for 250 steps; and ``Cond.npy`` ([n, 2] = sigma_q, sigma_p of each example's
initial Gaussian). fastvp adds ``metadata.json`` (config, scheme, seed, split, version and
their fingerprint); a folder without it is read as the official generator's output (the
paper preset, its scheme) only if it holds exactly their files, Q00.npy ... Q25.npy,
P00.npy ... P25.npy every 5 steps and Cond.npy.

A dataset of a standard problem (``fastvp.problems``, ``generate_dataset(problem=...)``)
records it in metadata.json under "problem" (name, quiet start, parameters, and the names
of the columns of ``Params.npy``) and adds ``Params.npy`` ([n, P] = each example's
per-example parameters). It holds ``Cond.npy`` only where the initial conditions are
Gaussians (the paper problem): the other problems' examples have no sigma_q, sigma_p, and
PDE-NHF's likelihood cannot be trained on them (``require_gaussian``).
``dataset_fingerprint(ds)`` says what made a dataset, for the checks of a resumed
training run. Generation fills temporary files chunk by chunk, records its progress once the
rows are synced to disk, and renames the files into place only when all are complete: a
folder shows complete files or none, and a killed run resumes where it stopped with the
same bytes, with any chunk size and any number of torch.distributed ranks.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import validation as check
from .backend import default_threads, resolve_device
from .config import PAPER_SPLIT, PICConfig
from .files import atomic_write_text, check_free_space, check_writable, digest, fsync_dir

FORMAT = "fastvp-dataset/1"
SPLITS = ("train", "val", "test")
METADATA = "metadata.json"
PARAMS = "Params.npy"
PROGRESS = ".progress.json"
PARTIAL = ".partial"


def _name(var: str, step: int, width: int = 2) -> str:
    return f"{var}{step:0{width}d}.npy"


def step_width(steps: int) -> int:
    """Digits of the step numbers in the snapshot file names: those of the last step, at
    least 2 (Q00 ... Q25 for 25 steps, Q000 ... Q250 for 250)."""
    return max(2, len(str(steps)))


def require_finite(ds: Dataset, steps, n: int | None = None) -> None:
    """Raise ValueError naming the file and the example if a value is NaN or infinite.

    Checks Q/P files of `steps` and Cond.npy over the first `n` examples of the view `ds`
    (all by default); the example is numbered as in the folder (its row).
    """
    start = ds.indices.indices(ds._total())[0]
    names = [ds._file(v, s) for s in steps for v in ("Q", "P")] + list(_extras(ds.metadata))
    for name in names:
        rows = np.asarray(ds._array(name)[ds.indices][:n])
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{name} of {str(ds.path)!r} holds a non-finite value at example "
                             f"{start + row} (row {row} of the {ds.split_name!r} split)")
    if not ds.gaussian:
        return
    cond = np.asarray(ds._array("Cond.npy")[ds.indices][:n])
    if (cond <= 0).any():
        row = int(np.argmax((cond <= 0).any(axis=1)))
        raise ValueError(f"Cond.npy of {str(ds.path)!r} holds a sigma <= 0 at example {start + row}")


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes: the paper's 20000/6384/6384 of 32768, in proportion otherwise."""
    total = sum(PAPER_SPLIT)
    n_train = round(n * PAPER_SPLIT[0] / total)
    n_val = round(n * PAPER_SPLIT[1] / total)
    return n_train, n_val, n - n_train - n_val


#: What a dataset's fingerprint is made of, in the order a difference is told.
FINGERPRINT_FIELDS = ("layout", "format", "interaction", "scheme", "problem", "seed", "n_examples",
                      "rows", "split", "config", "content")


def recipe_digest(meta: dict) -> str:
    """The fingerprint of a fastvp generation: a digest of its format, config, seed,
    number of examples and split, and of its problem where it has one (``metadata.json``
    holds it as "fingerprint")."""
    keys = ("format", "config", "seed", "n_examples", "split") + (("problem",) if "problem" in meta else ())
    return digest({k: meta.get(k) for k in keys})


def dataset_fingerprint(ds: Dataset) -> dict:
    """What made the examples of `ds`: its layout and format, physics (config, scheme,
    interaction), problem (a dataset of ``fastvp.problems``: its name, parameters and quiet
    start), seed, number of examples, split, and the rows of the folder it covers.

    A folder of the authors' layout has no seed: the SHA-256 of its Cond.npy stands for
    it ("content"). "digest" condenses all of it; "path" says where it was read (not part
    of the digest: a moved folder is the same data).
    """
    import hashlib

    meta = ds.metadata
    start, stop, _ = ds.indices.indices(ds._total())
    out = {"layout": "fastvp" if meta else "authors", "format": meta.get("format", "authors"),
           "interaction": ds.config.interaction, "scheme": ds.config.scheme,
           "seed": meta.get("seed"), "n_examples": ds._total(), "rows": [start, stop],
           "split": dict(zip(SPLITS, split_sizes(ds._total()))), "config": ds.config.to_dict()}
    if ds.problem is not None:
        out["problem"] = ds.problem
    if not meta:
        out["content"] = hashlib.sha256((Path(ds.path) / "Cond.npy").read_bytes()).hexdigest()[:16]
    out["digest"] = digest(out)
    return {**out, "path": str(ds.path)}


def fingerprint_difference(a: dict, b: dict, names: tuple[str, str] = ("a", "b")) -> list[str]:
    """What differs between two dataset fingerprints, each value after its name:
    ["interaction: run electrostatic, data gravitational", ...] for names ("run", "data");
    config fields one by one. Empty when they agree."""
    def told(key, x, y) -> str:
        return f"{key}: {names[0]} {x}, {names[1]} {y}"

    out = []
    for key in FINGERPRINT_FIELDS:
        x, y = a.get(key), b.get(key)
        if key in ("config", "problem") and isinstance(x, dict) and isinstance(y, dict):
            prefix = "problem " if key == "problem" else ""
            out += [told(prefix + k, x.get(k), y.get(k)) for k in sorted(set(x) | set(y))
                    if x.get(k) != y.get(k) and k not in ("scheme", "interaction")]
        elif x != y:
            out.append(told(key, x, y))
    return out


def _atomic_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------- reading


@dataclass
class Dataset:
    """Snapshots of n examples, read lazily (memory-mapped) from a dataset folder.

    times: snapshot times; steps: their step numbers; q(step), p(step): [n, N] float64;
    cond: [n, 2] (sigma_q, sigma_p; Gaussian initial conditions only); problem: the
    metadata of a ``fastvp.problems`` dataset (None otherwise), params: its [n, P]
    per-example parameters named by param_names; config: the PICConfig that made it;
    width: the digits of the step numbers in its file names.
    """

    path: Path
    config: PICConfig
    steps: list[int]
    indices: slice
    metadata: dict
    split_name: str = "all"
    width: int = 2

    @property
    def times(self) -> list[float]:
        return [s * self.config.dt for s in self.steps]

    @property
    def layout(self) -> str:
        """"fastvp" (with metadata.json) or "authors" (their generator's files alone)."""
        return "fastvp" if self.metadata else "authors"

    @property
    def problem(self) -> dict | None:
        """metadata.json's "problem" (name, quiet, gaussian, params, columns), or None for a
        dataset of the paper preset made without a problem (and the authors' folders)."""
        return self.metadata.get("problem")

    @property
    def gaussian(self) -> bool:
        """Each example starts from the Gaussians N(mu, sigma^2) that Cond.npy gives."""
        return _gaussian(self.metadata)

    def __len__(self) -> int:
        start, stop, _ = self.indices.indices(self._total())
        return max(0, stop - start)

    def _total(self) -> int:
        return self._array(self._file("Q", self.steps[0])).shape[0]

    def _array(self, name: str) -> np.ndarray:
        return np.load(self.path / name, mmap_mode="r")

    def _file(self, var: str, step: int) -> str:
        return _name(var, step, self.width)

    def _step(self, step: int) -> int:
        if step not in self.steps:
            raise ValueError(f"step must be one of the snapshot steps {self.steps}, got {step!r}")
        return step

    def q(self, step: int) -> np.ndarray:
        """Positions at snapshot `step`: [n, N] float64."""
        return np.array(self._array(self._file("Q", self._step(step)))[self.indices])

    def p(self, step: int) -> np.ndarray:
        """Momenta at snapshot `step`: [n, N] float64."""
        return np.array(self._array(self._file("P", self._step(step)))[self.indices])

    @property
    def cond(self) -> np.ndarray:
        """[n, 2] = (sigma_q, sigma_p) of each example; ValueError for a problem dataset
        whose initial conditions are not Gaussian (it has no Cond.npy)."""
        require_gaussian(self, "cond")
        return np.array(self._array("Cond.npy")[self.indices])

    @property
    def params(self) -> np.ndarray:
        """[n, P] per-example parameters of a problem dataset, columns ``param_names``."""
        if self.problem is None:
            raise ValueError(f"dataset {str(self.path)!r} was not made from a fastvp.problems "
                             "problem: it has no Params.npy (its sigma_q, sigma_p are cond)")
        return np.array(self._array(PARAMS)[self.indices])

    @property
    def param_names(self) -> list[str]:
        """The names of the columns of ``params`` (empty without a problem)."""
        return list(self.problem["columns"]) if self.problem is not None else []

    @property
    def n_particles(self) -> int:
        return self._array(self._file("Q", self.steps[0])).shape[1]

    def split(self, name: str) -> Dataset:
        """The "train", "val" or "test" part (the paper's order and proportions)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        start, stop, _ = self.indices.indices(self._total())
        sizes = split_sizes(stop - start)
        lo = start + sum(sizes[: SPLITS.index(name)])
        return Dataset(self.path, self.config, self.steps, slice(lo, lo + sizes[SPLITS.index(name)]),
                       self.metadata, name, self.width)

    def batch(self, step: int = 0, device=None, dtype=torch.float64):
        """The examples' state at snapshot `step` as a fastvp.Batch: sigma from Cond.npy and
        mu from the config; for a non-Gaussian problem, the sample means and stds of the
        snapshot (as ``Problem.initial_conditions`` gives them)."""
        from .initial import Batch, as_batch

        q = torch.as_tensor(self.q(step), dtype=dtype, device=device)
        p = torch.as_tensor(self.p(step), dtype=dtype, device=device)
        if not self.gaussian:
            return as_batch((q, p))
        cond = torch.as_tensor(self.cond, dtype=dtype, device=device)
        n = cond.shape[0]
        return Batch(
            q=q,
            p=p,
            sigma_q=cond[:, 0].contiguous(),
            sigma_p=cond[:, 1].contiguous(),
            mu_q=torch.full((n,), self.config.mu_q, dtype=dtype, device=device),
            mu_p=torch.full((n,), self.config.mu_p, dtype=dtype, device=device),
        )


def _gaussian(metadata: dict) -> bool:
    """Whether a folder of this metadata has Gaussian initial conditions (and Cond.npy)."""
    problem = metadata.get("problem")
    return problem is None or bool(problem.get("gaussian"))


def _extras(metadata: dict) -> dict[str, int]:
    """The arrays of a folder besides its snapshots: {name: columns}."""
    out = {"Cond.npy": 2} if _gaussian(metadata) else {}
    if metadata.get("problem") is not None:
        out[PARAMS] = len(metadata["problem"]["columns"])
    return out


def require_gaussian(ds: Dataset, purpose: str = "PDE-NHF's likelihood") -> None:
    """Raise ValueError unless each example of `ds` starts from a known Gaussian.

    PDE-NHF's likelihood is that of the initial Gaussian N(mu, sigma^2) pushed through the
    flow: it needs every example's (sigma_q, sigma_p), which only the paper preset has (the
    datasets of ``fastvp simulate`` without --problem, or with --problem paper). `purpose`
    says what needs them, in the message.
    """
    if isinstance(ds, Dataset) and not ds.gaussian:
        raise ValueError(
            f"dataset {str(ds.path)!r} holds the {ds.problem['name']!r} problem, whose initial "
            f"conditions are not Gaussian: {purpose} needs each example's initial Gaussian "
            "(sigma_q, sigma_p; Cond.npy), which only the paper preset has (fastvp simulate "
            "without --problem, or --problem paper)")


def load_dataset(path) -> Dataset:
    """Open a dataset folder written by fastvp or by the authors' generator.

    Args:
        path: the folder (Q00.npy, P00.npy, ..., Cond.npy, and metadata.json for fastvp's;
            a problem's folder has Params.npy, and Cond.npy only for Gaussian problems).

    Returns:
        A Dataset read lazily (memory-mapped): ``times``, ``q(step)`` / ``p(step)`` [n, N],
        ``cond`` [n, 2], ``split("train" | "val" | "test")``; a problem's ``problem`` and
        ``params`` [n, P].

    Raises:
        FileNotFoundError: no such folder.
        ValueError: missing, unreadable or inconsistent arrays, or an unfinished generation.

    Example:
        >>> import tempfile, fastvp
        >>> folder = tempfile.mkdtemp()
        >>> _ = fastvp.generate_dataset(folder, n_examples=8, progress=False)
        >>> ds = fastvp.load_dataset(folder)
        >>> ds.times[-1], ds.q(25).shape, len(ds.split("train"))
        (1.0, (8, 256), 5)
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {str(path)!r} does not exist")
    if (path / PROGRESS).exists():
        raise ValueError(f"dataset folder {str(path)!r} is an unfinished generation: resume it first")
    metadata, config = _read_metadata(path)
    steps, width = _snapshot_steps(path, metadata, config)
    ref = _check_arrays(path, [_name(v, s, width) for s in steps for v in "QP"], _extras(metadata))
    if metadata:
        expected = (metadata.get("n_examples", ref[0]), config.n_particles)
        if ref != expected:
            raise ValueError(f"arrays of {str(path)!r} have shape {ref}, its metadata says "
                             f"(n_examples, n_particles) = {expected}")
    elif ref[1] != config.n_particles:
        config = config.replace(n_particles=ref[1])
    return Dataset(path, config, steps, slice(0, ref[0]), metadata, width=width)


#: The authors' generator writes these snapshot steps (the paper preset's).
AUTHORS_STEPS = PICConfig().snapshot_steps


def _read_metadata(path: Path) -> tuple[dict, PICConfig]:
    """(metadata, config) of a folder: its metadata.json, else ({}, the authors' setup)."""
    meta_path = path / METADATA
    if not meta_path.exists():
        return {}, PICConfig(scheme="official")
    try:
        metadata = json.loads(meta_path.read_text())
        config = PICConfig.from_dict(metadata["config"])
        if metadata.get("problem") is not None and not isinstance(metadata["problem"]["columns"], list):
            raise TypeError("its problem's columns must be a list of names")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{str(meta_path)!r} is not a fastvp metadata file: {exc}") from exc
    return metadata, config


def _snapshot_steps(path: Path, metadata: dict, config: PICConfig) -> tuple[list[int], int]:
    """(the snapshot steps of the folder's Q??.npy / P??.npy files, the digits of their
    names), checked against its metadata, or (no metadata) against the authors' layout."""
    found: dict[int, set] = {}
    names = set()
    for f in path.iterdir():
        m = re.fullmatch(r"([QP])(\d+)\.npy", f.name)
        if m:
            found.setdefault(int(m.group(2)), set()).add(m.group(1))
            names.add(f.name)
    if not found:
        raise ValueError(f"dataset folder {str(path)!r} holds no Q??.npy / P??.npy arrays")
    steps = sorted(found)
    width = min(len(n) - len("Q.npy") for n in names)
    odd = names - {_name(v, s, width) for s in steps for v in found[s]}
    if odd:
        raise ValueError(f"dataset folder {str(path)!r} names its snapshots with {width} digits "
                         f"and otherwise: {sorted(odd)}")
    extras = _extras(metadata)
    names |= {name for name in extras if (path / name).exists()}
    if not metadata:
        wanted = {_name(v, s) for s in AUTHORS_STEPS for v in "QP"} | {"Cond.npy"}
        if names != wanted:
            raise ValueError(
                f"dataset folder {str(path)!r} has no {METADATA} and is not in the authors' layout "
                f"(Q00.npy ... Q25.npy, P00.npy ... P25.npy every 5 steps, Cond.npy): missing "
                f"{sorted(wanted - names)}, unexpected {sorted(names - wanted)}")
    missing = [_name(v, s, width) for s in steps for v in "QP" if v not in found[s]]
    missing += [name for name in extras if name not in names]
    if missing:
        raise ValueError(f"dataset folder {str(path)!r} is missing {missing}")
    if metadata and steps != config.snapshot_steps:
        raise ValueError(f"dataset folder {str(path)!r} holds steps {steps}, its metadata says "
                         f"{config.snapshot_steps}")
    return steps, width


def _check_arrays(path: Path, snapshots: list[str], extras: dict[str, int]) -> tuple[int, int]:
    """The [n, N] shape of every snapshot array, once all are readable float arrays of one
    shape, n >= 1 examples of N >= 1 particles, and each extra array (Cond.npy, Params.npy)
    has n rows of its number of columns."""
    arrays = {}
    for name in snapshots + list(extras):
        try:
            arrays[name] = np.load(path / name, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"dataset folder {str(path)!r} holds an unreadable array {name}: "
                             "not a complete .npy file (truncated, or another format)") from exc
    dtypes = {k: str(a.dtype) for k, a in arrays.items() if a.dtype.kind != "f"}
    for name, columns in extras.items():
        if arrays[name].ndim != 2 or arrays[name].shape[1] != columns:
            raise ValueError(f"{name} in {str(path)!r} must have shape [n, {columns}], got "
                             f"{arrays[name].shape}")
    ref = arrays[snapshots[0]].shape
    bad = {k: a.shape for k, a in arrays.items() if len(a.shape) != 2 or len(ref) != 2
           or (a.shape != ref if k in snapshots else a.shape[0] != ref[0])}
    if bad:
        raise ValueError(f"arrays of {str(path)!r} disagree in shape: {snapshots[0]} {ref}, {bad}")
    if ref[0] == 0 or ref[1] == 0:
        raise ValueError(f"dataset folder {str(path)!r} holds no examples or no particles: shape {ref}")
    if dtypes:
        raise ValueError(f"arrays of {str(path)!r} must hold floating-point numbers, got {dtypes}")
    return ref


# ---------------------------------------------------------------------------- writing
#
# Layout of an unfinished folder: every array exists as ``NAME.npy.partial``, a complete
# .npy file of its final size whose rows are filled chunk by chunk with positioned writes
# (never memory-mapped, so the process holds one chunk, not the dataset); ``.progress.json``
# holds the plan and the example intervals [lo, hi) already written and synced to disk
# (rank 0's, and ``.progress.rank<r>.json`` those of rank r > 0 under torch.distributed).
# When every example is written, rank 0 renames the partial files into place, writes
# metadata.json, and removes the progress files last.

_OURS = re.compile(r"(?:[QP]\d+\.npy|Cond\.npy|Params\.npy|metadata\.json"
                   r"|\.progress(?:\.rank\d+)?\.json)(?:\.partial)?")


def _plan(n_examples: int, config: PICConfig, seed: int, problem: dict | None = None) -> dict:
    """What a generation writes (its metadata.json, and "files"); `problem`: the
    ``problem_entry`` of a problem's dataset."""
    from ._version import __version__

    width = step_width(config.steps)
    plan = {
        "format": FORMAT,
        "fastvp_version": __version__,
        "n_examples": n_examples,
        "seed": seed,
        "scheme": config.scheme,
        "interaction": config.interaction,
        "config": config.to_dict(),
        "files": [_name(v, s, width) for s in config.snapshot_steps for v in "QP"],
        "split": dict(zip(SPLITS, split_sizes(n_examples))),
    }
    if problem is not None:
        plan["problem"] = problem
    plan["files"] += list(_extras(plan))
    plan["fingerprint"] = recipe_digest(plan)
    return plan


def problem_entry(problem, quiet: bool) -> dict:
    """What metadata.json records of a ``fastvp.problems.Problem`` under "problem".

    name, quiet (the quiet start), gaussian (``Problem.gaussian``: Cond.npy is written),
    params ({name: value}; a per-example sequence as {"per_example": "Params.npy", "min",
    "max", "digest"}), columns (the per-example parameters: the columns of Params.npy).
    """
    params = {}
    for p in problem.table:
        v = problem.params[p.name]
        if isinstance(v, np.ndarray):
            v = {"per_example": PARAMS, "min": float(v.min()), "max": float(v.max()),
                 "digest": digest(v.astype("<f8").tolist())}
        elif v is not None:
            v = p.kind(v)
        params[p.name] = v
    return {"name": problem.name, "quiet": bool(quiet), "gaussian": bool(problem.gaussian),
            "params": params, "columns": [p.name for p in problem.table if p.per_example]}


def _shape(plan: dict, name: str) -> tuple[int, int]:
    n = plan["n_examples"]
    if name in ("Cond.npy", PARAMS):
        return (n, _extras(plan)[name])
    return (n, plan["config"]["n_particles"])


def _merge(intervals) -> list[list[int]]:
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


def _missing(done, n: int) -> list[tuple[int, int]]:
    """The intervals of [0, n) not in `done` (merged)."""
    gaps, at = [], 0
    for lo, hi in done:
        if lo > at:
            gaps.append((at, lo))
        at = max(at, hi)
    if at < n:
        gaps.append((at, n))
    return gaps


def _rank_progress(out: Path, rank: int) -> Path:
    return out / PROGRESS if rank == 0 else out / f".progress.rank{rank}.json"


def _read_progress(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
        plan, done = state["plan"], state["done"]
        if isinstance(done, int):  # the first format: a prefix count
            done = [[0, done]]
        done = _merge((int(lo), int(hi)) for lo, hi in done)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"progress file {str(path)!r} is unreadable ({exc}): pass overwrite=True "
                         "(--overwrite) to restart the generation") from exc
    return {"plan": plan, "done": done}


def _write_progress(path: Path, plan: dict, done) -> None:
    _atomic_json(path, {"plan": plan, "done": done, "n_done": _count(done)})


def _rank_files(out: Path) -> list[Path]:
    return sorted(f for f in out.iterdir() if re.fullmatch(r"\.progress\.rank\d+\.json", f.name))


def _gather_progress(out: Path, plan: dict) -> list[list[int]]:
    """Union of the intervals recorded by all ranks (files of another plan are ignored)."""
    done = _read_progress(out / PROGRESS)["done"]
    for f in _rank_files(out):
        try:
            state = _read_progress(f)
        except ValueError:
            continue  # a rank killed mid-write leaves at worst a stale file: redo its chunks
        if state["plan"] == plan:
            done = _merge(done + state["done"])
    return done


def _npy_offset(path: Path, shape: tuple[int, int]) -> int:
    """Byte offset of the data of a float64 C-order .npy file of `shape`; ValueError if not one."""
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                got, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                got, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise ValueError(f"{path.name} is not a .npy file: {exc}") from exc
        offset = fh.tell()
    if got != shape or fortran or dtype != np.dtype("<f8"):
        raise ValueError(f"{path.name} holds {dtype} {got}, expected float64 {shape}")
    size = path.stat().st_size
    if size != offset + 8 * shape[0] * shape[1]:
        raise ValueError(f"{path.name} has {size} bytes, expected {offset + 8 * shape[0] * shape[1]}")
    return offset


def _create_npy(path: Path, shape: tuple[int, int]) -> None:
    """An .npy file of float64 zeros of `shape`, allocated sparsely (no data written)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
        fh.truncate(fh.tell() + 8 * shape[0] * shape[1])


def _wipe(out: Path) -> None:
    """Remove dataset files and leftovers of fastvp from `out`; other files are kept."""
    if out.is_dir():
        for f in out.iterdir():
            if _OURS.fullmatch(f.name) and f.is_file():
                f.unlink()


def _start(out: Path, plan: dict) -> None:
    need = int(sum(8 * np.prod(_shape(plan, name)) for name in plan["files"]))
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


def _prepare(out: Path, plan: dict, resume: bool, overwrite: bool) -> list[list[int]] | None:
    """Rank 0: check the folder and get it ready. Returns the intervals already written, or
    None when `out` already holds this very dataset (resume of a finished run)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    progress_path = out / PROGRESS
    if progress_path.exists():
        try:
            state = _read_progress(progress_path)
        except ValueError:
            if not overwrite:
                raise
            state = None
        if state is not None and resume and state["plan"] == plan:
            done = _gather_progress(out, plan)
            if _missing(done, plan["n_examples"]):
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


def _finish(out: Path, plan: dict) -> None:
    """Rank 0, once every rank is done: rename the partial files into place."""
    n = plan["n_examples"]
    done = _gather_progress(out, plan)
    if _missing(done, n):
        raise RuntimeError(f"examples {_missing(done, n)} of {str(out)!r} were not written")
    _write_progress(out / PROGRESS, plan, done)
    for f in _rank_files(out):
        f.unlink()
    for name in plan["files"]:  # idempotent: a run killed while renaming resumes here
        if (out / (name + PARTIAL)).exists():
            os.replace(out / (name + PARTIAL), out / name)
    fsync_dir(out)
    _atomic_json(out / METADATA, {k: v for k, v in plan.items() if k != "files"})
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


class _Writer:
    """Writes chunks of rows into the partial files from a background thread.

    At most one chunk waits to be written while the next is simulated, so memory holds
    two chunks. Every SYNC_INTERVAL seconds, and at close, the files are fsync'ed and only
    then the written intervals are added to the progress file: progress never runs ahead
    of the data on disk, even after a power loss.
    """

    def __init__(self, out: Path, plan: dict, progress_path: Path, done: list[list[int]]):
        from concurrent.futures import ThreadPoolExecutor

        self.plan, self.progress_path, self.done = plan, progress_path, done
        self.fds: dict[str, tuple[int, int, int]] = {}
        for name in plan["files"]:
            shape = _shape(plan, name)
            path = out / (name + PARTIAL)
            self.fds[name] = (os.open(path, os.O_WRONLY), _npy_offset(path, shape), 8 * shape[1])
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
            self.done = _merge(self.done + self.unsynced)
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


def generate_dataset(
    out_dir,
    n_examples: int = 32768,
    config: PICConfig | None = None,
    seed: int = 0,
    *,
    problem=None,
    quiet: bool = False,
    chunk_size: int | None = None,
    device=None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    kernels: str | None = None,
    distributed: bool | None = None,
    threads: int | None = None,
) -> Dataset:
    """Simulate `n_examples` paper-style examples, or a problem's, and write a dataset folder.

    Writes Q00.npy, P00.npy, ..., Cond.npy (float64, the official layout) and metadata.json.
    Simulation runs in float64 on `device` (cpu by default), `chunk_size` examples at a time
    (default 4096, fewer where a chunk would hold more than 2^20 particles), with `threads`
    CPU threads (None: ``backend.default_threads()``, the cores other processes leave
    idle): the process holds one chunk, never the dataset. Example i is the same, byte for
    byte, whatever the chunking, the number of processes, or the interruptions.

    problem: a ``fastvp.problems.Problem`` (or its name, with its defaults) instead of
    `config`: its config, and examples i = 0 .. n - 1 of ``problem.initial_conditions(n,
    seed, quiet)`` (per-example parameters, if any, must describe `n_examples`). The folder
    records the problem in metadata.json and each example's per-example parameters in
    Params.npy; Cond.npy only where the problem's initial conditions are Gaussian (the
    paper problem). Step numbers are zero-padded to the digits of the last step.

    Files appear complete or not at all: until the end they are ``*.partial`` files beside
    ``.progress.json``. `resume=True` continues an interrupted generation (or returns a
    finished one with the same settings); `overwrite=True` replaces the dataset files found
    in `out_dir` (other files there are left alone). Without either, a folder that already
    holds data is refused (ValueError) and left untouched.

    distributed: shard examples over the processes of torch.distributed (launched by
    torchrun: each rank simulates its own chunks and writes its rows of the shared files,
    rank 0 renames them after all are done; `out_dir` must be on a filesystem all ranks
    share). None: whenever a process group exists or WORLD_SIZE > 1. The result is the same
    dataset as a single-process run. With device="cuda", rank r uses cuda:LOCAL_RANK.

    Returns:
        The Dataset written (``load_dataset(out_dir)``).

    Raises:
        ValueError: bad arguments, an `out_dir` that cannot be created, or a folder holding
            other data (left untouched). OSError: too little free space for the dataset.

    Example:
        >>> import tempfile, fastvp
        >>> ds = fastvp.generate_dataset(tempfile.mkdtemp(), n_examples=4, seed=1, progress=False)
        >>> len(ds), ds.cond.shape
        (4, (4, 2))
    """
    problem, config = _problem_args(problem, quiet, config)  # all checked before any write
    config, n_examples, seed, chunk, out, dev = _generation_args(
        out_dir, n_examples, config, seed, chunk_size, device, kernels, threads)
    if problem is not None and problem.examples not in (None, n_examples):
        raise ValueError(f"n_examples must be {problem.examples} (the length of the problem's "
                         f"per-example parameters), got {n_examples!r}")
    resume, overwrite = check.boolean("resume", resume), check.boolean("overwrite", overwrite)
    check.optional(check.boolean, "distributed", distributed)
    plan = _plan(n_examples, config, seed, problem_entry(problem, quiet) if problem else None)
    sim = dict(config=config, seed=seed, device=dev, kernels=kernels, problem=problem, quiet=quiet,
               threads=threads or default_threads())
    return _generate(out, plan, sim, chunk, resume, overwrite, progress, distributed, device)


def _generate(out: Path, plan: dict, sim: dict, chunk: int, resume: bool, overwrite: bool,
              progress: bool, distributed: bool | None, device) -> Dataset:
    """``generate_dataset`` once its arguments are checked: prepare `out`, simulate and
    write the missing chunks (this rank's share), finish; returns the Dataset."""
    from . import distributed as dist

    distributed, created_group, sim["device"], rank, world = _join(distributed, device, sim["device"])
    try:
        done = (dist.on_main if distributed else _call)(lambda: _prepare(out, plan, resume, overwrite))
        if done is None:
            return load_dataset(out)
        chunks = [(lo, min(hi, lo + chunk)) for a, hi in _missing(done, plan["n_examples"])
                  for lo in range(a, hi, chunk)]
        # rank 0 keeps the intervals found at the start in the main progress file
        own = [list(iv) for iv in done] if rank == 0 else []
        failed = _simulate_chunks(out, plan, chunks[rank::world], own, sim, progress and rank == 0,
                                  rank, world)
        if distributed and dist.any_true(failed is not None) and failed is None:
            raise RuntimeError(f"another rank failed while generating {str(out)!r}; what was written is "
                               "kept: run again with resume=True (--resume)")
        if failed is not None:
            raise failed
        (dist.on_main if distributed else _call)(lambda: _finish(out, plan))
        return load_dataset(out)
    finally:
        if created_group:
            dist.shutdown()


def _call(fn):
    return fn()


def _join(distributed: bool | None, device, dev: torch.device):
    """(distributed, created a process group, device, rank, world) of a generation: joins
    torch.distributed when asked (None: when a group exists or torchrun launched us)."""
    from . import distributed as dist

    distributed = (dist.is_initialized() or dist.launched()) if distributed is None else distributed
    created_group = distributed and not dist.is_initialized()
    if distributed:
        dist.init()
        if device is not None:
            dev = dist.device(dev)
    rank, world = (dist.rank(), dist.world_size()) if distributed else (0, 1)
    return distributed, created_group, dev, rank, world


def _problem_args(problem, quiet, config):
    """(the Problem or None, the config or None) of ``generate_dataset``, checked."""
    from .problems import PROBLEMS, Problem

    if check.boolean("quiet", quiet) and problem is None:
        raise ValueError("quiet=True needs a problem (the paper preset's quiet start is "
                         "problem=fastvp.problems.paper())")
    if problem is None:
        return None, config
    if isinstance(problem, str):
        problem = PROBLEMS[check.choice("problem", problem, sorted(PROBLEMS))]()
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a fastvp.problems.Problem or the name of one, got "
                         f"{type(problem).__name__}")
    if config is not None and config != problem.config:
        raise ValueError(f"config must be None with a problem (the problem's config is used), "
                         f"got {config!r}")
    return problem, problem.config


#: The default chunk: 4096 examples, fewer where they would hold more than 2^20 particles.
CHUNK, CHUNK_PARTICLES = 4096, 2**20


def _generation_args(out_dir, n_examples, config, seed, chunk_size, device, kernels, threads):
    """The checked arguments of ``generate_dataset``: (config, n, seed, chunk, out, device);
    `threads` checked too."""
    from .backend import KERNEL_CHOICES, use_triton

    config = config or PICConfig()
    if not isinstance(config, PICConfig):
        raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
    n_examples = check.integer("n_examples", n_examples, 1)
    seed = check.integer("seed", seed, 0)
    chunk = (check.optional(check.integer, "chunk_size", chunk_size, 1)
             or min(CHUNK, max(1, CHUNK_PARTICLES // config.n_particles)))
    check.optional(check.integer, "threads", threads, 1)
    if not isinstance(out_dir, (str, os.PathLike)) or str(out_dir) == "":
        raise ValueError(f"out_dir must be a path, got {out_dir!r}")
    check_writable(out_dir, "out_dir", "folder")
    if kernels is not None:
        check.choice("kernels", kernels, KERNEL_CHOICES)
    dev = resolve_device(device) if device is not None else torch.device("cpu")
    use_triton(torch.empty(0, device=dev), kernels)  # raises now if the kernels cannot run there
    return config, n_examples, seed, chunk, Path(out_dir), dev


def _simulate_chunks(out: Path, plan: dict, mine, own, sim: dict, progress: bool, rank: int,
                     world: int) -> BaseException | None:
    """Simulate and write this rank's chunks [(lo, hi), ...]; returns the error, if any.

    sim: config, seed, device, kernels, threads, problem and quiet of the run. What was
    fully written is synced and recorded in this rank's progress file, even on failure.
    """
    failed, writer, bar = None, None, None
    try:
        if mine:
            writer = _Writer(out, plan, _rank_progress(out, rank), own)
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(hi - lo for lo, hi in mine), unit="ex", leave=False,
                       desc="simulate" if world == 1 else f"simulate (rank 0 of {world})")
        for lo, hi in mine:
            rows = _chunk_rows(plan, sim, lo, hi)
            writer.submit(lo, hi, rows)  # written while the next chunk is simulated
            del rows
            if bar is not None:
                bar.update(hi - lo)
    except BaseException as exc:  # noqa: B036 - returned, raised after telling the other ranks
        failed = exc
    finally:
        if writer is not None:
            try:
                writer.close()
            except BaseException as exc:  # noqa: B036
                failed = failed or exc
        if bar is not None:
            bar.close()
    return failed


def _chunk_rows(plan: dict, sim: dict, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Examples lo .. hi - 1 simulated: {file name: their rows} of every file of `plan`."""
    from .backend import threads_context
    from .initial import initial_conditions
    from .pic.simulate import simulate

    config, problem = sim["config"], sim["problem"]
    if problem is None:
        batch = initial_conditions(hi - lo, config=config, seed=sim["seed"], start=lo,
                                   device=sim["device"])
    else:
        batch = problem.initial_conditions(hi - lo, seed=sim["seed"], quiet=sim["quiet"],
                                           device=sim["device"], start=lo)
    with threads_context(sim["threads"]):
        traj = simulate(batch, config, kernels=sim["kernels"])
    width = step_width(config.steps)
    rows = {_name(var, step, width): x[i].cpu().numpy() for i, step in enumerate(config.snapshot_steps)
            for var, x in (("Q", traj.q), ("P", traj.p))}
    if "Cond.npy" in plan["files"]:
        rows["Cond.npy"] = torch.stack([batch.sigma_q, batch.sigma_p], dim=1).cpu().numpy()
    if problem is not None:
        rows[PARAMS] = _params_rows(problem, plan["problem"]["columns"], batch, lo, hi)
    return rows


def _params_rows(problem, columns: list[str], batch, lo: int, hi: int) -> np.ndarray:
    """Params.npy's rows of examples lo .. hi - 1: [hi - lo, P]; a parameter the problem
    draws itself (None: the paper's sigma_q, sigma_p) is read from their Batch."""
    out = np.empty((hi - lo, len(columns)))
    for j, name in enumerate(columns):
        v = problem.params[name]
        if v is None:
            out[:, j] = getattr(batch, name).cpu().numpy()
        else:
            out[:, j] = v[lo:hi] if isinstance(v, np.ndarray) else v
    return out
