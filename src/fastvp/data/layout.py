"""The on-disk layout of a dataset folder: file names, splits, and what each folder holds.

A folder holds one float64 ``.npy`` file per snapshot and variable, named by the step
number zero-padded to the digits of the last step (at least two): ``Q00.npy, P00.npy,
Q05.npy, P05.npy, ..., Q25.npy, P25.npy`` ([n, N]) for the paper preset, ``Q000.npy ...
Q250.npy`` for 250 steps; and ``Cond.npy`` ([n, 2] = sigma_q, sigma_p of each example's
initial Gaussian). fastvp adds ``metadata.json`` (config, scheme, seed, split, version and
their fingerprint); a folder without it is read as the official generator's output (the
paper preset, its scheme) only if it holds exactly their files, Q00.npy ... Q25.npy,
P00.npy ... P25.npy every 5 steps and Cond.npy.

A dataset of a standard problem (``fastvp.problems``) records it in metadata.json under
"problem" (name, quiet start, parameters, and the names of the columns of ``Params.npy``)
and adds ``Params.npy`` ([n, P] = each example's per-example parameters). It holds
``Cond.npy`` only where the initial conditions are Gaussians (the paper problem).

fastvp's datasets also keep the diagnostics of every step (``fastvp.Diagnostics``), one
float64 file per quantity, rows by example: ``diag_field_energy.npy``,
``diag_kinetic_energy.npy``, ``diag_total_energy.npy``, ``diag_momentum.npy`` [n, S_all]
and ``diag_modes.npy``, ``diag_phases.npy`` [n, S_all, M] (S_all = steps + 1, M modes),
listed in metadata.json under "diagnostics" (rows, modes, files). A folder without that
entry (the authors', an older fastvp's, or one made with diagnostics=False) has none.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import PAPER_SPLIT, PICConfig
from ..files import atomic_write_text

FORMAT = "fastvp-dataset/1"
SPLITS = ("train", "val", "test")
METADATA = "metadata.json"
PARAMS = "Params.npy"
PROGRESS = ".progress.json"
PARTIAL = ".partial"

#: The diagnostic quantities a dataset keeps (``fastvp.Diagnostics`` but t, which is n dt).
DIAGNOSTICS = ("field_energy", "kinetic_energy", "total_energy", "momentum", "modes", "phases")
#: Those with one column per mode.
PER_MODE = ("modes", "phases")

#: The authors' generator writes these snapshot steps (the paper preset's).
AUTHORS_STEPS = PICConfig().snapshot_steps


def snapshot_file(var: str, step: int, width: int = 2) -> str:
    """The file of variable `var` ("Q" or "P") at `step`, its number on `width` digits."""
    return f"{var}{step:0{width}d}.npy"


def step_width(steps: int) -> int:
    """Digits of the step numbers in the snapshot file names: those of the last step, at
    least 2 (Q00 ... Q25 for 25 steps, Q000 ... Q250 for 250)."""
    return max(2, len(str(steps)))


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes: the paper's 20000/6384/6384 of 32768, in proportion otherwise."""
    total = sum(PAPER_SPLIT)
    n_train = round(n * PAPER_SPLIT[0] / total)
    n_val = round(n * PAPER_SPLIT[1] / total)
    return n_train, n_val, n - n_train - n_val


def has_gaussians(metadata: dict) -> bool:
    """Whether a folder of this metadata has Gaussian initial conditions (and Cond.npy)."""
    problem = metadata.get("problem")
    return problem is None or bool(problem.get("gaussian"))


def extra_arrays(metadata: dict) -> dict[str, int]:
    """The arrays of a folder besides its snapshots: {name: columns}."""
    out = {"Cond.npy": 2} if has_gaussians(metadata) else {}
    if metadata.get("problem") is not None:
        out[PARAMS] = len(metadata["problem"]["columns"])
    return out


def diagnostic_file(name: str) -> str:
    """The file of diagnostic quantity `name` (a field of ``fastvp.Diagnostics`` but t)."""
    return f"diag_{name}.npy"


def diagnostics_entry(steps: int, modes: int) -> dict:
    """metadata.json's "diagnostics" of a run of `steps` steps recording `modes` modes."""
    return {"rows": steps + 1, "modes": modes,
            "files": {name: diagnostic_file(name) for name in DIAGNOSTICS}}


def diagnostic_arrays(metadata: dict) -> dict[str, tuple[int, ...]]:
    """The diagnostics files of a folder: {name: shape of one example's row} ((S_all,) or
    (S_all, M)); empty for a folder without diagnostics."""
    entry = metadata.get("diagnostics")
    if not entry:
        return {}
    rows, modes = int(entry["rows"]), int(entry["modes"])
    return {diagnostic_file(name): (rows, modes) if name in PER_MODE else (rows,)
            for name in DIAGNOSTICS}


def write_json(path: Path, obj: dict) -> None:
    """`obj` written atomically to `path` as indented JSON, keys sorted."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))
