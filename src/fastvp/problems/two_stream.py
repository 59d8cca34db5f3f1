"""The two-stream instability: two equal beams at +v0 and -v0.

    f(x, v, 0) = (1 + alpha cos(k x)) [M(v; v0, vth) + M(v; -v0, vth)] / 2

(M a Maxwellian of mean u and width vth; vth = 0: cold beams). Cold theory: the purely
growing root of 1 = (1/2) / (omega - k v0)^2 + (1/2) / (omega + k v0)^2,

    gamma^2 = [sqrt(1 + 8 a^2) - (1 + 2 a^2)] / 2,   a = k v0,

unstable for a < 1, fastest (gamma = 1 / (2 sqrt 2)) at a^2 = 3/8; warm: the kinetic root.
"""

from __future__ import annotations

from .base import Parameter, Problem, kinetic_problem, numerics

PARAMETERS = (
    Parameter("k", 0.6, "wavenumber of the perturbation; the box is L = 2 pi / k", low=0, open_low=True),
    Parameter("v0", 1.0, "beam speed: beams at +v0 and -v0", per_example=True, low=0, open_low=True),
    Parameter("vth", 0.0, "thermal velocity of each beam (0: cold beams)", per_example=True, low=0),
    Parameter("alpha", 1e-6, "density perturbation seeding mode 1: n(x) = 1 + alpha cos(k x)",
              per_example=True, low=0, high=0.99),
) + numerics(particles=2**16, cells=64, dt=0.05, steps=1000, save_every=100)


def two_stream(k: float = 0.6, v0=1.0, vth=0.0, alpha=1e-6, particles: int = 2**16,
               cells: int = 64, dt: float = 0.05, steps: int = 1000, save_every: int = 100) -> Problem:
    """Two counter-streaming beams at +-v0, each half of the density, seeded in mode 1.

    Args:
        k: wavenumber of the seeded mode, shared by the batch (the box is L = 2 pi / k).
        v0, vth, alpha: per example: a number, or a sequence of B numbers.
        particles, cells, dt, steps, save_every: the numerics (``PICConfig``).

    Returns:
        A Problem whose ``theory()`` is the growth of the two-stream mode (cold or warm).

    Raises:
        ValueError: k, v0 or alpha out of range, vth < 0, or bad numerics (named).

    Example:
        >>> from fastvp.problems import two_stream
        >>> rate = two_stream(k=0.6, v0=1.0).theory()
        >>> round(rate.gamma, 4), rate.omega
        (0.3534, 0.0)
        >>> two_stream(v0=[0.8, 1.0, 1.2]).theory().gamma.round(4)    # one batch, three beams
        array([0.3357, 0.3534, 0.3405])
    """
    def species(p):
        return [(0.5, p["v0"], p["vth"]), (0.5, -p["v0"], p["vth"])]

    return kinetic_problem("two_stream", PARAMETERS, locals(), species, "the two-stream instability")
