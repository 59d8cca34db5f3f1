"""Landau damping of a Langmuir wave in a Maxwellian plasma.

    f(x, v, 0) = (1 + alpha cos(k x)) exp(-v^2 / (2 vth^2)) / (sqrt(2 pi) vth)

The field E_1 oscillates at omega and decays at the rate gamma < 0 of the least damped
root of 1 + [1 + zeta Z(zeta)] / (k vth)^2 = 0 (zeta = omega / (sqrt 2 k vth)); for
k = 0.5, vth = 1: omega = 1.4156, gamma = -0.1534.
"""

from __future__ import annotations

from .base import Parameter, Problem, kinetic_problem, numerics

PARAMETERS = (
    Parameter("k", 0.5, "wavenumber of the perturbation; the box is L = 2 pi / k", low=0, open_low=True),
    Parameter("alpha", 0.01, "density perturbation: n(x) = 1 + alpha cos(k x)", per_example=True,
              low=0, high=0.99),
    Parameter("vth", 1.0, "thermal velocity (the Debye length is vth / omega_p)", per_example=True,
              low=0, open_low=True),
) + numerics(particles=2**20, cells=64, dt=0.1, steps=250, save_every=50)


def landau(k: float = 0.5, alpha=0.01, vth=1.0, particles: int = 2**20, cells: int = 64,
           dt: float = 0.1, steps: int = 250, save_every: int = 50) -> Problem:
    """Linear Landau damping: a Maxwellian with a 1 + alpha cos(k x) density.

    Theory: the least damped root of the kinetic dispersion relation (``Problem.theory``).

    Args:
        k: wavenumber of the perturbation, shared by the batch (the box is L = 2 pi / k).
        alpha, vth: per example: a number, or a sequence of B numbers.
        particles, cells, dt, steps, save_every: the numerics (``PICConfig``).

    Returns:
        A Problem whose ``theory()`` is the least damped Langmuir root (gamma < 0).

    Raises:
        ValueError: k, alpha or vth not finite and > 0, or bad numerics (named).

    Example:
        >>> from fastvp.problems import landau
        >>> rate = landau(k=0.5, alpha=0.01).theory()
        >>> round(rate.gamma, 4), round(rate.omega, 4)
        (-0.1534, 1.4157)
        >>> landau(alpha=[0.01, 0.05], particles=1024).initial_conditions(quiet=True).q.shape
        torch.Size([2, 1024])
    """
    return kinetic_problem("landau", PARAMETERS, locals(), lambda p: [(1.0, 0.0, p["vth"])],
                           "Landau damping of a Langmuir wave")
