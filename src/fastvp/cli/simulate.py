"""``fastvp simulate``: a PIC dataset folder in the authors' .npy layout (+ metadata.json).

Without --problem: the paper preset, PICConfig fields as flags. With --problem NAME: a
standard plasma problem of ``fastvp.problems``, every parameter of every problem a flag
declared from ``fastvp.problems.PARAMETERS``; the numerics (particles, cells, dt, steps,
save_every) are the config flags of the same name. A per-example parameter X takes one
value (--X V), or a range (--X-range LO HI): each example draws its own uniformly in
[LO, HI] (``problems.build``), as ``x_range`` means in Python (``problems.paper``).
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
import time

from ..arguments import integer
from ..config import PICConfig
from ..data import generate_dataset
from ..data.generate import dataset_size
from ..distributed import is_main
from ..files import size_text
from ..problems import PARAMETERS, build
from ..problems.paper import PaperInitial
from ._common import add_common, add_flags, flags, given, seed
from ._problem_flags import option as _option
from ._problem_flags import parameters as _parameters

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

RANGE_RULE = ("a per-example parameter X (*) takes one value for every example (--X V), or a "
              "range (--X-range LO HI): each example draws its own uniformly in [LO, HI] (from "
              "--seed)")


def _dest(name: str) -> str:
    return REUSED.get(name, "problem_" + name)


def _range_dest(name: str) -> str:
    """The dest of --NAME-range, the range of a per-example parameter."""
    return _dest(name + "_range")


def _given(args: argparse.Namespace, name: str, per_example: bool) -> bool:
    """Whether --NAME (or --NAME-range of a per-example one) was given."""
    ranged = per_example and getattr(args, _range_dest(name), None) is not None
    return getattr(args, _dest(name)) is not None or ranged


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
    p.add_argument("--no-diagnostics", action="store_true",
                   help="leave out the diagnostics of every step (diag_*.npy: energies, momentum, "
                   "modes; kept by default: the paper preset takes about 20%% longer with them)")
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
                       nargs="+", metavar="VALUE", help=text)
        if per_example and name + "_range" not in REUSED:
            g.add_argument(_option(name + "_range"), dest=_range_dest(name), type=entries[0][1].kind,
                           default=None, nargs=2, metavar=("LO", "HI"),
                           help=f"each example draws its own {name} uniformly in [LO, HI]")
    add_common(p, dtype_help=": datasets are float64, as the authors' layout", dtypes=("float64",))
    p.set_defaults(func=run)
    return p


def _refuse_problem_flags(args: argparse.Namespace) -> None:
    """Without --problem: the flags that need one are refused (ValueError)."""
    if args.quiet_start:
        raise ValueError("--quiet-start needs --problem (the paper preset's: --problem paper "
                         "--quiet-start)")
    for name, entries in _parameters().items():
        if name in REUSED:
            continue
        for dest, option in ((_dest(name), _option(name)),
                             (_range_dest(name), _option(name + "_range"))):
            if dest not in REUSED.values() and getattr(args, dest, None) is not None:
                raise ValueError(f"{option} needs --problem (it is a parameter of "
                                 f"{', '.join(problem for problem, _ in entries)})")


def _value(param, value):
    """A flag's value checked: one number (several are refused, naming --NAME-range for a
    per-example parameter)."""
    option = _option(param.name)
    values = value if isinstance(value, list) else [value]
    if len(values) > 1:
        kind = (f"one value (a range each example draws from is {option}-range LO HI)"
                if param.per_example else "one value (it is shared by the examples of a batch)")
        raise ValueError(f"{option} takes {kind}, got {len(values)} values {values}")
    dataclasses.replace(param, name=option).check(values[0])
    return values[0]


def _range_value(param, value) -> tuple:
    """--NAME-range LO HI checked: (lo, hi) with LO <= HI, each a valid value."""
    option = _option(param.name + "_range")
    for v in value:
        dataclasses.replace(param, name=option).check(v)
    if value[1] < value[0]:
        raise ValueError(f"{option} takes a range LO HI with LO <= HI, got {list(value)}")
    return tuple(value)


def problem_values(args: argparse.Namespace) -> dict:
    """The parameters of --problem given as flags: {name: number, name_range: (lo, hi)}
    (``problems.build``'s values).

    Raises:
        ValueError: for a flag that is not a parameter of the problem (one of another
            problem's, or a config flag), or a bad value, naming the flag.
    """
    name = args.problem
    table = {p.name: p for p in PARAMETERS[name]}
    takes = " ".join(_option(p) + (f" {_option(p)}-range" if q.per_example else "")
                     for p, q in table.items())
    mine = {_dest(p) for p in table} | {_range_dest(p) for p, q in table.items() if q.per_example}
    for param, entries in _parameters().items():
        if _dest(param) not in mine and _given(args, param, entries[0][1].per_example):
            owners = ", ".join(problem for problem, _ in entries)
            option = _option(param) if getattr(args, _dest(param)) is not None else \
                _option(param + "_range")
            raise ValueError(f"{option} is not a parameter of --problem {name} (it is one "
                             f"of {owners}; {name} takes {takes})")
    for f in CONFIG_FLAGS:
        if f.field not in mine and getattr(args, f.field) is not None:
            raise ValueError(f"{f.option} is not a parameter of --problem {name} ({name} takes "
                             f"{takes})")
    out = {}
    for p, param in table.items():
        value = getattr(args, _dest(p))
        ranged = getattr(args, _range_dest(p), None) if param.per_example else None
        if value is not None and ranged is not None:
            raise ValueError(f"{_option(p)} and {_option(p + '_range')} exclude each other "
                             f"(one value, or a range each example draws from)")
        if value is not None:
            out[p] = _value(param, value)
        elif ranged is not None:
            out[p + "_range"] = _range_value(param, ranged)
    return out


def _announce(args: argparse.Namespace, cfg: PICConfig, problem) -> None:
    """Print, before the simulation starts, what the dataset will hold and its size."""
    integer("n_examples", args.examples, low=1)
    if is_main():
        size = dataset_size(args.examples, None if problem else cfg, problem=problem,
                            diagnostics=not args.no_diagnostics)
        kept = "" if args.no_diagnostics else f" (and the diagnostics of {cfg.steps + 1} steps)"
        print(f"writing {args.examples} examples x {cfg.n_particles} particles x "
              f"{cfg.n_snapshots} snapshots{kept}: {size_text(size)}", flush=True)


def run(args: argparse.Namespace) -> int:

    if args.problem is None:
        _refuse_problem_flags(args)
        cfg, problem = PICConfig(**given(args, SOLVER_FLAGS)), None
        initial = PaperInitial().replace(**given(args, INITIAL_FLAGS))
    else:
        integer("n_examples", args.examples, low=1)  # before the ranges are drawn
        problem = build(args.problem, problem_values(args), examples=args.examples, seed=seed(args))
        cfg, initial = problem.config, None
    _announce(args, cfg, problem)
    t0 = time.perf_counter()
    ds = generate_dataset(args.out, n_examples=args.examples, config=None if problem else cfg,
                          seed=seed(args), problem=problem, quiet=args.quiet_start, initial=initial,
                          chunk_size=args.chunk, device=args.device, resume=args.resume,
                          overwrite=args.overwrite, progress=not args.quiet, threads=args.threads,
                          diagnostics=not args.no_diagnostics)
    if is_main():  # one line under torchrun, not one per rank
        what = "" if problem is None else (f" of the {problem.name} problem"
                                           + (", quiet start" if args.quiet_start else ""))
        print(f"wrote {len(ds)} examples{what} ({cfg.scheme}, {cfg.interaction}) to {args.out} "
              f"in {time.perf_counter() - t0:.1f} s")
    return 0
