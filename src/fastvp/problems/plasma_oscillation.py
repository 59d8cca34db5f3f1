"""Cold plasma oscillation: a density ripple of a cold plasma rings at omega_p.

    f(x, v, 0) = (1 + alpha cos(k x)) delta(v)

Theory: 1 - 1 / omega^2 = 0, omega = omega_p = 1 at every k, gamma = 0.
"""

from __future__ import annotations

from .base import Parameter, Problem, kinetic_problem, numerics

PARAMETERS = (
    Parameter("k", 0.5, "wavenumber of the perturbation; the box is L = 2 pi / k", low=0, open_low=True),
    Parameter("alpha", 0.01, "density perturbation: n(x) = 1 + alpha cos(k x)", per_example=True,
              low=0, high=0.99),
) + numerics(particles=2**14, cells=64, dt=0.05, steps=400, save_every=100)


def plasma_oscillation(k: float = 0.5, alpha=0.01, particles: int = 2**14, cells: int = 64,
                       dt: float = 0.05, steps: int = 400, save_every: int = 100) -> Problem:
    """A cold plasma with a 1 + alpha cos(k x) density, at rest: a standing Langmuir
    oscillation at omega_p = 1.

    Args:
        k: wavenumber of the ripple, shared by the batch (the box is L = 2 pi / k).
        alpha: per example: a number, or a sequence of B numbers.
        particles, cells, dt, steps, save_every: the numerics (``PICConfig``).

    Returns:
        A Problem whose ``theory()`` is the cold oscillation at omega_p = 1.

    Raises:
        ValueError: k or alpha out of range, or bad numerics (named).

    Example:
        >>> from fastvp.problems import plasma_oscillation
        >>> plasma_oscillation().theory()
        Rate(gamma=0.0, omega=1.0)
    """
    return kinetic_problem("plasma_oscillation", PARAMETERS, locals(), lambda p: [(1.0, 0.0, 0.0)],
                           "cold plasma oscillation")
