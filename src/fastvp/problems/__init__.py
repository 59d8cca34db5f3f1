"""The standard plasma problems with their linear theory.

Each function returns a ``Problem``: its PICConfig (``.config``), its parameters,
``initial_conditions(examples, seed, quiet)`` -> Batch and ``theory()`` -> Rate(gamma, omega)
of the driven mode (mode 1 of the box L = 2 pi / k). Units: omega_p = 1 (the Jeans
frequency under gravity); rates are those of the field amplitude |E_1(t)| ~ exp(gamma t).

    prob = fastvp.problems.landau(k=0.5, alpha=0.01)
    traj = fastvp.simulate(prob.initial_conditions(quiet=True), prob.config, diagnostics=True)
    fastvp.problems.fit_rate(traj), prob.theory()
"""

from . import bump_on_tail as _bump_on_tail
from . import jeans as _jeans
from . import landau as _landau
from . import paper as _paper
from . import plasma_oscillation as _plasma_oscillation
from . import two_stream as _two_stream
from .base import Parameter, Problem, Rate
from .bump_on_tail import bump_on_tail
from .fit import fit_rate
from .jeans import jeans
from .landau import landau
from .paper import paper
from .plasma_oscillation import plasma_oscillation
from .two_stream import two_stream

#: name -> the function building that problem
PROBLEMS = {
    "landau": landau,
    "two_stream": two_stream,
    "bump_on_tail": bump_on_tail,
    "plasma_oscillation": plasma_oscillation,
    "jeans": jeans,
    "paper": paper,
}

#: name -> its parameters (name, default, help, per_example, ...) for the CLI's flags
PARAMETERS = {
    "landau": _landau.PARAMETERS,
    "two_stream": _two_stream.PARAMETERS,
    "bump_on_tail": _bump_on_tail.PARAMETERS,
    "plasma_oscillation": _plasma_oscillation.PARAMETERS,
    "jeans": _jeans.PARAMETERS,
    "paper": _paper.PARAMETERS,
}

__all__ = [
    "PARAMETERS",
    "PROBLEMS",
    "Parameter",
    "Problem",
    "Rate",
    "bump_on_tail",
    "fit_rate",
    "jeans",
    "landau",
    "paper",
    "plasma_oscillation",
    "two_stream",
]
