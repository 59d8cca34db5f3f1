"""Reading a dataset folder: ``Dataset`` (lazy, memory-mapped), ``load_dataset`` and the
checks of its metadata and arrays (``require_finite``, ``require_gaussian``)."""

from __future__ import annotations

import json
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import PICConfig
from ..particles import Batch, Diagnostics
from ..problems.base import Problem
from ..problems.distribution import Gaussian, InitialDistribution
from ..problems.paper import PaperInitial
from ..problems.registry import PROBLEMS
from .layout import (
    AUTHORS_STEPS,
    DIAGNOSTICS,
    METADATA,
    PARAMS,
    PROGRESS,
    SPLITS,
    diagnostic_arrays,
    diagnostic_file,
    extra_arrays,
    has_gaussians,
    snapshot_file,
    split_sizes,
)


@dataclass
class Dataset:
    """Snapshots of n examples, read lazily (memory-mapped) from a dataset folder.

    times: snapshot times; steps: their step numbers; q(step), p(step): [n, N] float64;
    cond: [n, 2] (sigma_q, sigma_p; Gaussian initial conditions only); problem: the
    metadata of a ``fastvp.problems`` dataset (None otherwise), params: its [n, P]
    per-example parameters named by param_names; config: the PICConfig that made it;
    width: the digits of the step numbers in its file names; diagnostics: the
    ``Diagnostics`` of every step of its examples (datasets that kept them).
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
        return has_gaussians(self.metadata)

    def __len__(self) -> int:
        start, stop, _ = self.indices.indices(self._total())
        return max(0, stop - start)

    def _total(self) -> int:
        return self._array(self._file("Q", self.steps[0])).shape[0]

    def _array(self, name: str) -> np.ndarray:
        return np.load(self.path / name, mmap_mode="r")

    def _file(self, var: str, step: int) -> str:
        return snapshot_file(var, step, self.width)

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

    def problem_object(self) -> Problem:
        """The ``fastvp.problems`` Problem of these examples, rebuilt from metadata.json and
        Params.npy (example i of this split has parameters row i); ValueError without one."""
        if self.problem is None:
            raise ValueError(f"dataset {str(self.path)!r} was not made from a fastvp.problems problem")
        entry = self.problem
        values = {k: v for k, v in entry["params"].items() if not isinstance(v, dict)}
        params = self.params
        values.update({name: params[:, j] for j, name in enumerate(self.param_names)})
        return PROBLEMS[entry["name"]](**values)

    def distribution(self) -> InitialDistribution:
        """f0 of these examples (``problems.distribution``): their Gaussians (Cond.npy and
        the paper's means) where the initial conditions are Gaussian, else the problem's
        density with each example's parameters (Params.npy)."""
        if self.gaussian:
            cond = self.cond
            initial = PaperInitial.of(self.config)
            return Gaussian(self.n_particles, initial.centre(self.config), cond[:, 0],
                            initial.mu_p, cond[:, 1])
        return self.problem_object().distribution()

    @property
    def diagnostics(self) -> Diagnostics:
        """The diagnostics of every step of these examples, as ``simulate(..., diagnostics=True)``
        gives them: t [S_all] (n dt), field_energy, kinetic_energy, total_energy, momentum
        [S_all, n], modes, phases [S_all, n, M] (float64, CPU). ValueError for a folder
        without them (the authors', an older fastvp's, or made with diagnostics=False)."""
        recorded = diagnostic_arrays(self.metadata)
        if not recorded:
            raise ValueError(f"dataset {str(self.path)!r} has no diagnostics (it was made by the "
                             "authors' generator, by fastvp before they were kept, or with "
                             "diagnostics=False / --no-diagnostics): generate it again with "
                             "fastvp simulate (or fastvp.generate_dataset) to keep them")
        values = {name: torch.from_numpy(np.array(self._array(diagnostic_file(name))[self.indices]))
                  .transpose(0, 1).contiguous() for name in DIAGNOSTICS}
        rows = next(iter(recorded.values()))[0]
        t = torch.arange(rows, dtype=torch.float64) * self.config.dt
        return Diagnostics(t=t, **values)

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
        mu from the paper's family (``PaperInitial``); for a non-Gaussian problem, q and p
        only (as ``Problem.initial_conditions`` gives them)."""
        q = torch.as_tensor(self.q(step), dtype=dtype, device=device)
        p = torch.as_tensor(self.p(step), dtype=dtype, device=device)
        if not self.gaussian:
            return Batch(q, p)
        cond = torch.as_tensor(self.cond, dtype=dtype, device=device)
        n = cond.shape[0]
        initial = PaperInitial.of(self.config)
        return Batch(
            q=q,
            p=p,
            sigma_q=cond[:, 0].contiguous(),
            sigma_p=cond[:, 1].contiguous(),
            mu_q=torch.full((n,), initial.centre(self.config), dtype=dtype, device=device),
            mu_p=torch.full((n,), initial.mu_p, dtype=dtype, device=device),
        )


def require_finite(ds: Dataset, steps, n: int | None = None) -> None:
    """Raise ValueError naming the file and the example if a value is NaN or infinite.

    Checks Q/P files of `steps` and Cond.npy over the first `n` examples of the view `ds`
    (all by default); the example is numbered as in the folder (its row).
    """
    start = ds.indices.indices(ds._total())[0]
    names = [ds._file(v, s) for s in steps for v in ("Q", "P")] + list(extra_arrays(ds.metadata))
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
    snapshots = [snapshot_file(v, s, width) for s in steps for v in "QP"]
    ref = _check_arrays(path, snapshots, extra_arrays(metadata))
    _check_diagnostics(path, diagnostic_arrays(metadata), ref[0])
    if metadata:
        expected = (metadata.get("n_examples", ref[0]), config.n_particles)
        if ref != expected:
            raise ValueError(f"arrays of {str(path)!r} have shape {ref}, its metadata says "
                             f"(n_examples, n_particles) = {expected}")
    elif ref[1] != config.n_particles:
        config = config.replace(n_particles=ref[1])
    return Dataset(path, config, steps, slice(0, ref[0]), metadata, width=width)


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
    odd = names - {snapshot_file(v, s, width) for s in steps for v in found[s]}
    if odd:
        raise ValueError(f"dataset folder {str(path)!r} names its snapshots with {width} digits "
                         f"and otherwise: {sorted(odd)}")
    extras = extra_arrays(metadata)
    names |= {name for name in extras if (path / name).exists()}
    if not metadata:
        wanted = {snapshot_file(v, s) for s in AUTHORS_STEPS for v in "QP"} | {"Cond.npy"}
        if names != wanted:
            raise ValueError(
                f"dataset folder {str(path)!r} has no {METADATA} and is not in the authors' layout "
                f"(Q00.npy ... Q25.npy, P00.npy ... P25.npy every 5 steps, Cond.npy): missing "
                f"{sorted(wanted - names)}, unexpected {sorted(names - wanted)}")
    missing = [snapshot_file(v, s, width) for s in steps for v in "QP" if v not in found[s]]
    missing += [name for name in extras if name not in names]
    if missing:
        raise ValueError(f"dataset folder {str(path)!r} is missing {missing}")
    if metadata and steps != config.snapshot_steps:
        raise ValueError(f"dataset folder {str(path)!r} holds steps {steps}, its metadata says "
                         f"{config.snapshot_steps}")
    return steps, width


def _open_npy(path: Path, name: str) -> np.ndarray:
    """The array `name` of a folder, memory-mapped; ValueError naming it if it is not a
    complete .npy file (numpy's header parser can also raise SyntaxError or TokenError on a
    corrupted header)."""
    try:
        return np.load(path / name, mmap_mode="r")
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise ValueError(f"dataset folder {str(path)!r} holds an unreadable array {name}: "
                         "not a complete .npy file (truncated, or another format)") from exc


def _check_diagnostics(path: Path, recorded: dict[str, tuple[int, ...]], n: int) -> None:
    """Each diagnostics file of a folder (`recorded`: {name: row shape}) is a readable
    float64 array of n rows of its shape."""
    for name, row in recorded.items():
        if not (path / name).exists():
            raise ValueError(f"dataset folder {str(path)!r} is missing {[name]} (its metadata "
                             "lists the diagnostics)")
        array = _open_npy(path, name)
        if array.shape != (n, *row) or array.dtype != np.float64:
            raise ValueError(f"{name} in {str(path)!r} must be float64 of shape {(n, *row)}, got "
                             f"{array.dtype} {array.shape}")


def _check_arrays(path: Path, snapshots: list[str], extras: dict[str, int]) -> tuple[int, int]:
    """The [n, N] shape of every snapshot array, once all are readable float arrays of one
    shape, n >= 1 examples of N >= 1 particles, and each extra array (Cond.npy, Params.npy)
    has n rows of its number of columns."""
    arrays = {}
    for name in snapshots + list(extras):
        arrays[name] = _open_npy(path, name)
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
