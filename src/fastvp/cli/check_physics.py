"""``fastvp check-physics``: every standard plasma problem against its linear theory.

Runs ``fastvp.problems.check_physics`` (quiet starts at the default sizes), prints one
line per problem and writes DIR/report.md with its figures.
"""

from __future__ import annotations

import argparse

from ..backend import resolve_dtype
from ..problems import check_physics
from ..problems.check import TOLERANCES
from ._common import add_common, check_out


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "check-physics", help="the standard plasma problems against linear theory (report.md)",
        description="Simulate every standard plasma problem (fastvp.problems: Landau damping, "
        "two-stream, bump-on-tail, cold plasma oscillation, Jeans) from its quiet start at its "
        "default size, fit the growth or damping rate gamma and the frequency omega of mode 1 "
        "and compare them with linear theory; print one line per problem and write report.md "
        "with figures (mode amplitude with the theory slope, phase-space density, energy and "
        "momentum drift). Exit status 1 if a problem misses its tolerance.")
    p.add_argument("--out", default="fastvp-physics",
                   help="folder for report.md and the figures (default fastvp-physics)")
    p.add_argument("--problems", nargs="+", choices=list(TOLERANCES), default=None, metavar="NAME",
                   help=f"the problems to run (default: all of {', '.join(TOLERANCES)})")
    add_common(p, dtype_help=": the particles' (float32 is faster on GPUs, less exact)",
               seed_help="unused: quiet starts draw no random numbers (accepted as by every "
               "command)")
    p.set_defaults(func=run)
    return p


def _rate(r: dict, q: str) -> str:
    """gamma or omega measured, its theory and the error: relative, absolute where the
    theory is 0 (the cold oscillation's gamma)."""
    theory, error = r["theory_" + q], r[q + "_error"]
    how = f"off by {error:.1e}" if theory == 0 else f"error {100 * error:.2f} %"
    return f"{q} {r[q]:+.4f} (theory {theory:+.4f}, {how})"


def line(name: str, r: dict) -> str:
    """One problem's result as a line: gamma and omega measured vs theory, drifts, time."""
    missed = [f"{q} over {100 * t:g} %" for q, t in r["tolerances"].items() if r[q + "_error"] > t]
    verdict = "passed" if r["passed"] else f"FAILED ({', '.join(missed)})"
    return (f"{name}: {_rate(r, 'gamma')}, {_rate(r, 'omega')}; energy drift "
            f"{r['energy_drift']:.1e}, momentum drift {r['momentum_drift']:.1e}; "
            f"{r['seconds']:.1f} s; {verdict}")


def run(args: argparse.Namespace) -> int:

    check_out(args.out)  # before any simulation
    results = check_physics(args.out, progress=not args.quiet, problems=args.problems,
                            device=args.device, dtype=resolve_dtype(args.dtype))
    for name, r in results.items():
        print(line(name, r))
    print(f"report: {args.out}/report.md")
    return 0 if all(r["passed"] for r in results.values()) else 1
