"""Fused leapfrog of the Deep Set Hamiltonian H = a^2 |p|^2 / 2 + V(q) as one Triton kernel.

Fused twin of ``fastvp.surrogate.flow.leapfrog`` with the closed-form gradient of
``fastvp.surrogate.potential`` (same math, merged half kicks):

    force = dV/dq(q);  p -= dt/2 force;  q += a^2 dt p;  force = dV/dq(q);
    then K - 1 times:  p -= dt force;    q += a^2 dt p;  force = dV/dq(q);
    finally            p -= dt/2 force                      (K + 1 gradients in all)

with, for one example (y_i = q_i - mean q, z_ik = w1_k y_i + b1_k):

    S = sum_i softplus(z_i);  s = W2 S + N b2;  g = W3^T (softplus'(W3 s + b3) * w4);
    u = (W2^T g) * w1;  dV/dq_i = G_i - mean_j G_j,  G_i = sum_k u_k sigma(z_ik)
                                 = sum_k u_k - sum_k u_k / (1 + e^{z_ik}),

softplus' taken as 1 above `threshold` (the caller passes torch's Softplus threshold).

One program owns up to M = 16 examples for all K steps (in place on q_out, p_out). Per
gradient it runs the softplus pass example by example, then the H x H products of all its
examples at once as [M, H] x [H, H] tl.dot (each weight tile read once for the M examples),
then the sigma pass and the kick/drift example by example. An example's particles are
handled as four chunks of BLOCK_N / 4; the [N, H] activations are recomputed tile by tile
over the hidden units and never stored. The N x H transcendental work is what costs, so it
is written to need few special-function (SFU) operations per (particle, unit) element:

* exponentials in base 2 (t = z log2 e folded into w1, b1): one ``ex2`` each;
* softplus summed over particles as log2 of a product of four factors (1 + 2^t), one
  factor per particle chunk: one ``lg2`` per four elements, each product one FMA;
* sum_k u_k / (1 + 2^t_k) over four units at once as one fraction (num / den over four
  denominators): one reciprocal per four elements;
* in float32 a quarter of the exponentials of both passes are a polynomial on the FMA pipe
  (``_exp2_fma``): ~9 issue slots instead of one SFU op (2 SFU clocks a warp), which
  balances the two where the SFU binds;
* the threshold (overflow guard and torch's linear branch) costs only in the tiles whose
  largest z = max(w1 y_min, w1 y_max) + b1 can pass it (a per-tile branch).

The [M, H] blocks (S, s, g, u) go through a per-program scratch in global memory (L1/L2)
between passes, behind barriers. Scalars travel in a tensor of the data dtype (Triton
would pass Python floats as float32). On a GPU in float32 the base-2 log and the quotient
use the SFU approximations (``FAST``; relative error ~1e-7), elsewhere exact ``tl.log2``
and division. The training gradient (``closed_form_grad_triton``) is at the end.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

try:  # the SFU approximations (lg2.approx, div.approx): GPU only, not in the interpreter
    from triton.language.extra import libdevice
except ImportError:  # pragma: no cover - older Triton
    libdevice = None

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453


@triton.jit
def _softplus_prime(z, THRESHOLD: tl.constexpr):
    # sigmoid(z) from exp(-|z|) (no overflow); 1 above the threshold, as torch's Softplus.
    e = tl.exp(-tl.abs(z))
    r = 1.0 / (1.0 + e)
    sig = tl.where(z >= 0.0, r, e * r)
    return tl.where(z > THRESHOLD, 1.0, sig)


@triton.jit
def _log2(x, FAST: tl.constexpr):
    if FAST:
        out = libdevice.fast_log2f(x)
    else:
        out = tl.log2(x)
    return out


@triton.jit
def _ratio(a, b, FAST: tl.constexpr):
    if FAST:
        out = libdevice.fast_dividef(a, b)
    else:
        out = a / b
    return out


@triton.jit
def _exp2(t, POLY: tl.constexpr):
    if POLY:
        out = _exp2_fma(t)
    else:
        out = tl.exp2(t)
    return out


@triton.jit
def _exp2_tile(y, ok, a, c, T2, CLIP: tl.constexpr, EVEN: tl.constexpr, EXACT: tl.constexpr,
               POLY: tl.constexpr = False):
    """(2^t, t beyond the threshold) for t = y a + c = z log2(e): [rows] x [cols] -> [rows, cols].

    Past T2 (the threshold in base 2) softplus(z) = z: EXACT (float64) takes 2^t = 0 and
    t apart; float32 clamps t at T2 (error log1p(e^-T) ~ 2e-9 absolute, below its ulp).
    Rows off the mask give 2^t = 0 (a factor 1, a zero term).
    """
    t = y[:, None] * a[None, :] + c[None, :]
    excess = tl.zeros_like(t)
    if CLIP:
        if EXACT:
            over = t > T2
            e = tl.where(over, 0.0, tl.exp2(tl.minimum(t, T2)))
            excess = tl.where(over, t, 0.0)
        else:
            tc = tl.minimum(t, T2)
            e = _exp2(tc, POLY)
            excess = t - tc
    else:
        e = _exp2(t, POLY and not EXACT)
    if not EVEN:
        e = tl.where(ok[:, None], e, 0.0)
        excess = tl.where(ok[:, None], excess, 0.0)
    return e, excess


@triton.jit
def _pool_tile(y0, y1, y2, y3, ok0, ok1, ok2, ok3, a, c, T2, CLIP: tl.constexpr,
               EVEN: tl.constexpr, EXACT: tl.constexpr, FAST: tl.constexpr):
    """sum_i softplus(z_ik) / ln 2 over the four particle chunks: [cols].

    log2 prod_j (1 + 2^t_j) per row, the product built by FMAs (p + p e = p (1 + e)).
    """
    e, excess = _exp2_tile(y0, ok0, a, c, T2, CLIP, EVEN, EXACT)
    prod = 1.0 + e
    e, x = _exp2_tile(y1, ok1, a, c, T2, CLIP, EVEN, EXACT)
    prod = tl.fma(prod, e, prod)
    excess += x
    e, x = _exp2_tile(y2, ok2, a, c, T2, CLIP, EVEN, EXACT)
    prod = tl.fma(prod, e, prod)
    excess += x
    # float32: a quarter of the exponentials on the FMA pipe (the pass is SFU-bound)
    e, x = _exp2_tile(y3, ok3, a, c, T2, CLIP, EVEN, EXACT, not EXACT)
    prod = tl.fma(prod, e, prod)
    total = tl.sum(_log2(prod, FAST), axis=0)
    if CLIP:
        total += tl.sum(excess + x, axis=0)
    return total


@triton.jit
def _exp2_fma(t):
    """2^t in float32 on the FMA pipe (no SFU): t = n + f with n = rint(t), |f| <= 1/2;
    2^f by a degree-5 minimax polynomial (relative error 7.5e-8), n added to the exponent
    bits. t below -127 counts as -127 (2^t is then below 1e-38, as good as 0 here)."""
    t = tl.maximum(t, -127.0)
    j = t + 12582912.0                # 1.5 * 2^23: t rounded to an integer in the low bits
    f = t - (j - 12582912.0)
    p = 0.001327647152077489 * f + 0.009675541330713367
    p = p * f + 0.05550713274958138
    p = p * f + 0.24022119723933283
    p = p * f + 0.6931469670638659
    p = p * f + 1.000000071654658
    bits = p.to(tl.int32, bitcast=True) + (j.to(tl.int32, bitcast=True) << 23)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _pair(y, a0, c0, u0, a1, c1, u1, u01, T2, CLIP: tl.constexpr, EXACT: tl.constexpr,
          POLY: tl.constexpr):
    """u0 / d0 + u1 / d1 as (num, den), d = 1 + 2^t: num = u0 d1 + u1 d0, den = d0 d1."""
    t0 = y[:, None] * a0[None, :] + c0[None, :]
    t1 = y[:, None] * a1[None, :] + c1[None, :]
    if CLIP:
        if EXACT:  # sigma = 1 exactly past the threshold: the unit's term u / d is 0
            v0 = tl.where(t0 > T2, 0.0, u0[None, :])
            v1 = tl.where(t1 > T2, 0.0, u1[None, :])
        t0 = tl.minimum(t0, T2)
        t1 = tl.minimum(t1, T2)
    e0 = tl.exp2(t0)
    e1 = _exp2(t1, POLY and not EXACT)
    d0 = 1.0 + e0
    if CLIP and EXACT:
        num = tl.fma(v0, e1, tl.fma(v1, e0, v0 + v1))
    else:
        num = tl.fma(u0[None, :], e1, tl.fma(u1[None, :], e0, u01[None, :]))
    return num, tl.fma(d0, e1, d0)


@triton.jit
def _quad_tile(y, ok, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3, T2, CLIP: tl.constexpr,
               EVEN: tl.constexpr, EXACT: tl.constexpr, FAST: tl.constexpr):
    """sum_{j<4} u_j / (1 + 2^{y a_j + c_j}) = sum_j u_j (1 - sigma(z_j)): [rows, cols].

    One quotient for four units: (n01 d23 + n23 d01) / (d01 d23). Denominators are below
    (1 + e^T)^4 ~ 6e34 (float32 range) since t is clamped at T2 where it may pass it.
    """
    # float32: a quarter of the exponentials on the FMA pipe (the pass is SFU-bound)
    n01, d01 = _pair(y, a0, c0, u0, a1, c1, u1, u0 + u1, T2, CLIP, EXACT, True)
    n23, d23 = _pair(y, a2, c2, u2, a3, c3, u3, u2 + u3, T2, CLIP, EXACT, False)
    out = _ratio(tl.fma(n01, d23, n23 * d01), d01 * d23, FAST)
    if not EVEN:
        out = tl.where(ok[:, None], out, 0.0)
    return out


@triton.jit
def _zmax(ymin, ymax, a, c):
    """Largest t = y a + c over particles in [ymin, ymax], per unit (t is affine in y)."""
    return tl.maximum(ymin * a, ymax * a) + c


@triton.jit
def _softplus_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, T2, w1_ptr, b1_ptr,
                   scr_ptr, H, BH: tl.constexpr, EVEN: tl.constexpr, EXACT: tl.constexpr,
                   FAST: tl.constexpr, CLIP: tl.constexpr):
    """S_k = sum_i softplus(z_ik) for every unit k, written to scr_ptr[0:H]. CLIP = 1 takes
    the threshold branch only in the tiles whose largest z may pass it."""
    for k0 in range(0, H, BH):
        kk = k0 + tl.arange(0, BH)
        mk = kk < H
        a = tl.load(w1_ptr + kk, mask=mk, other=0.0) * lg
        c = tl.load(b1_ptr + kk, mask=mk, other=0.0) * lg
        if CLIP != 1:  # 0: never past the threshold, 2: always (the cost model's bounds)
            S = _pool_tile(y0, y1, y2, y3, ok0, ok1, ok2, ok3, a, c, T2, CLIP == 2, EVEN, EXACT,
                           FAST)
        elif tl.max(_zmax(ymin, ymax, a, c), axis=0) > T2:
            S = _pool_tile(y0, y1, y2, y3, ok0, ok1, ok2, ok3, a, c, T2, True, EVEN, EXACT, FAST)
        else:
            S = _pool_tile(y0, y1, y2, y3, ok0, ok1, ok2, ok3, a, c, T2, False, EVEN, EXACT, FAST)
        tl.store(scr_ptr + kk, S / lg, mask=mk)


@triton.jit
def _mm(a_ptr, w_ptr, sk, sj, j0, H, M: tl.constexpr, BLOCK_H: tl.constexpr, BN: tl.constexpr,
        BK: tl.constexpr, PREC: tl.constexpr):
    """A B[:, j0:j0 + BN] over k < H: A [M, H] rows of a scratch block (row stride BLOCK_H),
    B[k, j] = w[k sk + j sj] (a weight matrix or its transpose): [M, BN]."""
    rows = tl.arange(0, M)
    jj = j0 + tl.arange(0, BN)
    mj = jj < H
    acc = tl.zeros([M, BN], dtype=a_ptr.dtype.element_ty)
    for k0 in range(0, H, BK):
        kk = k0 + tl.arange(0, BK)
        mk = kk < H
        A = tl.load(a_ptr + rows[:, None] * BLOCK_H + kk[None, :], mask=mk[None, :], other=0.0)
        B = tl.load(w_ptr + kk[:, None] * sk + jj[None, :] * sj, mask=mk[:, None] & mj[None, :],
                    other=0.0)
        acc = tl.dot(A, B, acc=acc, input_precision=PREC, out_dtype=acc.dtype)
    return acc


@triton.jit
def _store_rows(ptr, x, j0, H, M: tl.constexpr, BLOCK_H: tl.constexpr, BN: tl.constexpr):
    jj = j0 + tl.arange(0, BN)
    tl.store(ptr + tl.arange(0, M)[:, None] * BLOCK_H + jj[None, :], x, mask=(jj < H)[None, :])


@triton.jit
def _rho_dots(scr, n_f, w1_ptr, W2_ptr, b2_ptr, W3_ptr, b3_ptr, w4_ptr, H, M: tl.constexpr,
              BLOCK_H: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
              THRESHOLD: tl.constexpr, PREC: tl.constexpr):
    """The [M, H] mat-mats of M examples (rows of the scratch blocks; S in block 0):

        s = S W2^T + N b2 (-> block 1),  g = (softplus'(s W3^T + b3) * w4) W3 (-> block 0),
        u = (g W2) * w1 (-> block 2).

    Each weight tile is read once for the M examples (tl.dot on the tensor cores: tf32x3
    keeps float32 accuracy, float64 stays float64 (DMMA)).
    """
    blk = M * BLOCK_H
    for j0 in range(0, H, BN):
        jj = j0 + tl.arange(0, BN)
        s = _mm(scr, W2_ptr, 1, H, j0, H, M, BLOCK_H, BN, BK, PREC)
        s += n_f * tl.load(b2_ptr + jj, mask=jj < H, other=0.0)[None, :]
        _store_rows(scr + blk, s, j0, H, M, BLOCK_H, BN)
    tl.debug_barrier()
    hh = tl.arange(0, BLOCK_H)
    g = tl.zeros([M, BLOCK_H], dtype=scr.dtype.element_ty)
    for j0 in range(0, H, BN):
        jj = j0 + tl.arange(0, BN)
        mj = jj < H
        r = _mm(scr + blk, W3_ptr, 1, H, j0, H, M, BLOCK_H, BN, BK, PREC)
        r += tl.load(b3_ptr + jj, mask=mj, other=0.0)[None, :]
        tau = _softplus_prime(r, THRESHOLD) * tl.load(w4_ptr + jj, mask=mj, other=0.0)[None, :]
        W3 = tl.load(W3_ptr + jj[:, None] * H + hh[None, :], mask=mj[:, None] & (hh < H)[None, :],
                     other=0.0)
        g = tl.dot(tau, W3, acc=g, input_precision=PREC, out_dtype=g.dtype)
    tl.store(scr + tl.arange(0, M)[:, None] * BLOCK_H + hh[None, :], g)
    tl.debug_barrier()
    for j0 in range(0, H, BN):
        jj = j0 + tl.arange(0, BN)
        u = _mm(scr, W2_ptr, H, 1, j0, H, M, BLOCK_H, BN, BK, PREC)
        u *= tl.load(w1_ptr + jj, mask=jj < H, other=0.0)[None, :]
        _store_rows(scr + 2 * blk, u, j0, H, M, BLOCK_H, BN)


@triton.jit
def _units(w1_ptr, b1_ptr, u_ptr, k0, lg, H, BQ: tl.constexpr):
    """(w1 log2 e, b1 log2 e, u) of the units k0 .. k0 + BQ (zeros past H)."""
    kk = k0 + tl.arange(0, BQ)
    mk = kk < H
    a = tl.load(w1_ptr + kk, mask=mk, other=0.0) * lg
    c = tl.load(b1_ptr + kk, mask=mk, other=0.0) * lg
    return a, c, tl.load(u_ptr + kk, mask=mk, other=0.0)


@triton.jit
def _quad4(acc0, acc1, acc2, acc3, y0, y1, y2, y3, ok0, ok1, ok2, ok3, a0, c0, u0, a1, c1, u1,
           a2, c2, u2, a3, c3, u3, T2, CLIP: tl.constexpr, EVEN: tl.constexpr,
           EXACT: tl.constexpr, FAST: tl.constexpr):
    """The four chunks' accumulators plus their ``_quad_tile`` over four blocks of units."""
    acc0 += _quad_tile(y0, ok0, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3, T2, CLIP, EVEN,
                       EXACT, FAST)
    acc1 += _quad_tile(y1, ok1, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3, T2, CLIP, EVEN,
                       EXACT, FAST)
    acc2 += _quad_tile(y2, ok2, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3, T2, CLIP, EVEN,
                       EXACT, FAST)
    acc3 += _quad_tile(y3, ok3, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3, T2, CLIP, EVEN,
                       EXACT, FAST)
    return acc0, acc1, acc2, acc3


@triton.jit
def _sigma_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, T2, w1_ptr, b1_ptr, u_ptr,
                H, CH: tl.constexpr, BQ: tl.constexpr, EVEN: tl.constexpr, EXACT: tl.constexpr,
                FAST: tl.constexpr, CLIP: tl.constexpr):
    """mG_i = sum_k u_k / (1 + e^{z_ik}) for the four chunks (u read from u_ptr): 4 x [CH]."""
    acc0 = tl.zeros([CH, BQ], dtype=y0.dtype)
    acc1 = tl.zeros([CH, BQ], dtype=y0.dtype)
    acc2 = tl.zeros([CH, BQ], dtype=y0.dtype)
    acc3 = tl.zeros([CH, BQ], dtype=y0.dtype)
    for k0 in range(0, H, 4 * BQ):
        a0, c0, u0 = _units(w1_ptr, b1_ptr, u_ptr, k0, lg, H, BQ)
        a1, c1, u1 = _units(w1_ptr, b1_ptr, u_ptr, k0 + BQ, lg, H, BQ)
        a2, c2, u2 = _units(w1_ptr, b1_ptr, u_ptr, k0 + 2 * BQ, lg, H, BQ)
        a3, c3, u3 = _units(w1_ptr, b1_ptr, u_ptr, k0 + 3 * BQ, lg, H, BQ)
        zmax = tl.maximum(tl.maximum(_zmax(ymin, ymax, a0, c0), _zmax(ymin, ymax, a1, c1)),
                          tl.maximum(_zmax(ymin, ymax, a2, c2), _zmax(ymin, ymax, a3, c3)))
        if CLIP != 1:  # 0: never past the threshold, 2: always (the cost model's bounds)
            acc0, acc1, acc2, acc3 = _quad4(acc0, acc1, acc2, acc3, y0, y1, y2, y3, ok0, ok1, ok2,
                                            ok3, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3,
                                            T2, CLIP == 2, EVEN, EXACT, FAST)
        elif tl.max(zmax, axis=0) > T2:
            acc0, acc1, acc2, acc3 = _quad4(acc0, acc1, acc2, acc3, y0, y1, y2, y3, ok0, ok1, ok2,
                                            ok3, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3,
                                            T2, True, EVEN, EXACT, FAST)
        else:
            acc0, acc1, acc2, acc3 = _quad4(acc0, acc1, acc2, acc3, y0, y1, y2, y3, ok0, ok1, ok2,
                                            ok3, a0, c0, u0, a1, c1, u1, a2, c2, u2, a3, c3, u3,
                                            T2, False, EVEN, EXACT, FAST)
    return tl.sum(acc0, axis=1), tl.sum(acc1, axis=1), tl.sum(acc2, axis=1), tl.sum(acc3, axis=1)


@triton.jit
def _chunk_min_max(y, ok):
    return (tl.min(tl.where(ok, y, float("inf")), axis=0),
            tl.max(tl.where(ok, y, -float("inf")), axis=0))


@triton.jit
def _chunks(ptr, n, CH: tl.constexpr):
    """The four chunks of one example's row (zero past n) and their masks."""
    o = tl.arange(0, CH)
    ok0, ok1, ok2, ok3 = o < n, o + CH < n, o + 2 * CH < n, o + 3 * CH < n
    return (tl.load(ptr + o, mask=ok0, other=0.0), tl.load(ptr + o + CH, mask=ok1, other=0.0),
            tl.load(ptr + o + 2 * CH, mask=ok2, other=0.0),
            tl.load(ptr + o + 3 * CH, mask=ok3, other=0.0), ok0, ok1, ok2, ok3)


@triton.jit
def _store_chunks(ptr, n, x0, x1, x2, x3, CH: tl.constexpr):
    o = tl.arange(0, CH)
    tl.store(ptr + o, x0, mask=o < n)
    tl.store(ptr + o + CH, x1, mask=o + CH < n)
    tl.store(ptr + o + 2 * CH, x2, mask=o + 2 * CH < n)
    tl.store(ptr + o + 3 * CH, x3, mask=o + 3 * CH < n)


@triton.jit
def _centred(q_ptr, n, n_f, CH: tl.constexpr):
    """y = q - mean q of one example in four chunks, their masks, min y and max y."""
    q0, q1, q2, q3, ok0, ok1, ok2, ok3 = _chunks(q_ptr, n, CH)
    mean = ((tl.sum(q0, axis=0) + tl.sum(q1, axis=0))
            + (tl.sum(q2, axis=0) + tl.sum(q3, axis=0))) / n_f
    y0, y1, y2, y3 = q0 - mean, q1 - mean, q2 - mean, q3 - mean
    lo0, hi0 = _chunk_min_max(y0, ok0)
    lo1, hi1 = _chunk_min_max(y1, ok1)
    lo2, hi2 = _chunk_min_max(y2, ok2)
    lo3, hi3 = _chunk_min_max(y3, ok3)
    ymin = tl.minimum(tl.minimum(lo0, lo1), tl.minimum(lo2, lo3))
    ymax = tl.maximum(tl.maximum(hi0, hi1), tl.maximum(hi2, hi3))
    return y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax


@triton.jit
def _centre_force(m0, m1, m2, m3, ok0, ok1, ok2, ok3, n_f):
    """dV/dq_i = G_i - mean G with G_i = sum_k u_k - m_i (the constant cancels): 4 x [CH]."""
    m0, m1 = tl.where(ok0, m0, 0.0), tl.where(ok1, m1, 0.0)
    m2, m3 = tl.where(ok2, m2, 0.0), tl.where(ok3, m3, 0.0)
    mm = ((tl.sum(m0, axis=0) + tl.sum(m1, axis=0))
          + (tl.sum(m2, axis=0) + tl.sum(m3, axis=0))) / n_f
    return (tl.where(ok0, mm - m0, 0.0), tl.where(ok1, mm - m1, 0.0),
            tl.where(ok2, mm - m2, 0.0), tl.where(ok3, mm - m3, 0.0))


@triton.jit
def _force(q_ptr, u_ptr, n, n_f, lg, T2, w1_ptr, b1_ptr, H, CH: tl.constexpr, BQ: tl.constexpr,
           EVEN: tl.constexpr, EXACT: tl.constexpr, FAST: tl.constexpr, CLIP: tl.constexpr):
    """dV/dq of one example given its u (pass 3): 4 x [CH], zero off the masks."""
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax = _centred(q_ptr, n, n_f, CH)
    m0, m1, m2, m3 = _sigma_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, T2, w1_ptr,
                                 b1_ptr, u_ptr, H, CH, BQ, EVEN, EXACT, FAST, CLIP)
    return _centre_force(m0, m1, m2, m3, ok0, ok1, ok2, ok3, n_f)


@triton.jit
def _kick_drift(q_ptr, p_ptr, f0, f1, f2, f3, h, drift, n, CH: tl.constexpr):
    """p -= h force; q += drift p, in place on one example's rows."""
    q0, q1, q2, q3, _, _, _, _ = _chunks(q_ptr, n, CH)
    p0, p1, p2, p3, _, _, _, _ = _chunks(p_ptr, n, CH)
    p0, p1, p2, p3 = p0 - h * f0, p1 - h * f1, p2 - h * f2, p3 - h * f3
    _store_chunks(p_ptr, n, p0, p1, p2, p3, CH)
    _store_chunks(q_ptr, n, q0 + drift * p0, q1 + drift * p1, q2 + drift * p2, q3 + drift * p3, CH)


@triton.jit
def _leapfrog_kernel(q_ptr, p_ptr, force_ptr, w1_ptr, b1_ptr, W2_ptr, b2_ptr, W3_ptr, b3_ptr,
                     w4_ptr, scal_ptr, scr_ptr, n, H, n_examples, per_program, steps,
                     CH: tl.constexpr, BLOCK_H: tl.constexpr, BH: tl.constexpr,
                     BQ: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                     M: tl.constexpr, THRESHOLD: tl.constexpr, STORE_FORCE: tl.constexpr, EVEN: tl.constexpr,
                     EXACT: tl.constexpr, FAST: tl.constexpr, PREC: tl.constexpr,
                     CLIP: tl.constexpr):
    """K merged-kick leapfrog steps, in place on q, p [B, N], for `per_program` (<= M)
    examples per program: per gradient, pass 1 example by example, the mat-mats of all of
    them at once (``_rho_dots``), pass 3 and the kick/drift example by example."""
    pid = tl.program_id(0)
    first = pid * per_program
    count = tl.minimum(per_program, n_examples - first)
    scr = scr_ptr + pid.to(tl.int64) * (3 * M * BLOCK_H)
    half = tl.load(scal_ptr)
    dt = tl.load(scal_ptr + 1)
    a2dt = tl.load(scal_ptr + 2)
    n_f = tl.load(scal_ptr + 3)
    lg = tl.load(scal_ptr + 4)        # log2(e) in the data's dtype
    T2 = THRESHOLD * lg
    for k in range(steps + 1):
        for m in range(count):
            row = (first + m).to(tl.int64) * n
            y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax = _centred(q_ptr + row, n, n_f, CH)
            _softplus_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, T2, w1_ptr,
                           b1_ptr, scr + m * BLOCK_H, H, BH, EVEN, EXACT, FAST, CLIP)
        tl.debug_barrier()
        _rho_dots(scr, n_f, w1_ptr, W2_ptr, b2_ptr, W3_ptr, b3_ptr, w4_ptr, H, M, BLOCK_H, BN,
                  BK, THRESHOLD, PREC)
        tl.debug_barrier()
        # kick (half at both ends, merged full kicks between) and, for k < K, the drift
        h = tl.where((k > 0) & (k < steps), dt, half)
        drift = tl.where(k < steps, a2dt, 0.0)
        for m in range(count):
            row = (first + m).to(tl.int64) * n
            f0, f1, f2, f3 = _force(q_ptr + row, scr + (2 * M + m) * BLOCK_H, n, n_f, lg, T2,
                                    w1_ptr, b1_ptr, H, CH, BQ, EVEN, EXACT, FAST, CLIP)
            if STORE_FORCE:
                _store_chunks(force_ptr + row, n, f0, f1, f2, f3, CH)
            if steps > 0:
                _kick_drift(q_ptr + row, p_ptr + row, f0, f1, f2, f3, h, drift, n, CH)
        tl.debug_barrier()


#: Examples per program: the mat-mats of pass 2 need 16 rows (tl.dot), and amortise each
#: weight read (W2 twice, W3 once per gradient) over that many examples.
EXAMPLES_PER_PROGRAM = 16


def _blocks(n: int, hidden: int, dtype: torch.dtype) -> dict:
    """Tile sizes and warps: CH particles per chunk (four chunks), BH units per softplus
    tile, 4 BQ per sigma tile, BN columns per mat-mat tile, M example rows."""
    ch = max(4, triton.next_power_of_2(triton.cdiv(n, 4)))
    block_h = max(16, triton.next_power_of_2(hidden))
    f32 = dtype == torch.float32
    # float32 mat-mats as tf32x3 on the tensor cores (float32 accuracy). "ieee" (FMA) is as
    # fast by the SASS count and needs 154 registers instead of 255 on sm_90, but spills
    # on sm_80 at these tiles. With Triton 3.6 (not 3.9) BN = 64 spills 20-64 bytes outside
    # the hot loops; BN = 32 would not in float32 but costs ~25 % more predicted time.
    return dict(CH=ch, BLOCK_H=block_h, BH=min(block_h, 32 if f32 else 16),
                BQ=min(block_h, 8 if f32 else 4), BN=64, BK=16, M=EXAMPLES_PER_PROGRAM,
                EVEN=4 * ch == n, EXACT=not f32, PREC="tf32x3" if f32 else "ieee", CLIP=1,
                num_warps=8)


def _per_program(n_examples: int, device: torch.device) -> int:
    """Examples per program: at most M, spread so that the last wave of programs is full."""
    if device.type != "cuda":
        return min(EXAMPLES_PER_PROGRAM, n_examples)
    slots = torch.cuda.get_device_properties(device).multi_processor_count
    waves = triton.cdiv(n_examples, slots * EXAMPLES_PER_PROGRAM)
    return max(1, triton.cdiv(n_examples, slots * waves))


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


def _fast(q: torch.Tensor) -> bool:
    """SFU approximations (float32 on a GPU); the interpreter has no libdevice."""
    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    return q.dtype == torch.float32 and q.is_cuda and not interpreted and libdevice is not None


def _launch(q, p, weights, a2dt, dt, steps, threshold, store_force, per_program=None):
    w1, b1, W2, b2, W3, b3, w4 = _check_weights(weights, q.dtype, q.device)
    q_out, p_out = q.detach().clone().contiguous(), p.detach().clone().contiguous()
    n_examples, n = q.shape
    hidden = w1.shape[0]
    force = torch.empty_like(q_out) if store_force else q_out
    if n_examples == 0:
        return q_out, p_out, force
    scal = torch.tensor([0.5 * dt, dt, a2dt, float(n), LOG2E], dtype=q.dtype, device=q.device)
    blocks = _blocks(n, hidden, q.dtype)
    per = per_program or _per_program(n_examples, q.device)
    programs = triton.cdiv(n_examples, per)
    scratch = torch.zeros(programs, 3 * blocks["M"] * blocks["BLOCK_H"], dtype=q.dtype,
                          device=q.device)
    _leapfrog_kernel[(programs,)](
        q_out, p_out, force, w1, b1, W2, b2, W3, b3, w4, scal, scratch, n, hidden, n_examples,
        per, steps, THRESHOLD=float(threshold), STORE_FORCE=store_force, FAST=_fast(q), **blocks,
    )
    return q_out, p_out, force


def deepset_leapfrog(q: torch.Tensor, p: torch.Tensor, weights, a2, dt: float, steps: int, *,
                     threshold: float, per_program: int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """K = `steps` merged-kick leapfrog steps of size dt on a^2 |p|^2 / 2 + V(q), fused.

    q, p: [B, N] float32 or float64 (CUDA, or CPU under TRITON_INTERPRET=1);
    weights: (w1 [H], b1 [H], W2 [H, H], b2 [H], W3 [H, H], b3 [H], w4 [H]) in q's dtype
    and device; a2: a^2 (float or 0-d tensor); dt may be negative; threshold: softplus is
    the identity above it.
    per_program: examples per program (1..16; default: spread over the GPU's SMs).
    Returns new tensors (q_K, p_K) [B, N]. No autograd: sampling only.
    """
    _check_state(q, p)
    if per_program is not None and not 1 <= per_program <= EXAMPLES_PER_PROGRAM:
        raise ValueError(f"per_program must be in 1..{EXAMPLES_PER_PROGRAM}, got {per_program!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    dt = float(dt)
    a2 = float(a2)
    if not (math.isfinite(dt) and math.isfinite(a2)):
        raise ValueError(f"dt and a2 must be finite, got dt={dt!r}, a2={a2!r}")
    q_out, p_out, _ = _launch(q, p, weights, a2 * dt, dt, steps, threshold, store_force=False,
                              per_program=per_program)
    return q_out, p_out


def fused_grad(q: torch.Tensor, weights, *, threshold: float) -> torch.Tensor:
    """dV/dq of the Deep Set potential by the same fused code: [B, N] -> [B, N]."""
    _check_state(q, q)
    return _launch(q, q, weights, 0.0, 0.0, 0, threshold, store_force=True)[2]


# ---------------------------------------------------------------------------- training step
#
# dV/dq differentiable once, for training: the [N, H] work of the forward (S and the
# sigma sums) and of its hand-derived backward (the sigma moments and yb; see the module
# docstring of ``fastvp.surrogate.potential`` for the VJP equations) runs in the Triton
# kernels below, one program per example; the [B, H] x [H, H] products between them and
# the weights' gradients (sums of outer products over the batch) are torch matmuls.


@triton.jit
def _pool_kernel(q_ptr, S_ptr, w1_ptr, b1_ptr, scal_ptr, n, H, CH: tl.constexpr,
                 BH: tl.constexpr, THRESHOLD: tl.constexpr, EVEN: tl.constexpr,
                 EXACT: tl.constexpr, FAST: tl.constexpr, CLIP: tl.constexpr):
    """S[b] = sum_i softplus(w1 y_i + b1) of example b: q [B, N] -> S [B, H]."""
    b = tl.program_id(0).to(tl.int64)
    n_f = tl.load(scal_ptr)
    lg = tl.load(scal_ptr + 1)
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax = _centred(q_ptr + b * n, n, n_f, CH)
    _softplus_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, THRESHOLD * lg, w1_ptr,
                   b1_ptr, S_ptr + b * H, H, BH, EVEN, EXACT, FAST, CLIP)


@triton.jit
def _force_kernel(q_ptr, u_ptr, force_ptr, w1_ptr, b1_ptr, scal_ptr, n, H, CH: tl.constexpr,
                  BQ: tl.constexpr, THRESHOLD: tl.constexpr, EVEN: tl.constexpr,
                  EXACT: tl.constexpr, FAST: tl.constexpr, CLIP: tl.constexpr):
    """dV/dq[b] = G - mean G, G_i = sum_k u_k sigma(z_ik): q, u -> force [B, N]."""
    b = tl.program_id(0).to(tl.int64)
    n_f = tl.load(scal_ptr)
    lg = tl.load(scal_ptr + 1)
    f0, f1, f2, f3 = _force(q_ptr + b * n, u_ptr + b * H, n, n_f, lg, THRESHOLD * lg, w1_ptr,
                            b1_ptr, H, CH, BQ, EVEN, EXACT, FAST, CLIP)
    _store_chunks(force_ptr + b * n, n, f0, f1, f2, f3, CH)


@triton.jit
def _sigmas(y, ok, a, c, T2, EVEN: tl.constexpr, FAST: tl.constexpr):
    """(sigma, sigma') of z = (y a + c) / log2(e): [rows, cols]; sigma = 1, sigma' = 0 past
    the threshold (torch's Softplus), both 0 on rows off the mask."""
    t = y[:, None] * a[None, :] + c[None, :]
    d = 1.0 + tl.exp2(tl.minimum(t, T2))
    m = tl.where(t > T2, 0.0, _ratio(tl.full(d.shape, 1.0, d.dtype), d, FAST))   # 1 - sigma
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
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, _, _ = _centred(q_ptr + b * n, n, n_f, CH)
    y0, y1, y2, y3 = (tl.where(ok0, y0, 0.0), tl.where(ok1, y1, 0.0), tl.where(ok2, y2, 0.0),
                      tl.where(ok3, y3, 0.0))
    v0, v1, v2, v3, _, _, _, _, _, _ = _centred(v_ptr + b * n, n, n_f, CH)
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
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, _, _ = _centred(q_ptr + b * n, n, n_f, CH)
    v0, v1, v2, v3, _, _, _, _, _, _ = _centred(v_ptr + b * n, n, n_f, CH)
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
    # -(yb) centred: _centre_force(m) returns mean m - m
    f0, f1, f2, f3 = _centre_force(-(v0 * tl.sum(d0, axis=1) + tl.sum(e0, axis=1)),
                                   -(v1 * tl.sum(d1, axis=1) + tl.sum(e1, axis=1)),
                                   -(v2 * tl.sum(d2, axis=1) + tl.sum(e2, axis=1)),
                                   -(v3 * tl.sum(d3, axis=1) + tl.sum(e3, axis=1)),
                                   ok0, ok1, ok2, ok3, n_f)
    _store_chunks(dq_ptr + b * n, n, f0, f1, f2, f3, CH)


def _row_launch(kernel, q, *tensors, n, hidden, threshold, **const):
    """Launch a one-program-per-example kernel with the scalars (N, log2 e) and tile sizes."""
    blocks = _blocks(n, hidden, q.dtype)
    scal = torch.tensor([float(n), LOG2E], dtype=q.dtype, device=q.device)
    keep = {k: blocks[k] for k in ("CH", "EVEN") if k in kernel.arg_names}
    keep.update({k: blocks[k] for k in ("BH", "BQ", "EXACT", "CLIP") if k in kernel.arg_names})
    if "FAST" in kernel.arg_names:
        keep["FAST"] = _fast(q)
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
        w = _check_weights(weights, q.dtype, q.device)
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
    _check_state(q, q)
    return _TritonClosedFormGrad.apply(float(threshold), q, *weights)


def aot_specs(dtype: str, sizes: dict) -> list:
    """Every kernel of this file as its launcher runs it on a GPU, for ``fastvp.kernels.aot``:
    the sampler (K = 25 steps, 13 examples per program) and the four kernels of the training
    gradient. sizes: {"N": particles, "H": hidden units, ...}."""
    from .aot_spec import AotSpec, signature_of

    n, hidden = sizes["N"], sizes["H"]
    blocks = _blocks(n, hidden, torch.float32 if dtype == "float32" else torch.float64)
    warps = blocks.pop("num_warps")
    base = dict(THRESHOLD=20.0, FAST=dtype == "float32")
    ints = {"n": n, "H": hidden, "n_examples": 6384, "per_program": 13, "steps": 25}
    specs = [("deepset_leapfrog", _leapfrog_kernel, dict(blocks, STORE_FORCE=False, **base))]
    for name, fn in (("deepset_pool", _pool_kernel), ("deepset_force", _force_kernel),
                     ("deepset_moments", _moments_kernel), ("deepset_dq", _dq_kernel)):
        specs.append((name, fn, {k: v for k, v in dict(blocks, **base).items()
                                 if k in fn.arg_names}))
    return [AotSpec(name, fn, signature_of(fn, dtype, const, ints), const, warps,
                    {k: v for k, v in ints.items() if k in fn.arg_names})
            for name, fn, const in specs]
