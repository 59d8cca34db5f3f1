"""Cloud-In-Cell deposit and gather in plain torch (the CPU path and the kernels' reference).

With s = x / dx, j = floor(s), f = s - j, a particle of weight w gives (1 - f) w to cell
j mod Nx and f w to cell j + 1 mod Nx; the field at the particle is read back with the
same weights, E(x) = (1 - f) E_j + f E_{j+1}, so that a particle exerts no force on itself
and total momentum is conserved. The Triton twins are in ``fastvp.kernels.cic``.
"""

from __future__ import annotations

import torch


def cic_weights(x: torch.Tensor, cells: int, dx: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left cell j mod Nx, right cell (j + 1) mod Nx (int64, [B, N]) and fraction f ([B, N])."""
    s = x / dx
    j = torch.floor(s)
    f = s - j
    left = j.to(torch.int64).remainder_(cells)
    right = left + 1
    right[right == cells] = 0
    return left, right, f


def deposit(x: torch.Tensor, cells: int, dx: float, weight: float) -> torch.Tensor:
    """Grid density rho_j = sum_i w_ij * weight, x: [B, N] -> rho: [B, Nx] (no background)."""
    left, right, f = cic_weights(x, cells, dx)
    rho = torch.zeros(x.shape[0], cells, dtype=x.dtype, device=x.device)
    rho.scatter_add_(1, left, (1 - f) * weight)
    rho.scatter_add_(1, right, f * weight)
    return rho


def gather(grid: torch.Tensor, x: torch.Tensor, dx: float) -> torch.Tensor:
    """Grid values at the particles, E(x_i) = (1 - f) E_j + f E_{j+1}: [B, Nx], [B, N] -> [B, N]."""
    left, right, f = cic_weights(x, grid.shape[1], dx)
    e0 = grid.gather(1, left)
    e1 = grid.gather(1, right)
    return torch.lerp(e0, e1, f)
