"""``fastvp simulate``: a PIC dataset folder in the authors' .npy layout (+ metadata.json).

Without --problem: the paper preset, PICConfig fields as flags. With --problem NAME: a
standard plasma problem of ``fastvp.problems``, every parameter of every problem a flag
declared from ``fastvp.problems.PARAMETERS``; the numerics (particles, cells, dt, steps,
save_every) are the config flags of the same name. A per-example parameter takes one
value, or LO HI: each example draws its own uniformly in [LO, HI] (``problems.build``).
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
import time

from ..arguments import integer
from ..config import PICConfig
from ..data import generate_dataset
from ..distributed import is_main
from ..problems import PARAMETERS, build
from ..problems.paper import PaperInitial
from ._common import add_common, add_flags, flags, given, seed

#: PICConfig fields as flags.
SOLVER_FLAGS = flags("box_length", "cells", "n_particles", "charge", "charge_over_mass", "dt", "steps",
                     "save_every", "scheme", "interaction")
#: The paper preset's initial distribution (``problems.paper.PaperInitial``) as flags.
INITIAL_FLAGS = flags("mu_q", "mu_p", "sigma_range", "sigma_q_range", "sigma_p_range")
CONFIG_FLAGS = SOLVER_FLAGS + INITIAL_FLAGS

#: Problem parameters whose flag is one of the config flags: parameter -> its dest.
REUSED = {"particles": "n_particles", **{f.field: f.field for f in CONFIG_FLAGS}}

#: The width of the help's own paragraphs (the description, the epilog).
WIDTH = 88

RANGE_RULE = ("a per-example parameter (*) takes one value for every example, or LO HI: each "
              "example draws its own uniformly in [LO, HI] (from --seed)")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _dest(name: str) -> str:
    return REUSED.get(name, "problem_" + name)


def _parameters() -> dict[str, list]:
    """Every problem parameter: {name: [(problem, Parameter), ...]}, in table order."""
    out: dict[str, list] = {}
    for problem, table in PARAMETERS.items():
        for p in table:
            out.setdefault(p.name, []).append((problem, p))
    return out


def _epilog() -> str:
    lines = ["problems (--problem NAME) and their parameters, with their defaults "
             "(* per example):"]
    for problem, table in PARAMETERS.items():
        args = " ".join(f"{_option(p.name)}{'*' if p.per_example else ''} "
                        f"{'drawn' if p.default is None else p.default}" for p in table)
        lines.append(textwrap.fill(args, WIDTH, initial_indent=f"  {problem:<19s} ",
                                   subsequent_indent=" " * 22))
    return "\n".join(lines + ["", textwrap.fill(RANGE_RULE + ".", WIDTH)])


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """The help of simulate: its own paragraphs as written; a shared problem parameter (read
    as nargs="+", so that a second value is refused by name) shown as one VALUE."""

    def _format_args(self, action, default_metavar):
        if action.nargs == "+" and action.metavar == "VALUE":
            return "VALUE"
        return super()._format_args(action, default_metavar)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "simulate", help="generate a PIC dataset folder (official .npy layout)",
        formatter_class=_Formatter, epilog=_epilog(),
        description="Simulate examples with PIC and write them as Q00.npy, P00.npy, ..., "
        "Cond.npy and metadata.json\n(resumable; sharded under torchrun). With --problem, a "
        "standard plasma problem: Params.npy holds\neach example's per-example parameters, "
        "Cond.npy is written only for Gaussian problems (paper).")
    p.add_argument("--out", required=True,
                   help="output folder (created; checked for writability and free space first)")
    p.add_argument("--examples", type=int, default=32768, help="number of examples (default 32768)")
    p.add_argument("--particles", type=int, dest="n_particles", default=None,
                   help="alias of --n-particles (with --problem: the problem's particles)")
    add_flags(p, SOLVER_FLAGS, PICConfig())
    add_flags(p, INITIAL_FLAGS, PaperInitial())
    p.add_argument("--chunk", type=int, default=None,
                   help="examples per chunk (bounds memory; default: automatic)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted generation")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    g = p.add_argument_group("plasma problems", textwrap.fill(
        "--problem NAME simulates a problem of fastvp.problems; the flags above that are its "
        "parameters (--particles, --cells, --dt, --steps, --save-every) set them, the others "
        f"are refused; {RANGE_RULE}.", WIDTH))
    g.add_argument("--problem", choices=list(PARAMETERS), default=None, metavar="NAME",
                   help=f"the problem: {', '.join(PARAMETERS)} (default: none, the paper preset "
                   "of the flags above)")
    g.add_argument("--quiet-start", action="store_true",
                   help="quiet start: evenly spaced positions, velocity quantiles (needs --problem)")
    for name, entries in _parameters().items():
        if name in REUSED:
            continue
        per_example = entries[0][1].per_example
        text = entries[0][1].help + (" (*)" if per_example else "")
        if "default:" not in text:
            text += "; default: " + ", ".join(f"{problem} {q.default}" for problem, q in entries)
        g.add_argument(_option(name), dest=_dest(name), type=entries[0][1].kind, default=None,
                       nargs="+", metavar=("LO", "HI") if per_example else "VALUE", help=text)
    add_common(p, dtype_help=": datasets are float64, as the authors' layout", dtypes=("float64",))
    p.set_defaults(func=run)
    return p


def _refuse_problem_flags(args: argparse.Namespace) -> None:
    """Without --problem: the flags that need one are refused (ValueError)."""
    if args.quiet_start:
        raise ValueError("--quiet-start needs --problem (the paper preset's: --problem paper "
                         "--quiet-start)")
    for name, entries in _parameters().items():
        if name not in REUSED and getattr(args, _dest(name)) is not None:
            raise ValueError(f"{_option(name)} needs --problem (it is a parameter of "
                             f"{', '.join(problem for problem, _ in entries)})")


def _value(param, value):
    """A flag's value checked: a number, or (lo, hi) for a range of a per-example one."""
    option = _option(param.name)
    values = value if isinstance(value, list) else [value]
    if len(values) > 2 or (len(values) == 2 and not param.per_example):
        kind = "one value or a range LO HI" if param.per_example else \
            "one value (it is shared by the examples of a batch)"
        raise ValueError(f"{option} takes {kind}, got {len(values)} values {values}")
    for v in values:
        dataclasses.replace(param, name=option).check(v)
    if len(values) == 2 and values[1] < values[0]:
        raise ValueError(f"{option} takes a range LO HI with LO <= HI, got {values}")
    return values[0] if len(values) == 1 else tuple(values)


def problem_values(args: argparse.Namespace) -> dict:
    """The parameters of --problem given as flags: {name: number or (lo, hi)}.

    Raises:
        ValueError: for a flag that is not a parameter of the problem (one of another
            problem's, or a config flag), or a bad value, naming the flag.
    """
    name = args.problem
    table = {p.name: p for p in PARAMETERS[name]}
    takes = " ".join(_option(p) for p in table)
    mine = {_dest(p) for p in table}
    for param, entries in _parameters().items():
        if _dest(param) not in mine and getattr(args, _dest(param)) is not None:
            owners = ", ".join(problem for problem, _ in entries)
            raise ValueError(f"{_option(param)} is not a parameter of --problem {name} (it is one "
                             f"of {owners}; {name} takes {takes})")
    for f in CONFIG_FLAGS:
        if f.field not in mine and getattr(args, f.field) is not None:
            raise ValueError(f"{f.option} is not a parameter of --problem {name} ({name} takes "
                             f"{takes})")
    return {p: _value(table[p], getattr(args, _dest(p))) for p in table
            if getattr(args, _dest(p)) is not None}


def run(args: argparse.Namespace) -> int:

    if args.problem is None:
        _refuse_problem_flags(args)
        cfg, problem = PICConfig(**given(args, SOLVER_FLAGS)), None
        initial = PaperInitial().replace(**given(args, INITIAL_FLAGS))
    else:
        integer("n_examples", args.examples, low=1)  # before the ranges are drawn
        problem = build(args.problem, problem_values(args), examples=args.examples, seed=seed(args))
        cfg, initial = problem.config, None
    t0 = time.perf_counter()
    ds = generate_dataset(args.out, n_examples=args.examples, config=None if problem else cfg,
                          seed=seed(args), problem=problem, quiet=args.quiet_start, initial=initial,
                          chunk_size=args.chunk, device=args.device, resume=args.resume,
                          overwrite=args.overwrite, progress=not args.quiet, threads=args.threads)
    if is_main():  # one line under torchrun, not one per rank
        what = "" if problem is None else (f" of the {problem.name} problem"
                                           + (", quiet start" if args.quiet_start else ""))
        print(f"wrote {len(ds)} examples{what} ({cfg.scheme}, {cfg.interaction}) to {args.out} "
              f"in {time.perf_counter() - t0:.1f} s")
    return 0
