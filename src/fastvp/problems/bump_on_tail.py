"""The bump-on-tail instability: a Maxwellian with a warm beam on its tail.

    f(x, v, 0) = (1 + alpha cos(k x)) [(1 - nb) M(v; 0, 1) + nb M(v; vb, vthb)]

The wave of phase velocity on the bump's rising slope grows at the rate of the kinetic
root of largest Im(omega); for k = 0.3, nb = 0.1, vb = 4.5, vthb = 0.5:
omega = 1.0012, gamma = 0.1981.
"""

from __future__ import annotations

from .base import Parameter, Problem, kinetic_problem, numerics

PARAMETERS = (
    Parameter("k", 0.3, "wavenumber of the perturbation; the box is L = 2 pi / k", low=0, open_low=True),
    Parameter("nb", 0.1, "beam density fraction", per_example=True, low=0, high=0.5, open_low=True),
    Parameter("vb", 4.5, "beam velocity", per_example=True),
    Parameter("vthb", 0.5, "beam thermal velocity", per_example=True, low=0, open_low=True),
    Parameter("alpha", 1e-4, "density perturbation seeding mode 1: n(x) = 1 + alpha cos(k x)",
              per_example=True, low=0, high=0.99),
) + numerics(particles=2**18, cells=64, dt=0.1, steps=500, save_every=100)


def bump_on_tail(k: float = 0.3, nb=0.1, vb=4.5, vthb=0.5, alpha=1e-4, particles: int = 2**18,
                 cells: int = 64, dt: float = 0.1, steps: int = 500, save_every: int = 100) -> Problem:
    """A unit Maxwellian (fraction 1 - nb) with a beam (fraction nb at vb, width vthb).

    Args:
        k: wavenumber of the seeded mode, shared by the batch (the box is L = 2 pi / k).
        nb, vb, vthb, alpha: per example: a number, or a sequence of B numbers.
        particles, cells, dt, steps, save_every: the numerics (``PICConfig``).

    Returns:
        A Problem whose ``theory()`` is the bump's growing root.

    Raises:
        ValueError: nb, vb, vthb, alpha or k out of range, or bad numerics (named).

    Example:
        >>> from fastvp.problems import bump_on_tail
        >>> rate = bump_on_tail().theory()
        >>> round(rate.gamma, 4), round(rate.omega, 4)
        (0.1981, 1.0012)
    """
    def species(p):
        return [(1.0 - p["nb"], 0.0, 1.0), (p["nb"], p["vb"], p["vthb"])]

    return kinetic_problem("bump_on_tail", PARAMETERS, locals(), species, "the bump-on-tail instability")
