"""The standard plasma problems with their linear theory.

Each function returns a ``Problem``: its PICConfig (``.config``), its parameters,
``initial_conditions(examples, seed, quiet)`` -> Batch and ``theory()`` -> Rate(gamma, omega)
of the driven mode (mode 1 of the box L = 2 pi / k). Units: omega_p = 1 (the Jeans
frequency under gravity); rates are those of the field amplitude |E_1(t)| ~ exp(gamma t).

    prob = fastvp.problems.landau(k=0.5, alpha=0.01)
    traj = fastvp.simulate(prob.initial_conditions(quiet=True), prob.config, diagnostics=True)
    fastvp.problems.fit_rate(traj), prob.theory()

``check_physics(out)`` runs every problem at its default size against its theory and
writes report.md with figures; ``PROBLEMS`` and ``PARAMETERS`` list the problems and
their parameters (name, default, help, per-example or shared) for a command line, and
``build(name, values, examples, seed)`` makes one from such values, drawing per-example
ranges ``x_range=(low, high)`` uniformly (a value of x itself, as in the functions: a number
or one per example). ``fastvp.generate_dataset(out, n, problem=prob)`` writes a
problem's dataset.
"""

from .base import Parameter, Problem, Rate
from .bump_on_tail import bump_on_tail
from .check import check_physics
from .fit import Fit, FitWarning, fit_rate, fit_window, growth_window
from .jeans import jeans
from .landau import landau
from .paper import paper
from .plasma_oscillation import plasma_oscillation
from .registry import PARAMETERS, PROBLEMS, build
from .two_stream import two_stream

__all__ = [
    "PARAMETERS",
    "PROBLEMS",
    "Fit",
    "FitWarning",
    "Parameter",
    "Problem",
    "Rate",
    "build",
    "bump_on_tail",
    "check_physics",
    "fit_rate",
    "fit_window",
    "growth_window",
    "jeans",
    "landau",
    "paper",
    "plasma_oscillation",
    "two_stream",
]
