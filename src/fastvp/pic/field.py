"""The PIC field and acceleration: deposit, neutralise, solve, gather, scale.

    rho_j = (q / dx) sum_i W(x_i - x_j) - mean_j(...)     (CIC weights W, neutralising background)
    E     = Poisson(rho)                                   (``poisson.electric_field``)
    a_i   = s (q/m) E(x_i)                                 (CIC gather, s = +1 or -1)

with s = +1 for electrostatic repulsion and -1 for gravitational attraction. These are the
only statements of that chain: the simulator's movers (``pic.simulate``, with their own
fused deposit and gather), force matching and the diagnostics all call them.
"""

from __future__ import annotations

import torch

from ..config import PICConfig
from .deposit import deposit, gather
from .poisson import electric_field


def particle_weight(config: PICConfig) -> float:
    """Density a particle deposits on the grid, q / dx."""
    return config.charge / config.dx


def acceleration_coefficient(config: PICConfig) -> float:
    """s (q/m): the acceleration per unit field (s = +1 electrostatic, -1 gravitational)."""
    return config.force_sign * config.charge_over_mass


def grid_field(density: torch.Tensor, config: PICConfig, fft: str = "auto") -> torch.Tensor:
    """E on the grid from the deposited density (no background): [B, Nx] -> [B, Nx].

    The neutralising background is the mean density, removed before the solve.
    """
    return electric_field(density - density.mean(dim=1, keepdim=True), config.dx, fft)


def field(x: torch.Tensor, config: PICConfig, fft: str = "auto") -> torch.Tensor:
    """E on the grid made by the particles at x: [B, N] -> [B, Nx]."""
    return grid_field(deposit(x, config.cells, config.dx, particle_weight(config)), config, fft)


def acceleration(x: torch.Tensor, config: PICConfig, fft: str = "auto") -> torch.Tensor:
    """s (q/m) E(x_i), the PIC acceleration of every particle: [B, N] -> [B, N].

    Example::

        a = acceleration(batch.q, fastvp.PICConfig())   # what the simulator's kick applies
    """
    return acceleration_coefficient(config) * gather(field(x, config, fft), x, config.dx)
