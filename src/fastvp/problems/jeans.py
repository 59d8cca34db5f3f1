"""The Jeans instability of a self-gravitating Maxwellian (interaction="gravitational").

    f(x, v, 0) = (1 + alpha cos(k x)) exp(-v^2 / (2 vth^2)) / (sqrt(2 pi) vth)

Gravity flips the sign of the response: 1 - [1 + zeta Z(zeta)] / (k vth)^2 = 0 with the
Jeans frequency 1. Waves shorter than the Jeans length (k vth > 1) are stable; longer ones
grow without oscillating; k = 0.5, vth = 1: gamma = 0.6872 (cold: gamma = 1).
"""

from __future__ import annotations

from .base import Parameter, Problem, kinetic_problem, numerics

PARAMETERS = (
    Parameter("k", 0.5, "wavenumber of the perturbation; the box is L = 2 pi / k", low=0, open_low=True),
    Parameter("vth", 1.0, "velocity dispersion (the Jeans length is 2 pi vth / omega_J)",
              per_example=True, low=0, open_low=True),
    Parameter("alpha", 1e-4, "density perturbation seeding mode 1: n(x) = 1 + alpha cos(k x)",
              per_example=True, low=0, high=0.99),
) + numerics(particles=2**18, cells=64, dt=0.1, steps=200, save_every=50)


def jeans(k: float = 0.5, vth=1.0, alpha=1e-4, particles: int = 2**18, cells: int = 64,
          dt: float = 0.1, steps: int = 200, save_every: int = 50) -> Problem:
    """The Jeans instability: a self-gravitating Maxwellian with a 1 + alpha cos(k x) density.

    Args:
        k: wavenumber of the seeded mode, shared by the batch (the box is L = 2 pi / k).
        vth, alpha: per example: a number, or a sequence of B numbers.
        particles, cells, dt, steps, save_every: the numerics (``PICConfig``).

    Returns:
        A gravitational Problem whose ``theory()`` is the growing Jeans root.

    Raises:
        ValueError: k, vth or alpha not finite and > 0, or bad numerics (named).

    Example:
        >>> from fastvp.problems import jeans
        >>> prob = jeans(k=0.5, vth=1.0)
        >>> prob.config.interaction, round(prob.theory().gamma, 4)
        ('gravitational', 0.6872)
    """
    return kinetic_problem("jeans", PARAMETERS, locals(), lambda p: [(1.0, 0.0, p["vth"])],
                           "the Jeans instability", interaction="gravitational")
