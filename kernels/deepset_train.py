"""The Deep Set's dV/dq differentiable once, for training, with its [N, H] work in Triton.

Triton twin of ``fastvp.surrogate.potential.closed_form_grad`` (see the module docstring
there for the VJP equations): the [N, H] work of the forward (the pooled sums S and the
sigma sums, by ``deepset_common``'s passes) and of its hand-derived backward (the sigma
moments and yb) runs in four kernels, one program per example:

    forward   _pool_kernel     q -> S [B, H]
              _force_kernel    q, u -> dV/dq [B, N]
    backward  _moments_kernel  q, v -> the five particle sums [B, 5, H]
              _dq_kernel       q, v, x -> the gradient in q [B, N]

The [B, H] x [H, H] products between them (the rho chain) and the weights' gradients (sums
of outer products over the batch) are torch matmuls.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .aot_spec import AotSpec, signature_of
from .deepset_common import (
    LOG2E,
    centre_force,
    centred,
    check_state,
    check_weights,
    example_force,
    fast_math,
    ratio,
    softplus_sums,
    store_chunks,
    tiles,
)


@triton.jit
def _pool_kernel(q_ptr, S_ptr, w1_ptr, b1_ptr, scal_ptr, n, H, CH: tl.constexpr,
                 BH: tl.constexpr, THRESHOLD: tl.constexpr, EVEN: tl.constexpr,
                 EXACT: tl.constexpr, FAST: tl.constexpr, CLIP: tl.constexpr):
    """S[b] = sum_i softplus(w1 y_i + b1) of example b: q [B, N] -> S [B, H]."""
    b = tl.program_id(0).to(tl.int64)
    n_f = tl.load(scal_ptr)
    lg = tl.load(scal_ptr + 1)
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax = centred(q_ptr + b * n, n, n_f, CH)
    softplus_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, THRESHOLD * lg, w1_ptr,
                  b1_ptr, S_ptr + b * H, H, BH, EVEN, EXACT, FAST, CLIP)


@triton.jit
def _force_kernel(q_ptr, u_ptr, force_ptr, w1_ptr, b1_ptr, scal_ptr, n, H, CH: tl.constexpr,
                  BQ: tl.constexpr, THRESHOLD: tl.constexpr, EVEN: tl.constexpr,
                  EXACT: tl.constexpr, FAST: tl.constexpr, CLIP: tl.constexpr):
    """dV/dq[b] = G - mean G, G_i = sum_k u_k sigma(z_ik): q, u -> force [B, N]."""
    b = tl.program_id(0).to(tl.int64)
    n_f = tl.load(scal_ptr)
    lg = tl.load(scal_ptr + 1)
    f0, f1, f2, f3 = example_force(q_ptr + b * n, u_ptr + b * H, n, n_f, lg, THRESHOLD * lg,
                                   w1_ptr, b1_ptr, H, CH, BQ, EVEN, EXACT, FAST, CLIP)
    store_chunks(force_ptr + b * n, n, f0, f1, f2, f3, CH)


@triton.jit
def _sigmas(y, ok, a, c, T2, EVEN: tl.constexpr, FAST: tl.constexpr):
    """(sigma, sigma') of z = (y a + c) / log2(e): [rows, cols]; sigma = 1, sigma' = 0 past
    the threshold (torch's Softplus), both 0 on rows off the mask."""
    t = y[:, None] * a[None, :] + c[None, :]
    d = 1.0 + tl.exp2(tl.minimum(t, T2))
    m = tl.where(t > T2, 0.0, ratio(tl.full(d.shape, 1.0, d.dtype), d, FAST))   # 1 - sigma
    sig = 1.0 - m
    dsig = m - m * m
    if not EVEN:
        sig = tl.where(ok[:, None], sig, 0.0)
        dsig = tl.where(ok[:, None], dsig, 0.0)
    return sig, dsig


@triton.jit
def _moments_kernel(q_ptr, v_ptr, mom_ptr, w1_ptr, b1_ptr, scal_ptr, n, H, CH: tl.constexpr,
                    BH: tl.constexpr, THRESHOLD: tl.constexpr, EVEN: tl.constexpr,
                    FAST: tl.constexpr):
    """The particle sums of the backward, vb = v - mean v: mom [B, 5, H] =
    (sigma^T vb, sigma^T y, sigma^T 1, sigma'^T (vb y), sigma'^T vb)."""
    b = tl.program_id(0).to(tl.int64)
    n_f = tl.load(scal_ptr)
    lg = tl.load(scal_ptr + 1)
    T2 = THRESHOLD * lg
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, _, _ = centred(q_ptr + b * n, n, n_f, CH)
    y0, y1, y2, y3 = (tl.where(ok0, y0, 0.0), tl.where(ok1, y1, 0.0), tl.where(ok2, y2, 0.0),
                      tl.where(ok3, y3, 0.0))
    v0, v1, v2, v3, _, _, _, _, _, _ = centred(v_ptr + b * n, n, n_f, CH)
    v0, v1, v2, v3 = (tl.where(ok0, v0, 0.0), tl.where(ok1, v1, 0.0), tl.where(ok2, v2, 0.0),
                      tl.where(ok3, v3, 0.0))
    out = mom_ptr + b * 5 * H
    for k0 in range(0, H, BH):
        kk = k0 + tl.arange(0, BH)
        mk = kk < H
        a = tl.load(w1_ptr + kk, mask=mk, other=0.0) * lg
        c = tl.load(b1_ptr + kk, mask=mk, other=0.0) * lg
        s, ds = _sigmas(y0, ok0, a, c, T2, EVEN, FAST)
        m0, m1, m2, m3, m4 = v0[:, None] * s, y0[:, None] * s, s, (v0 * y0)[:, None] * ds, v0[:, None] * ds
        s, ds = _sigmas(y1, ok1, a, c, T2, EVEN, FAST)
        m0, m1, m2 = m0 + v1[:, None] * s, m1 + y1[:, None] * s, m2 + s
        m3, m4 = m3 + (v1 * y1)[:, None] * ds, m4 + v1[:, None] * ds
        s, ds = _sigmas(y2, ok2, a, c, T2, EVEN, FAST)
        m0, m1, m2 = m0 + v2[:, None] * s, m1 + y2[:, None] * s, m2 + s
        m3, m4 = m3 + (v2 * y2)[:, None] * ds, m4 + v2[:, None] * ds
        s, ds = _sigmas(y3, ok3, a, c, T2, EVEN, FAST)
        m0, m1, m2 = m0 + v3[:, None] * s, m1 + y3[:, None] * s, m2 + s
        m3, m4 = m3 + (v3 * y3)[:, None] * ds, m4 + v3[:, None] * ds
        tl.store(out + kk, tl.sum(m0, axis=0), mask=mk)
        tl.store(out + H + kk, tl.sum(m1, axis=0), mask=mk)
        tl.store(out + 2 * H + kk, tl.sum(m2, axis=0), mask=mk)
        tl.store(out + 3 * H + kk, tl.sum(m3, axis=0), mask=mk)
        tl.store(out + 4 * H + kk, tl.sum(m4, axis=0), mask=mk)


@triton.jit
def _yb_chunk(acc1, acc2, y, ok, a, c, x1, x2, T2, EVEN: tl.constexpr, FAST: tl.constexpr):
    s, ds = _sigmas(y, ok, a, c, T2, EVEN, FAST)
    return acc1 + ds * x1[None, :], acc2 + s * x2[None, :]


@triton.jit
def _dq_kernel(q_ptr, v_ptr, x_ptr, dq_ptr, w1_ptr, b1_ptr, scal_ptr, n, H, CH: tl.constexpr,
               BQ: tl.constexpr, THRESHOLD: tl.constexpr, EVEN: tl.constexpr,
               FAST: tl.constexpr):
    """dq = yb - mean yb, yb_i = vb_i sum_k sigma'_ik x1_k + sum_k sigma_ik x2_k, with
    x [B, 2, H] = (u w1, Sb w1): q, v -> dq [B, N]."""
    b = tl.program_id(0).to(tl.int64)
    n_f = tl.load(scal_ptr)
    lg = tl.load(scal_ptr + 1)
    T2 = THRESHOLD * lg
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, _, _ = centred(q_ptr + b * n, n, n_f, CH)
    v0, v1, v2, v3, _, _, _, _, _, _ = centred(v_ptr + b * n, n, n_f, CH)
    d0, e0 = tl.zeros([CH, BQ], dtype=y0.dtype), tl.zeros([CH, BQ], dtype=y0.dtype)
    d1, e1, d2, e2, d3, e3 = d0, e0, d0, e0, d0, e0
    for k0 in range(0, H, BQ):
        kk = k0 + tl.arange(0, BQ)
        mk = kk < H
        a = tl.load(w1_ptr + kk, mask=mk, other=0.0) * lg
        c = tl.load(b1_ptr + kk, mask=mk, other=0.0) * lg
        x1 = tl.load(x_ptr + b * 2 * H + kk, mask=mk, other=0.0)
        x2 = tl.load(x_ptr + b * 2 * H + H + kk, mask=mk, other=0.0)
        d0, e0 = _yb_chunk(d0, e0, y0, ok0, a, c, x1, x2, T2, EVEN, FAST)
        d1, e1 = _yb_chunk(d1, e1, y1, ok1, a, c, x1, x2, T2, EVEN, FAST)
        d2, e2 = _yb_chunk(d2, e2, y2, ok2, a, c, x1, x2, T2, EVEN, FAST)
        d3, e3 = _yb_chunk(d3, e3, y3, ok3, a, c, x1, x2, T2, EVEN, FAST)
    # -(yb) centred: centre_force(m) returns mean m - m
    f0, f1, f2, f3 = centre_force(-(v0 * tl.sum(d0, axis=1) + tl.sum(e0, axis=1)),
                                  -(v1 * tl.sum(d1, axis=1) + tl.sum(e1, axis=1)),
                                  -(v2 * tl.sum(d2, axis=1) + tl.sum(e2, axis=1)),
                                  -(v3 * tl.sum(d3, axis=1) + tl.sum(e3, axis=1)),
                                  ok0, ok1, ok2, ok3, n_f)
    store_chunks(dq_ptr + b * n, n, f0, f1, f2, f3, CH)


def _row_launch(kernel, q, *tensors, n, hidden, threshold, **const):
    """Launch a one-program-per-example kernel with the scalars (N, log2 e) and tile sizes."""
    blocks = tiles(n, hidden, q.dtype)
    scal = torch.tensor([float(n), LOG2E], dtype=q.dtype, device=q.device)
    keep = {k: blocks[k] for k in ("CH", "EVEN", "BH", "BQ", "EXACT", "CLIP")
            if k in kernel.arg_names}
    if "FAST" in kernel.arg_names:
        keep["FAST"] = fast_math(q)
    kernel[(q.shape[0],)](q, *tensors, scal, n, hidden, THRESHOLD=float(threshold),
                          num_warps=blocks["num_warps"], **keep, **const)


def _rho_chain(S, n, w, threshold):
    """s, r, tau = softplus'(r), g, c = g W2 and u = c w1 of the [B, H] pooled sums."""
    s = torch.addmm(w[3] * n, S, w[2].T)
    r = torch.addmm(w[5], s, w[4].T)
    tau = torch.where(r > threshold, 1.0, torch.sigmoid(r))
    g = (tau * w[6]) @ w[4]
    c = g @ w[2]
    return s, r, tau, g, c, c * w[0]


class _TritonClosedFormGrad(torch.autograd.Function):
    """dV/dq [B, N] with its hand-derived backward, the [N, H] work in Triton kernels."""

    @staticmethod
    def forward(ctx, threshold, q, *weights):
        w = check_weights(weights, q.dtype, q.device)
        q = q.detach().contiguous()
        (n_examples, n), hidden = q.shape, w[0].shape[0]
        run = dict(n=n, hidden=hidden, threshold=threshold)
        S = torch.empty(n_examples, hidden, dtype=q.dtype, device=q.device)
        _row_launch(_pool_kernel, q, S, w[0], w[1], **run)
        s, r, tau, g, c, u = _rho_chain(S, n, w, threshold)
        force = torch.empty_like(q)
        _row_launch(_force_kernel, q, u.contiguous(), force, w[0], w[1], **run)
        ctx.save_for_backward(q, S, s, r, tau, g, c, u, *w)
        ctx.threshold = threshold
        return force

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):
        q, S, s, r, tau, g, c, u, w1, b1, W2, b2, W3, b3, w4 = ctx.saved_tensors
        (n_examples, n), hidden = q.shape, w1.shape[0]
        run = dict(n=n, hidden=hidden, threshold=ctx.threshold)
        v = v.contiguous()
        mom = torch.empty(n_examples, 5, hidden, dtype=q.dtype, device=q.device)
        _row_launch(_moments_kernel, q, v, mom, w1, b1, **run)
        A, M1, M2, Md0, Md1 = mom.unbind(1)
        cb = A * w1
        gb = cb @ W2.T
        e = gb @ W3.T
        rb = e * w4 * torch.where(r > ctx.threshold, 0.0, tau - tau * tau)
        sb = rb @ W3
        Sb = sb @ W2
        dq = torch.empty_like(q)
        x = torch.stack((u * w1, Sb * w1), dim=1).contiguous()
        _row_launch(_dq_kernel, q, v, x, dq, w1, b1, **run)
        return (None, dq, (A * c + u * Md0 + Sb * M1).sum(0), (u * Md1 + Sb * M2).sum(0),
                g.T @ cb + sb.T @ S, n * sb.sum(0), (tau * w4).T @ gb + rb.T @ s, rb.sum(0),
                (e * tau).sum(0))


def closed_form_grad_triton(q: torch.Tensor, weights, *, threshold: float) -> torch.Tensor:
    """dV/dq [B, N] of q [B, N], differentiable once in q and the 7 weights (w1 [H], b1 [H],
    W2 [H, H], b2 [H], W3 [H, H], b3 [H], w4 [H]): the Triton twin of
    ``fastvp.surrogate.potential.closed_form_grad`` for training on a GPU (CUDA tensors, or
    CPU ones under TRITON_INTERPRET=1). Per call: two kernels forward, two backward, and
    [B, H] x [H, H] torch matmuls between them.
    """
    check_state(q, q)
    return _TritonClosedFormGrad.apply(float(threshold), q, *weights)


def aot_specs(dtype: str, sizes: dict) -> list:
    """The four kernels as ``_row_launch`` runs them on a GPU, for ``fastvp.kernels.aot``.
    sizes: {"N": particles, "H": hidden units, ...}."""
    n, hidden = sizes["N"], sizes["H"]
    blocks = tiles(n, hidden, torch.float32 if dtype == "float32" else torch.float64)
    warps = blocks.pop("num_warps")
    base = dict(blocks, THRESHOLD=20.0, FAST=dtype == "float32")
    specs = []
    for name, fn in (("deepset_pool", _pool_kernel), ("deepset_force", _force_kernel),
                     ("deepset_moments", _moments_kernel), ("deepset_dq", _dq_kernel)):
        const = {k: v for k, v in base.items() if k in fn.arg_names}
        ints = {"n": n, "H": hidden}
        specs.append(AotSpec(name, fn, signature_of(fn, dtype, const, ints), const, warps, ints))
    return specs
