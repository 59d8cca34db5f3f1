"""Fused leapfrog of the Deep Set Hamiltonian H = a^2 |p|^2 / 2 + V(q) as one Triton kernel.

Fused twin of ``fastvp.surrogate.flow.leapfrog`` with the closed-form gradient of
``fastvp.surrogate.potential`` (same math, merged half kicks):

    force = dV/dq(q);  p -= dt/2 force;  q += a^2 dt p;  force = dV/dq(q);
    then K - 1 times:  p -= dt force;    q += a^2 dt p;  force = dV/dq(q);
    finally            p -= dt/2 force                      (K + 1 gradients in all)

with, for one example (y_i = q_i - mean q, z_ik = w1_k y_i + b1_k):

    s = W2 sum_i softplus(z_i) + N b2;  g = W3^T (softplus'(W3 s + b3) * w4);
    u = W2^T g;  G_i = sum_k u_k w1_k softplus'(z_ik);  dV/dq_i = G_i - mean_j G_j,

softplus' taken as 1 above `threshold` (the caller passes torch's Softplus threshold).

One program owns one example for all K steps: its particles stay in registers between
steps, the [N, H] activations are recomputed block by block over the hidden units (never
written to memory), and the H x H mat-vecs are broadcast-multiply + tl.sum reductions over
hidden blocks (tl.dot would need >= 16 rows per operand and has no float64 path on every
GPU; a program holds one example, i.e. a single vector). W3 is read once per gradient:
the same tile gives a = W3 s (a row reduction) and g += W3^T c (a column reduction).
Weights are shared by all programs and stay in L2. Scalars travel in a tensor of the data
dtype (Triton would pass Python floats as float32).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

#: Elements of one [rows, hidden-block] tile per program (registers); halved for float64.
TILE_ELEMENTS = 8192


@triton.jit
def _softplus(z, THRESHOLD: tl.constexpr):
    # softplus(z) = max(z, 0) + log1p(exp(-|z|)): no overflow, one exp. log1p(e) as
    # log(1 + e) * e / ((1 + e) - 1) corrects the rounding of 1 + e (exact when it rounds to 1).
    e = tl.exp(-tl.abs(z))
    u = 1.0 + e
    d = u - 1.0
    log1p = tl.where(d == 0.0, e, tl.log(u) * (e / tl.where(d == 0.0, 1.0, d)))
    return tl.where(z > THRESHOLD, z, tl.maximum(z, 0.0) + log1p)


@triton.jit
def _softplus_prime(z, THRESHOLD: tl.constexpr):
    # sigmoid(z) from exp(-|z|) (no overflow); 1 above the threshold, as torch's Softplus.
    e = tl.exp(-tl.abs(z))
    r = 1.0 / (1.0 + e)
    sig = tl.where(z >= 0.0, r, e * r)
    return tl.where(z > THRESHOLD, 1.0, sig)


@triton.jit
def _deepset_grad(q, mask_n, n_f, w1_ptr, b1_ptr, W2_ptr, b2_ptr, W3_ptr, b3_ptr, w4_ptr, H,
                  BLOCK_H: tl.constexpr, BH: tl.constexpr, THRESHOLD: tl.constexpr):
    """dV/dq of one example: q [BLOCK_N] (masked rows ignored) -> [BLOCK_N], zero off mask."""
    y = q - tl.sum(tl.where(mask_n, q, 0.0), axis=0) / n_f
    rows = tl.arange(0, BLOCK_H)
    mask_h = rows < H
    cols = tl.arange(0, BH)

    # s = W2 (sum_i softplus(z_i)) + N b2, accumulated over column blocks of W2
    s = tl.zeros([BLOCK_H], dtype=q.dtype)
    for k0 in range(0, H, BH):
        kk = k0 + cols
        mk = kk < H
        w1 = tl.load(w1_ptr + kk, mask=mk, other=0.0)
        b1 = tl.load(b1_ptr + kk, mask=mk, other=0.0)
        z = y[:, None] * w1[None, :] + b1[None, :]
        pooled = tl.sum(tl.where(mask_n[:, None], _softplus(z, THRESHOLD), 0.0), axis=0)
        W2 = tl.load(W2_ptr + rows[:, None] * H + kk[None, :],
                     mask=mask_h[:, None] & mk[None, :], other=0.0)
        s += tl.sum(W2 * pooled[None, :], axis=1)
    s += n_f * tl.load(b2_ptr + rows, mask=mask_h, other=0.0)

    # g = W3^T (softplus'(W3 s + b3) * w4): one read of each row block of W3 serves both
    g = tl.zeros([BLOCK_H], dtype=q.dtype)
    for j0 in range(0, H, BH):
        jj = j0 + cols
        mj = jj < H
        W3 = tl.load(W3_ptr + jj[:, None] * H + rows[None, :],
                     mask=mj[:, None] & mask_h[None, :], other=0.0)
        act = tl.sum(W3 * s[None, :], axis=1) + tl.load(b3_ptr + jj, mask=mj, other=0.0)
        c = _softplus_prime(act, THRESHOLD) * tl.load(w4_ptr + jj, mask=mj, other=0.0)
        g += tl.sum(W3 * c[:, None], axis=0)

    # G_i = sum_k (W2^T g)_k w1_k softplus'(z_ik), z recomputed block by block
    G = tl.zeros_like(q)
    for k0 in range(0, H, BH):
        kk = k0 + cols
        mk = kk < H
        w1 = tl.load(w1_ptr + kk, mask=mk, other=0.0)
        b1 = tl.load(b1_ptr + kk, mask=mk, other=0.0)
        W2 = tl.load(W2_ptr + rows[:, None] * H + kk[None, :],
                     mask=mask_h[:, None] & mk[None, :], other=0.0)
        u = tl.sum(W2 * g[:, None], axis=0) * w1
        z = y[:, None] * w1[None, :] + b1[None, :]
        G += tl.sum(_softplus_prime(z, THRESHOLD) * u[None, :], axis=1)
    G = tl.where(mask_n, G, 0.0)
    return tl.where(mask_n, G - tl.sum(G, axis=0) / n_f, 0.0)


@triton.jit
def _leapfrog_kernel(q_ptr, p_ptr, q_out_ptr, p_out_ptr, force_ptr,
                     w1_ptr, b1_ptr, W2_ptr, b2_ptr, W3_ptr, b3_ptr, w4_ptr, scal_ptr,
                     n, H, steps,
                     BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, BH: tl.constexpr,
                     THRESHOLD: tl.constexpr, STORE_FORCE: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * n
    offs = tl.arange(0, BLOCK_N)
    mask = offs < n
    half = tl.load(scal_ptr)
    dt = tl.load(scal_ptr + 1)
    a2dt = tl.load(scal_ptr + 2)
    n_f = tl.load(scal_ptr + 3)
    q = tl.load(q_ptr + row + offs, mask=mask, other=0.0)
    p = tl.load(p_ptr + row + offs, mask=mask, other=0.0)
    force = tl.zeros_like(q)
    # iteration k: force at q_k, then the kick (half at both ends, merged full kicks
    # between) and, for k < K, the drift; K + 1 gradients in all.
    for k in range(steps + 1):
        force = _deepset_grad(q, mask, n_f, w1_ptr, b1_ptr, W2_ptr, b2_ptr, W3_ptr, b3_ptr,
                              w4_ptr, H, BLOCK_H, BH, THRESHOLD)
        if steps > 0:
            inner = (k > 0) & (k < steps)
            p = p - tl.where(inner, dt, half) * force
            if k < steps:
                q = q + a2dt * p
    tl.store(q_out_ptr + row + offs, q, mask=mask)
    tl.store(p_out_ptr + row + offs, p, mask=mask)
    if STORE_FORCE:
        tl.store(force_ptr + row + offs, force, mask=mask)


def _blocks(n: int, hidden: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """BLOCK_N, BLOCK_H, BH (hidden units per tile) and num_warps for one example."""
    block_n = max(16, triton.next_power_of_2(n))
    block_h = max(16, triton.next_power_of_2(hidden))
    budget = TILE_ELEMENTS if dtype == torch.float32 else TILE_ELEMENTS // 2
    bh = max(16, min(block_h, budget // max(block_n, block_h)))
    warps = 8 if max(block_n, block_h) * bh >= 4096 else 4
    return block_n, block_h, bh, warps


def _check_weights(weights, dtype, device) -> tuple[torch.Tensor, ...]:
    if len(weights) != 7:
        raise ValueError("weights must be (w1, b1, W2, b2, W3, b3, w4), as DeepSet.weights()")
    w1, b1, W2, b2, W3, b3, w4 = weights
    hidden = w1.shape[0] if w1.dim() == 1 else -1
    shapes = {"w1": (w1, (hidden,)), "b1": (b1, (hidden,)), "W2": (W2, (hidden, hidden)),
              "b2": (b2, (hidden,)), "W3": (W3, (hidden, hidden)), "b3": (b3, (hidden,)),
              "w4": (w4, (hidden,))}
    out = []
    for name, (t, shape) in shapes.items():
        if hidden < 1 or tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} (hidden from w1 [H]), got "
                             f"{tuple(t.shape)}")
        if t.dtype != dtype or t.device != device:
            raise ValueError(f"{name} must be {dtype} on {device} like q, got {t.dtype} on "
                             f"{t.device}")
        out.append(t.detach().contiguous())
    return tuple(out)


def _check_state(q: torch.Tensor, p: torch.Tensor) -> None:
    if q.dim() != 2 or q.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"q must be a float32/float64 [B, N] tensor, got {q.dtype} of shape "
                         f"{tuple(q.shape)}")
    if p.shape != q.shape or p.dtype != q.dtype or p.device != q.device:
        raise ValueError(f"p must match q ({q.dtype} {tuple(q.shape)} on {q.device}), got "
                         f"{p.dtype} {tuple(p.shape)} on {p.device}")
    if q.shape[1] < 1:
        raise ValueError("q must hold at least one particle per example")


def _launch(q, p, weights, a2dt, dt, steps, threshold, store_force):
    w1, b1, W2, b2, W3, b3, w4 = _check_weights(weights, q.dtype, q.device)
    q, p = q.detach().contiguous(), p.detach().contiguous()
    n_examples, n = q.shape
    hidden = w1.shape[0]
    q_out, p_out = torch.empty_like(q), torch.empty_like(p)
    force = torch.empty_like(q) if store_force else q_out
    if n_examples == 0:
        return q_out, p_out, force
    scal = torch.tensor([0.5 * dt, dt, a2dt, float(n)], dtype=q.dtype, device=q.device)
    block_n, block_h, bh, warps = _blocks(n, hidden, q.dtype)
    _leapfrog_kernel[(n_examples,)](
        q, p, q_out, p_out, force, w1, b1, W2, b2, W3, b3, w4, scal, n, hidden, steps,
        BLOCK_N=block_n, BLOCK_H=block_h, BH=bh, THRESHOLD=float(threshold),
        STORE_FORCE=store_force, num_warps=warps,
    )
    return q_out, p_out, force


def deepset_leapfrog(q: torch.Tensor, p: torch.Tensor, weights, a2, dt: float, steps: int, *,
                     threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """K = `steps` merged-kick leapfrog steps of size dt on a^2 |p|^2 / 2 + V(q), fused.

    q, p: [B, N] float32 or float64 (CUDA, or CPU under TRITON_INTERPRET=1);
    weights: (w1 [H], b1 [H], W2 [H, H], b2 [H], W3 [H, H], b3 [H], w4 [H]) in q's dtype
    and device; a2: a^2 (float or 0-d tensor); dt may be negative; threshold: softplus is
    the identity above it.
    Returns new tensors (q_K, p_K) [B, N]. No autograd: sampling only.
    """
    _check_state(q, p)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    dt = float(dt)
    a2 = float(a2)
    if not (math.isfinite(dt) and math.isfinite(a2)):
        raise ValueError(f"dt and a2 must be finite, got dt={dt!r}, a2={a2!r}")
    q_out, p_out, _ = _launch(q, p, weights, a2 * dt, dt, steps, threshold, store_force=False)
    return q_out, p_out


def fused_grad(q: torch.Tensor, weights, *, threshold: float) -> torch.Tensor:
    """dV/dq of the Deep Set potential by the same fused code: [B, N] -> [B, N]."""
    _check_state(q, q)
    return _launch(q, q, weights, 0.0, 0.0, 0, threshold, store_force=True)[2]


def aot_specs(dtype: str, sizes: dict) -> list:
    """The leapfrog kernel as the launcher runs it (K = 25 steps), for ``fastvp.kernels.aot``.

    sizes: {"N": particles per example, "H": hidden units, ...}; dtype "float32"/"float64".
    """
    from .aot_spec import AotSpec, signature_of

    n, hidden = sizes["N"], sizes["H"]
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    block_n, block_h, bh, warps = _blocks(n, hidden, tdtype)
    ints = {"n": n, "H": hidden, "steps": 25}
    const = dict(BLOCK_N=block_n, BLOCK_H=block_h, BH=bh, THRESHOLD=20.0, STORE_FORCE=False)
    tiles = triton.cdiv(hidden, bh)
    return [AotSpec("deepset_leapfrog", _leapfrog_kernel,
                    signature_of(_leapfrog_kernel, dtype, const, ints), const, warps, ints,
                    trips=(tiles, tiles, tiles))]
