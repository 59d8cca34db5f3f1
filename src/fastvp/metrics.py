"""Wasserstein-1 distance between particle samples, and physics diagnostics of PIC runs."""

from __future__ import annotations

import numpy as np
import torch

from .config import PICConfig
from .pic.field import field


def _as_tensor(name: str, x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a tensor or numpy array, got {type(x).__name__}")
    return x


def wasserstein_1d(x, y) -> torch.Tensor:
    """W1 between equal-size samples along the last axis: [..., n] x [..., n] -> [...].

    W1(a, b) = (1/n) sum_i |a_(i) - b_(i)| over the sorted samples.
    """
    x, y = _as_tensor("x", x), _as_tensor("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"x and y need a non-empty last axis, got shape {tuple(x.shape)}")
    if y.dtype != x.dtype:
        y = y.to(x.dtype)
    return (torch.sort(x, dim=-1).values - torch.sort(y.to(x.device), dim=-1).values).abs().mean(dim=-1)


def total_momentum(p: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """P = m sum_i v_i with m = q / (q/m): [..., N] -> [...]."""
    mass = config.charge / config.charge_over_mass
    return mass * p.sum(dim=-1)


def kinetic_energy(p: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """K = m sum_i v_i^2 / 2: [..., N] -> [...]."""
    mass = config.charge / config.charge_over_mass
    return 0.5 * mass * (p * p).sum(dim=-1)


def field_energy(q: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """W = s (1/2) sum_j E_j^2 dx on the grid (s = +1 electrostatic, -1 gravitational): [B, N] -> [B]."""
    e = field(q, config, "torch")
    return config.force_sign * 0.5 * config.dx * (e * e).sum(dim=1)


def total_energy(q: torch.Tensor, p: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """Kinetic plus field energy: [B, N] x [B, N] -> [B]."""
    return kinetic_energy(p, config) + field_energy(q, config)
