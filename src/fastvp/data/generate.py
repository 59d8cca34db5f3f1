"""Generating a dataset: ``generate_dataset`` checks its arguments into one
``Generation``, which simulates the missing chunks of examples (this rank's share under
torch.distributed) and writes them with the resumable writer."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import arguments
from .. import distributed as dist
from .._version import __version__
from ..backend import KERNEL_CHOICES, default_threads, resolve_device, threads_context, use_triton
from ..config import PAPER_SIGMA_RANGE, PICConfig
from ..files import check_writable, digest
from ..pic import simulate as pic
from ..pic.diagnostics import DIAGNOSTIC_MODES
from ..problems import PROBLEMS, Problem
from ..problems.paper import PaperInitial, PaperProblem, gaussian_initial_conditions
from .dataset import Dataset, load_dataset
from .fingerprint import recipe_digest
from .layout import (
    DIAGNOSTICS,
    FORMAT,
    PARAMS,
    SPLITS,
    diagnostic_arrays,
    diagnostic_file,
    diagnostics_entry,
    extra_arrays,
    snapshot_file,
    split_sizes,
    step_width,
)
from .writer import ChunkWriter, finish, missing_intervals, planned_bytes, prepare, progress_file

#: The default chunk: 4096 examples, fewer where they would hold more than 2^20 particles.
CHUNK, CHUNK_PARTICLES = 4096, 2**20


def generate_dataset(
    out_dir,
    n_examples: int = 32768,
    config: PICConfig | None = None,
    seed: int = 0,
    *,
    problem=None,
    initial: PaperInitial | None = None,
    quiet: bool = False,
    chunk_size: int | None = None,
    device=None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    kernels: str | None = None,
    distributed: bool | None = None,
    threads: int | None = None,
    diagnostics: bool = True,
) -> Dataset:
    """Simulate `n_examples` paper-style examples, or a problem's, and write a dataset folder.

    Writes Q00.npy, P00.npy, ..., Cond.npy (float64, the official layout) and metadata.json,
    and (`diagnostics`, default True) the diagnostics of every step beside them (diag_*.npy,
    float64; ``Dataset.diagnostics`` reads them as ``simulate(..., diagnostics=True)``
    gives them; the other files are the same bytes either way).
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

    initial: without a problem, the family of the paper's Gaussians (``problems.paper.
    PaperInitial``: sigma ranges and means; default the paper's). metadata.json records it
    beside the solver's fields under "config", as files of earlier releases did.

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
    generation = Generation.checked(out_dir, n_examples, config, seed, problem=problem,
                                    initial=initial, quiet=quiet,
                                    chunk_size=chunk_size, device=device, kernels=kernels,
                                    threads=threads, progress=progress, diagnostics=diagnostics)
    resume, overwrite = arguments.boolean("resume", resume), arguments.boolean("overwrite", overwrite)
    arguments.optional(arguments.boolean, "distributed", distributed)
    with _process_group(distributed) as distributed:
        if distributed:
            generation = generation.sharded(rank_device=device is not None)
        return generation.write(resume, overwrite)


def dataset_size(n_examples: int, config: PICConfig | None = None, *, problem=None,
                 diagnostics: bool = True) -> int:
    """Bytes of the arrays ``generate_dataset`` writes for these arguments (metadata.json
    aside): snapshots, Cond.npy / Params.npy and the diagnostics files."""
    problem, config = _checked_problem(problem, False, config)
    entry = problem_entry(problem, False) if problem is not None else None
    return planned_bytes(generation_plan(n_examples, config or PICConfig(), 0, entry,
                                         diagnostics=diagnostics))


@contextlib.contextmanager
def _process_group(distributed: bool | None):
    """Join torch.distributed when `distributed` asks (None: when a process group exists or
    torchrun launched this process); yields whether the generation is distributed, and
    leaves at exit a group joined here."""
    distributed = (dist.is_initialized() or dist.launched()) if distributed is None else distributed
    created_group = distributed and not dist.is_initialized()
    if distributed:
        dist.init()
    try:
        yield distributed
    finally:
        if created_group:
            dist.shutdown()


@dataclass(frozen=True)
class Generation:
    """One generation of a dataset folder, its arguments checked.

    out: the folder; plan: what it writes (its metadata.json, and "files");
    config, seed, problem, quiet, initial: what makes example i (without a problem, the
    paper's Gaussians of the family `initial`, else ``problem.initial_conditions``);
    chunk: examples simulated at a time; device, kernels, threads: where and how the PIC
    runs; progress: show a progress bar (rank 0); distributed, rank, world: this process's
    share of the chunks under torch.distributed (every world-th chunk from the rank-th).
    """

    out: Path
    plan: dict
    config: PICConfig
    seed: int
    problem: Problem | None
    initial: PaperInitial | None
    quiet: bool
    chunk: int
    device: torch.device
    kernels: str | None
    threads: int
    progress: bool
    distributed: bool = False
    rank: int = 0
    world: int = 1

    @classmethod
    def checked(cls, out_dir, n_examples, config, seed, *, problem, initial, quiet, chunk_size,
                device, kernels, threads, progress, diagnostics=True) -> Generation:
        """The Generation of ``generate_dataset``'s arguments, checked before any write
        (ValueError; the kernels are tried on the device)."""
        problem, config = _checked_problem(problem, quiet, config)
        config = config or PICConfig()
        if not isinstance(config, PICConfig):
            raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
        initial = _checked_initial(initial, problem, config)
        n_examples = arguments.integer("n_examples", n_examples, 1)
        seed = arguments.integer("seed", seed, 0)
        chunk = (arguments.optional(arguments.integer, "chunk_size", chunk_size, 1)
                 or min(CHUNK, max(1, CHUNK_PARTICLES // config.n_particles)))
        arguments.optional(arguments.integer, "threads", threads, 1)
        if not isinstance(out_dir, (str, os.PathLike)) or str(out_dir) == "":
            raise ValueError(f"out_dir must be a path, got {out_dir!r}")
        check_writable(out_dir, "out_dir", "folder")
        if kernels is not None:
            arguments.choice("kernels", kernels, KERNEL_CHOICES)
        dev = resolve_device(device) if device is not None else torch.device("cpu")
        use_triton(torch.empty(0, device=dev), kernels)  # raises now if the kernels cannot run there
        if problem is not None and problem.examples not in (None, n_examples):
            raise ValueError(f"n_examples must be {problem.examples} (the length of the problem's "
                             f"per-example parameters), got {n_examples!r}")
        plan = generation_plan(n_examples, config, seed, problem_entry(problem, quiet) if problem else None,
                               initial, diagnostics=arguments.boolean("diagnostics", diagnostics))
        return cls(Path(out_dir), plan, config, seed, problem, initial, quiet, chunk, dev, kernels,
                   threads or default_threads(), progress)

    def sharded(self, rank_device: bool) -> Generation:
        """This generation as this process's rank of the joined process group; with
        `rank_device`, on this rank's device (``distributed.device``: cuda:LOCAL_RANK for cuda)."""
        device = dist.device(self.device) if rank_device else self.device
        return dataclasses.replace(self, distributed=True, rank=dist.rank(), world=dist.world_size(),
                                   device=device)

    def on_main(self, fn):
        """fn() run on rank 0 alone, its result (or error) given to every rank; plain fn()
        when not distributed."""
        return dist.on_main(fn) if self.distributed else fn()

    def write(self, resume: bool, overwrite: bool) -> Dataset:
        """Prepare the folder, simulate and write the missing chunks (this rank's share),
        finish; returns the Dataset."""
        done = self.on_main(lambda: prepare(self.out, self.plan, resume, overwrite))
        if done is None:
            return load_dataset(self.out)
        chunks = [(lo, min(hi, lo + self.chunk)) for a, hi in missing_intervals(done, self.plan["n_examples"])
                  for lo in range(a, hi, self.chunk)]
        # rank 0 keeps the intervals found at the start in the main progress file
        own = [list(iv) for iv in done] if self.rank == 0 else []
        failed = self.simulate_chunks(chunks[self.rank::self.world], own)
        if self.distributed and dist.any_true(failed is not None) and failed is None:
            raise RuntimeError(f"another rank failed while generating {str(self.out)!r}; what was "
                               "written is kept: run again with resume=True (--resume)")
        if failed is not None:
            raise failed
        self.on_main(lambda: finish(self.out, self.plan))
        return load_dataset(self.out)

    def simulate_chunks(self, mine: list[tuple[int, int]], own: list[list[int]]) -> BaseException | None:
        """Simulate and write this rank's chunks `mine` [(lo, hi), ...] (`own`: the intervals
        its progress file starts from); returns the error, if any. What was fully written is
        synced and recorded in this rank's progress file, even on failure."""
        failed, writer, bar = None, None, None
        try:
            if mine:
                writer = ChunkWriter(self.out, self.plan, progress_file(self.out, self.rank), own)
            if self.progress and self.rank == 0:
                bar = tqdm(total=sum(hi - lo for lo, hi in mine), unit="ex", leave=False,
                           desc="simulate" if self.world == 1 else f"simulate (rank 0 of {self.world})")
            for lo, hi in mine:
                rows = self.chunk_rows(lo, hi)
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

    def chunk_rows(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Examples lo .. hi - 1 simulated: {file name: their rows} of every file of the plan."""
        config, problem = self.config, self.problem
        if problem is None:
            batch = gaussian_initial_conditions(hi - lo, config, self.initial, seed=self.seed,
                                                start=lo, device=self.device)
        else:
            batch = problem.initial_conditions(hi - lo, seed=self.seed, quiet=self.quiet,
                                               device=self.device, start=lo)
        recorded = diagnostic_arrays(self.plan)
        with threads_context(self.threads):
            # looked up in its module at each call: tests replace fastvp.pic.simulate.simulate
            traj = pic.simulate(batch, config, kernels=self.kernels, diagnostics=bool(recorded))
        width = step_width(config.steps)
        rows = {snapshot_file(var, step, width): x[i].cpu().numpy()
                for i, step in enumerate(config.snapshot_steps)
                for var, x in (("Q", traj.q), ("P", traj.p))}
        if "Cond.npy" in self.plan["files"]:
            rows["Cond.npy"] = torch.stack([batch.sigma_q, batch.sigma_p], dim=1).cpu().numpy()
        if problem is not None:
            rows[PARAMS] = _params_rows(problem, self.plan["problem"]["columns"], batch, lo, hi)
        if recorded:
            rows.update(_diagnostic_rows(traj.diagnostics, recorded, hi - lo))
        return rows


def _checked_problem(problem, quiet, config):
    """(the Problem or None, the config or None) of ``generate_dataset``, checked."""
    if arguments.boolean("quiet", quiet) and problem is None:
        raise ValueError("quiet=True needs a problem (the paper preset's quiet start is "
                         "problem=fastvp.problems.paper())")
    if problem is None:
        return None, config
    if isinstance(problem, str):
        problem = PROBLEMS[arguments.choice("problem", problem, sorted(PROBLEMS))]()
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a fastvp.problems.Problem or the name of one, got "
                         f"{type(problem).__name__}")
    if config is not None and config != problem.config:
        raise ValueError(f"config must be None with a problem (the problem's config is used), "
                         f"got {config!r}")
    return problem, problem.config


def _checked_initial(initial, problem, config: PICConfig) -> PaperInitial | None:
    """The paper Gaussians' family of a generation: `initial`, the paper problem's, or
    (without either) what the config's deprecated keywords say; None for other problems."""
    if initial is not None:
        if problem is not None:
            raise ValueError("initial must be None with a problem (the problem owns its initial "
                             f"distribution), got {initial!r}")
        if not isinstance(initial, PaperInitial):
            raise ValueError(f"initial must be a fastvp.problems.paper.PaperInitial, got "
                             f"{type(initial).__name__}")
        return initial
    if isinstance(problem, PaperProblem):
        return problem.initial
    return PaperInitial.of(config) if problem is None else None


def config_record(config: PICConfig, initial: PaperInitial | None) -> dict:
    """metadata.json's "config": the solver's fields, and for the paper's Gaussians their
    family in the keys files of earlier releases used (mu_q, mu_p, sigma_range,
    sigma_q_range, sigma_p_range), so that those files and these read alike."""
    record = dataclasses.asdict(config)
    if initial is not None:
        both = initial.sigma_q_range if initial.sigma_q_range == initial.sigma_p_range \
            else PAPER_SIGMA_RANGE
        record.update(mu_q=initial.centre(config), mu_p=initial.mu_p, sigma_range=list(both),
                      sigma_q_range=list(initial.sigma_q_range),
                      sigma_p_range=list(initial.sigma_p_range))
    return record


def generation_plan(n_examples: int, config: PICConfig, seed: int, problem: dict | None = None,
                    initial: PaperInitial | None = None, diagnostics: bool = True) -> dict:
    """What a generation writes (its metadata.json, and "files"); `problem`: the
    ``problem_entry`` of a problem's dataset; `initial`: the paper Gaussians' family;
    `diagnostics`: keep the diagnostics of every step (``layout.diagnostics_entry``)."""
    width = step_width(config.steps)
    plan = {
        "format": FORMAT,
        "fastvp_version": __version__,
        "n_examples": n_examples,
        "seed": seed,
        "scheme": config.scheme,
        "interaction": config.interaction,
        "config": config_record(config, initial),
        "files": [snapshot_file(v, s, width) for s in config.snapshot_steps for v in "QP"],
        "split": dict(zip(SPLITS, split_sizes(n_examples))),
    }
    if problem is not None:
        plan["problem"] = problem
    if diagnostics:
        # the modes simulate(..., diagnostics=True) records: m = 0 .. M - 1, M <= Nx / 2 + 1
        plan["diagnostics"] = diagnostics_entry(config.steps, max(1, min(DIAGNOSTIC_MODES,
                                                                         config.cells // 2 + 1)))
    plan["files"] += list(extra_arrays(plan)) + list(diagnostic_arrays(plan))
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


def _diagnostic_rows(diagnostics, recorded: dict, b: int) -> dict[str, np.ndarray]:
    """The diagnostics files' rows of a chunk of `b` examples: each quantity [S_all, b(, M)]
    as [b, S_all(, M)] float64, checked against the shapes planned (`recorded`)."""
    rows = {}
    for name in DIAGNOSTICS:
        x = getattr(diagnostics, name).transpose(0, 1)  # [S_all, b(, M)] -> [b, S_all(, M)]
        file = diagnostic_file(name)
        if tuple(x.shape) != (b, *recorded[file]):
            raise RuntimeError(f"simulate recorded {name} of shape {tuple(x.shape)}, the dataset "
                               f"plans {(b, *recorded[file])}")
        rows[file] = np.ascontiguousarray(x.to("cpu", torch.float64).numpy())
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
