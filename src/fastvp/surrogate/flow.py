"""The symplectic flow of PDE-NHF: leapfrog on H(q, p) = a^2 |p|^2 / 2 + V(q).

One step of size dt:  p -= dt/2 dV/dq(q);  q += a^2 dt p;  p -= dt/2 dV/dq(q).
K steps map (q, p) at time 0 to time K dt; a negative dt runs the flow backwards, and
K steps of -dt undo K steps of dt up to round-off. The map is symplectic, so its Jacobian
determinant is exactly 1. Consecutive half kicks merge: K steps cost K + 1 gradients.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from fastvp.backend import use_triton
from fastvp.surrogate.potential import SOFTPLUS_THRESHOLD, softplus_prime


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

    net: a ``DeepSet``; a2: a^2; q, p: [B, N] in the dtype and on the device of net.
    Where autograd must see the flow (grad mode on and q, p, a2 or a parameter requiring
    grad), this is ``leapfrog`` with the closed-form gradient ``net.grad``. Otherwise
    (sampling) it runs the fused Triton kernel ``fastvp.kernels.deepset_leapfrog`` on CUDA
    (``kernels`` as in ``fastvp.backend``: "triton" also runs it under the interpreter),
    else ``leapfrog_blocked``, the same math for the CPU: blocks of examples through all K
    steps, in parallel threads, with reused buffers sized to stay in cache. Callers that
    sample should hold ``torch.no_grad()``: module parameters require grad by default.
    """
    triton_path = use_triton(q, kernels)
    weights = net.weights()
    if _needs_autograd(q, p, a2, weights):
        return leapfrog(q, p, net.grad, a2, dt, steps)
    weights = tuple(w.detach() for w in weights)
    a2 = float(a2)
    if triton_path:
        from fastvp.kernels.deepset_leapfrog import deepset_leapfrog

        return deepset_leapfrog(q, p, weights, a2, dt, steps)
    return leapfrog_blocked(q, p, weights, a2, dt, steps)


def _needs_autograd(q, p, a2, weights) -> bool:
    if not torch.is_grad_enabled():
        return False
    tensors = (q, p, a2, *weights)
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


#: Bytes of one [b, N, H] work buffer of ``leapfrog_blocked`` (two are used): small enough
#: for the last-level cache, large enough that per-op overheads stay small.
BLOCK_BYTES = 2**22
#: The same on CUDA (the torch reference path there): whole batches, within a memory bound.
BLOCK_BYTES_CUDA = 2**28
#: Set to 1 to run the CPU gradient through torch.compile (one fused loop per pass instead
#: of five eager passes; pays back its compilation, seconds, only on long sampling jobs).
COMPILE_ENV = "FASTVP_COMPILE"


def leapfrog_blocked(q: torch.Tensor, p: torch.Tensor, weights, a2: float, dt: float,
                     steps: int, block: int | None = None,
                     compile: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``leapfrog`` with ``grad_inplace``, `block` examples at a time through all K steps.

    weights: ``DeepSet.weights()`` (no autograd); q, p: [B, N] in the weights' dtype.
    Returns new tensors (q_K, p_K) [B, N]. Sampling only (in-place buffers, no autograd).
    On a multi-core CPU the blocks run in parallel threads, each op single-threaded (as the
    PIC path does): no barrier per op, which matters for ops of a block's size.
    compile: use ``grad_fused`` under torch.compile (default: the FASTVP_COMPILE variable).
    Every block has the same shape (the last one overlaps its predecessor), so a compiled
    gradient compiles once per (dtype, N, H).
    """
    w1 = weights[0]
    if q.dtype != w1.dtype or p.dtype != w1.dtype:
        raise ValueError(f"q and p must have the weights' dtype {w1.dtype}, got {q.dtype} "
                         f"and {p.dtype}")
    if compile is None:
        compile = os.environ.get(COMPILE_ENV, "0") not in ("", "0")
    weights = tuple(w.detach() for w in weights)  # grad mode is per thread: no autograd here
    n_examples, n = q.shape
    if block is None:
        budget = BLOCK_BYTES_CUDA if q.is_cuda else BLOCK_BYTES
        block = max(1, budget // (n * w1.shape[0] * w1.element_size()))
    block = min(block, max(1, n_examples))
    starts = sorted({max(0, min(s, n_examples - block)) for s in range(0, n_examples, block)})
    q_out, p_out = torch.empty_like(q), torch.empty_like(p)

    def run(start: int, grad) -> None:
        sl = slice(start, start + block)
        q_out[sl], p_out[sl] = leapfrog(q[sl], p[sl], grad, a2, dt, steps)

    if compile:
        fused, w7 = _compiled_grad(), weights[:7]
        for start in starts:
            run(start, lambda x: fused(x, *w7))
        return q_out, p_out

    def new_grad():
        work = torch.empty(2, block, n, w1.shape[0], dtype=q.dtype, device=q.device)
        return lambda x: grad_inplace(x, weights, work)

    workers = 1 if q.is_cuda else min(torch.get_num_threads(), len(starts))
    if workers == 1:
        grad = new_grad()
        for start in starts:
            run(start, grad)
    else:
        _in_threads(run, starts, new_grad, workers)
    return q_out, p_out


def _in_threads(run, starts, new_grad, workers: int) -> None:
    """run(start, grad) for every start, on `workers` threads with one grad (buffers) each."""
    local = threading.local()

    def task(start: int) -> None:
        with torch.no_grad():
            if not hasattr(local, "grad"):
                local.grad = new_grad()
            run(start, local.grad)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(task, starts))
    finally:
        torch.set_num_threads(threads)


def grad_fused(q: torch.Tensor, w1, b1, W2, b2, W3, b3, w4) -> torch.Tensor:
    """``DeepSet.grad`` stated for torch.compile, which fuses each [b, N, H] pass."""
    y = q - q.mean(dim=1, keepdim=True)
    z = y[:, :, None] * w1 + b1
    s = torch.nn.functional.softplus(z).sum(dim=1) @ W2.T + q.shape[1] * b2
    g = (softplus_prime(s @ W3.T + b3) * w4) @ W3
    u = (g @ W2) * w1
    G = (softplus_prime(z) * u[:, None, :]).sum(dim=2)
    return G - G.mean(dim=1, keepdim=True)


@functools.lru_cache(maxsize=1)
def _compiled_grad():
    return torch.compile(grad_fused, dynamic=False)


def grad_inplace(q: torch.Tensor, weights, work: torch.Tensor) -> torch.Tensor:
    """dV/dq of ``DeepSet.grad`` (same math), through two preallocated [b, N, H] buffers.

    q: [b, N]; work: [2, >= b, N, H] scratch. Five passes over [b, N, H] instead of
    about ten, none allocating: z, softplus(z), its sum over particles, sigmoid(z) in
    place, and the batched mat-vec with u. No autograd.
    """
    w1, b1, W2, b2, W3, b3, w4 = weights[:7]
    b, n = q.shape
    z, act = work[0, :b], work[1, :b]
    y = q - q.mean(dim=1, keepdim=True)
    torch.addcmul(b1, y[:, :, None], w1, out=z)                   # z_ik = w1_k y_i + b1_k
    torch._C._nn.softplus(z, 1.0, SOFTPLUS_THRESHOLD, out=act)
    s = torch.addmm(b2, act.sum(dim=1), W2.T, beta=n)             # W2 sum_i softplus + N b2
    g = (softplus_prime(torch.addmm(b3, s, W3.T)) * w4) @ W3
    u = (g @ W2) * w1
    # softplus' is 1 above the threshold, where sigmoid differs from 1 by < exp(-20): only
    # a float64 block whose largest z passes it needs the mask (bounded from y's extremes).
    # (in float32, sigmoid(z > 20) already rounds to 1: no mask, and no bound, needed)
    mask = None
    if q.dtype == torch.float64:
        z_max = torch.where(w1 > 0, w1 * y.amax(dim=1, keepdim=True),
                            w1 * y.amin(dim=1, keepdim=True)) + b1
        if bool((z_max > SOFTPLUS_THRESHOLD - 1.0).any()):  # margin for rounding
            mask = z > SOFTPLUS_THRESHOLD
    z.sigmoid_()
    if mask is not None:
        z.masked_fill_(mask, 1.0)
    G = torch.bmm(z, u[:, :, None])[:, :, 0]
    return G - G.mean(dim=1, keepdim=True)
