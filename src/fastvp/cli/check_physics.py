"""``fastvp check-physics``: the standard plasma problems against their linear theory.

Runs ``fastvp.problems.check_physics`` (quiet starts at the default sizes), prints one
line per problem and writes DIR/report.md with its figures. With one problem named, its
parameters are flags as in ``simulate --problem`` (--k, --alpha, ..., --particles,
--steps); a flag given several values is a scan: one run per value.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..backend import resolve_dtype
from ..problems import PARAMETERS, check_physics
from ..problems.check import TOLERANCES
from ._common import add_common, check_out, seed
from ._problem_flags import option, parameters

SCAN_RULE = ("with one problem named (--problems NAME), its parameters are flags as in "
             "simulate --problem; a flag given several values is a scan of that parameter, one "
             "run per value (--k 0.4 0.5 0.6), one parameter at a time; the run's length follows "
             "the parameters unless --steps is given")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "check-physics", help="the standard plasma problems against linear theory (report.md)",
        description="Simulate every standard plasma problem (fastvp.problems: Landau damping, "
        "two-stream, bump-on-tail, cold plasma oscillation, Jeans) from its quiet start at its "
        "default size, fit the growth or damping rate gamma and the frequency omega of mode 1 "
        "and compare them with linear theory; print one line per problem and write report.md "
        "with figures (mode amplitude with the theory slope, phase-space density, energy and "
        "momentum drift; a scan's gamma and omega against its parameter). Exit status 1 if a "
        f"problem misses its tolerance or cannot be fitted reliably. {SCAN_RULE[0].upper()}"
        f"{SCAN_RULE[1:]}.")
    p.add_argument("--out", default="fastvp-physics",
                   help="folder for report.md and the figures (default fastvp-physics)")
    p.add_argument("--problems", nargs="+", choices=list(TOLERANCES), default=None, metavar="NAME",
                   help=f"the problems to run (default: all of {', '.join(TOLERANCES)})")
    p.add_argument("--quiet-start", action=argparse.BooleanOptionalAction, default=True,
                   help="quiet starts: evenly spaced positions, velocity quantiles (default); "
                   "--no-quiet-start: random draws from --seed")
    g = p.add_argument_group("a problem's parameters (with one problem named)", SCAN_RULE + ".")
    for name, entries in parameters(TOLERANCES).items():
        owners = ", ".join(problem for problem, _ in entries)
        g.add_argument(option(name), dest="problem_" + name, type=entries[0][1].kind, nargs="+",
                       default=None, metavar="VALUE",
                       help=f"{entries[0][1].help} ({owners}); several values: a scan")
    add_common(p, dtype_help=": the particles' (float32 is faster on GPUs, less exact)",
               seed_help="the seed of random starts (--no-quiet-start; default 0)")
    p.set_defaults(func=run)
    return p


def _rate(r: dict, q: str) -> str:
    """gamma or omega measured, its theory and the error: relative, absolute where the
    theory is 0 (the cold oscillation's gamma)."""
    theory, error = r["theory_" + q], r[q + "_error"]
    how = f"off by {error:.1e}" if theory == 0 else f"error {100 * error:.2f} %"
    return f"{q} {r[q]:+.4f} (theory {theory:+.4f}, {how})"


def line(name: str, r: dict) -> str:
    """One run's result as a line: gamma and omega measured vs theory, drifts, time; or why
    it cannot be fitted."""
    if r.get("skipped"):
        return f"{name}: FAILED ({r['reason']})"
    missed = [f"{q} over {100 * t:g} %" for q, t in r["tolerances"].items() if r[q + "_error"] > t]
    if not r["reliable"]:
        missed.append(f"fit not reliable: {r['reason']}")
    verdict = "passed" if r["passed"] else f"FAILED ({', '.join(missed)})"
    return (f"{name}: {_rate(r, 'gamma')}, {_rate(r, 'omega')}; energy drift "
            f"{r['energy_drift']:.1e}, momentum drift {r['momentum_drift']:.1e}; "
            f"{r['seconds']:.1f} s; {verdict}")


def problem_params(args: argparse.Namespace) -> dict:
    """The parameter flags given: {name: [values]} (checked, naming the flag).

    Raises:
        ValueError: for parameter flags without exactly one problem, or a flag that is not
            a parameter of it, or a bad value.
    """
    given = {name: getattr(args, "problem_" + name) for name in parameters(TOLERANCES)
             if getattr(args, "problem_" + name) is not None}
    if not given:
        return {}
    flags = " ".join(option(n) for n in given)
    if args.problems is None or len(args.problems) != 1:
        raise ValueError(f"{flags} need one problem (--problems NAME), got "
                         f"{'all' if args.problems is None else ' '.join(args.problems)}")
    name = args.problems[0]
    table = {p.name: p for p in PARAMETERS[name]}
    for key, values in given.items():
        if key not in table:
            raise ValueError(f"{option(key)} is not a parameter of {name} ({name} takes "
                             f"{' '.join(option(p) for p in table)})")
        for v in values:
            dataclasses.replace(table[key], name=option(key)).check(v)
    return given


def run(args: argparse.Namespace) -> int:

    params = problem_params(args)
    check_out(args.out)  # before any simulation
    results = check_physics(args.out, progress=not args.quiet, problems=args.problems,
                            device=args.device, dtype=resolve_dtype(args.dtype), params=params,
                            quiet=args.quiet_start, seed=seed(args))
    for name, r in results.items():
        print(line(name, r))
    print(f"report: {args.out}/report.md")
    return 0 if all(r["passed"] for r in results.values()) else 1
