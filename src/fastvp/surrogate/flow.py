"""The symplectic flow of PDE-NHF: leapfrog on H(q, p) = a^2 |p|^2 / 2 + V(q).

One step of size dt:  p -= dt/2 dV/dq(q);  q += a^2 dt p;  p -= dt/2 dV/dq(q).
K steps map (q, p) at time 0 to time K dt; a negative dt runs the flow backwards, and
K steps of -dt undo K steps of dt up to round-off. The map is symplectic, so its Jacobian
determinant is exactly 1. Consecutive half kicks merge: K steps cost K + 1 gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def leapfrog(
    q: torch.Tensor,
    p: torch.Tensor,
    grad: Callable[[torch.Tensor], torch.Tensor],
    a2: torch.Tensor | float,
    dt: float,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K = `steps` leapfrog steps of size dt: (q, p) [B, N] -> (q, p) [B, N].

    grad: q [B, N] -> dV/dq [B, N]; a2: the inverse mass a^2 (a scalar or 0-d tensor).
    Out of place, so autograd can differentiate through it.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    half = 0.5 * dt
    force = grad(q)
    for k in range(steps):
        p = p - (half if k == 0 else dt) * force
        q = q + (a2 * dt) * p
        force = grad(q)
    p = p - half * force
    return q, p


def leapfrog_unmerged(q, p, grad, a2, dt: float, steps: int):
    """The same K steps written literally, two gradients per step (the tests' reference)."""
    for _ in range(steps):
        p = p - 0.5 * dt * grad(q)
        q = q + a2 * dt * p
        p = p - 0.5 * dt * grad(q)
    return q, p


def integrate(net, a2, q: torch.Tensor, p: torch.Tensor, dt: float, steps: int,
              kernels: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """K leapfrog steps of the Deep Set Hamiltonian, on the fastest path available.

    net: a ``DeepSet``; a2: a^2. The torch path is ``leapfrog`` with the closed-form
    gradient ``net.grad``; the fused Triton kernel (``fastvp.kernels.deepset_leapfrog``)
    takes over on CUDA when it is available (``kernels`` as in ``fastvp.backend``).
    """
    return leapfrog(q, p, net.grad, a2, dt, steps)
