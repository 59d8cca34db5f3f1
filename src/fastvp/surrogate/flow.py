"""The symplectic flow of PDE-NHF: leapfrog on H(q, p) = a^2 |p|^2 / 2 + V(q).

One step of size dt:  p -= dt/2 dV/dq(q);  q += a^2 dt p;  p -= dt/2 dV/dq(q).
K steps map (q, p) at time 0 to time K dt; a negative dt runs the flow backwards, and
K steps of -dt undo K steps of dt up to round-off. The map is symplectic, so its Jacobian
determinant is exactly 1. Consecutive half kicks merge: K steps cost K + 1 gradients.

Every function here takes its arguments in one order: (q, p, <the gradient or the
weights>, a2, dt, steps), as does the fused twin ``fastvp.kernels.deepset_leapfrog``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from ..backend import use_triton
from .potential import SOFTPLUS_THRESHOLD, DeepSetWeights, closed_form_grad, grad_nograd


def leapfrog(
    q: torch.Tensor,
    p: torch.Tensor,
    grad: Callable[[torch.Tensor], torch.Tensor],
    a2: torch.Tensor | float,
    dt: float,
    steps: int,
    wrap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K = `steps` merged-kick leapfrog steps of size dt: (q, p) [B, N] -> (q, p) [B, N].

    grad: q [B, N] -> dV/dq [B, N]; a2: the inverse mass a^2 (a scalar or 0-d tensor);
    wrap: a box length L: positions wrap into [0, L) after each drift (a periodic V).
    Out of place, so autograd can differentiate through it.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    half = 0.5 * dt
    force = grad(q)
    for k in range(steps):
        p = p - (half if k == 0 else dt) * force
        q = q + (a2 * dt) * p
        if wrap is not None:
            q = torch.remainder(q, wrap)
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


def integrate(q: torch.Tensor, p: torch.Tensor, weights: DeepSetWeights, a2, dt: float, steps: int,
              kernels: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """K leapfrog steps of the Deep Set Hamiltonian, on the fastest path available.

    q, p: [B, N]; weights: ``DeepSet.weights()`` in q's dtype and device; a2: a^2.
    Where autograd must see the flow (grad mode on and q, p, a2 or a weight requiring
    grad), this is ``leapfrog`` with ``closed_form_grad``. Otherwise (sampling) it runs the
    fused Triton kernel on CUDA (``kernels`` as in ``fastvp.backend``: "triton" also runs
    it under the interpreter), else ``leapfrog_blocked``, the same math for the CPU.
    """
    triton_path = use_triton(q, kernels)
    if _needs_autograd(q, p, a2, weights):
        return leapfrog(q, p, lambda x: closed_form_grad(x, weights), a2, dt, steps)
    weights = weights.detach()
    a2 = float(a2)
    if triton_path:
        from fastvp.kernels.deepset_leapfrog import deepset_leapfrog

        return deepset_leapfrog(q, p, weights, a2, dt, steps, threshold=SOFTPLUS_THRESHOLD)
    return leapfrog_blocked(q, p, weights, a2, dt, steps)


def _needs_autograd(q, p, a2, weights) -> bool:
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in (q, p, a2, *weights))


#: Bytes of the [b, N, H] work of one block of ``leapfrog_blocked``: small enough for the
#: last-level cache, large enough that per-op overheads stay small.
BLOCK_BYTES = 2**22
#: The same on CUDA (the torch reference path there): whole batches, within a memory bound.
BLOCK_BYTES_CUDA = 2**28


def leapfrog_blocked(q: torch.Tensor, p: torch.Tensor, weights: DeepSetWeights, a2: float,
                     dt: float, steps: int, block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``leapfrog`` with ``grad_nograd``, `block` examples at a time through all K steps.

    q, p: [B, N] in the weights' dtype. Returns new tensors (q_K, p_K) [B, N]. Sampling
    only (no autograd). On a multi-core CPU the blocks run in parallel threads, each op
    single-threaded (as the PIC path does): no barrier per op, which matters for ops of a
    block's size. Every block has the same shape (the last one overlaps its predecessor).
    """
    w1 = weights.w1
    if q.dtype != w1.dtype or p.dtype != w1.dtype:
        raise ValueError(f"q and p must have the weights' dtype {w1.dtype}, got {q.dtype} "
                         f"and {p.dtype}")
    weights = weights.detach()
    n_examples, n = q.shape
    if block is None:
        budget = BLOCK_BYTES_CUDA if q.is_cuda else BLOCK_BYTES
        block = max(1, budget // (n * w1.shape[0] * w1.element_size()))
    block = min(block, max(1, n_examples))
    starts = sorted({max(0, min(s, n_examples - block)) for s in range(0, n_examples, block)})
    q_out, p_out = torch.empty_like(q), torch.empty_like(p)

    def run(start: int) -> None:
        sl = slice(start, start + block)
        q_out[sl], p_out[sl] = leapfrog(q[sl], p[sl], lambda x: grad_nograd(x, weights), a2, dt,
                                        steps)

    workers = 1 if q.is_cuda else min(torch.get_num_threads(), len(starts))
    if workers == 1:
        with torch.no_grad():
            for start in starts:
                run(start)
    else:
        in_threads(run, starts, workers)
    return q_out, p_out


def in_threads(run: Callable[[int], None], starts: list[int], workers: int) -> None:
    """run(start) for every start on `workers` threads, each op single-threaded, no autograd."""

    def task(start: int) -> None:
        with torch.no_grad():
            run(start)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(task, starts))
    finally:
        torch.set_num_threads(threads)

