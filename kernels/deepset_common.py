"""The Deep Set's per-example passes as Triton helpers, shared by its two kernel families.

No kernel here: ``deepset_leapfrog`` (the fused sampler) and ``deepset_train`` (the
training gradient) build theirs from these. For one example (q [N], y_i = q_i - mean q,
z_ik = w1_k y_i + b1_k, H hidden units) they compute

    S_k = sum_i softplus(z_ik)                                  (``softplus_sums``)
    dV/dq_i = G_i - mean_j G_j,  G_i = sum_k u_k sigma(z_ik)     (``example_force``)
                                     = sum_k u_k - sum_k u_k / (1 + e^{z_ik}),

given u [H] (the rho chain between the two is the families' own), softplus' taken as 1
above `threshold` (the callers pass torch's Softplus threshold). An example's particles are
handled as four chunks of CH = BLOCK_N / 4; the [N, H] activations are recomputed tile by
tile over the hidden units and never stored. The N x H transcendental work is what costs,
so it is written to need few special-function (SFU) operations per (particle, unit) element:

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

Scalars travel in a tensor of the data dtype (Triton would pass Python floats as float32).
On a GPU in float32 the base-2 log and the quotient use the SFU approximations (``FAST``;
relative error ~1e-7), elsewhere exact ``tl.log2`` and division. The Python helpers at the
end (tile sizes, argument checks) are the launchers' common part.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

try:  # the SFU approximations (lg2.approx, div.approx): GPU only, not in the interpreter
    from triton.language.extra import libdevice
except ImportError:  # pragma: no cover - older Triton
    libdevice = None

LOG2E = 1.4426950408889634


@triton.jit
def _log2(x, FAST: tl.constexpr):
    if FAST:
        out = libdevice.fast_log2f(x)
    else:
        out = tl.log2(x)
    return out


@triton.jit
def ratio(a, b, FAST: tl.constexpr):
    """a / b; the SFU approximation (div.approx) where FAST."""
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
    out = ratio(tl.fma(n01, d23, n23 * d01), d01 * d23, FAST)
    if not EVEN:
        out = tl.where(ok[:, None], out, 0.0)
    return out


@triton.jit
def _zmax(ymin, ymax, a, c):
    """Largest t = y a + c over particles in [ymin, ymax], per unit (t is affine in y)."""
    return tl.maximum(ymin * a, ymax * a) + c


@triton.jit
def softplus_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, T2, w1_ptr, b1_ptr,
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
def chunks(ptr, n, CH: tl.constexpr):
    """The four chunks of one example's row (zero past n) and their masks."""
    o = tl.arange(0, CH)
    ok0, ok1, ok2, ok3 = o < n, o + CH < n, o + 2 * CH < n, o + 3 * CH < n
    return (tl.load(ptr + o, mask=ok0, other=0.0), tl.load(ptr + o + CH, mask=ok1, other=0.0),
            tl.load(ptr + o + 2 * CH, mask=ok2, other=0.0),
            tl.load(ptr + o + 3 * CH, mask=ok3, other=0.0), ok0, ok1, ok2, ok3)


@triton.jit
def store_chunks(ptr, n, x0, x1, x2, x3, CH: tl.constexpr):
    """Store four chunks (the layout of ``chunks``) to one example's row, up to n."""
    o = tl.arange(0, CH)
    tl.store(ptr + o, x0, mask=o < n)
    tl.store(ptr + o + CH, x1, mask=o + CH < n)
    tl.store(ptr + o + 2 * CH, x2, mask=o + 2 * CH < n)
    tl.store(ptr + o + 3 * CH, x3, mask=o + 3 * CH < n)


@triton.jit
def centred(q_ptr, n, n_f, CH: tl.constexpr):
    """y = q - mean q of one example in four chunks, their masks, min y and max y."""
    q0, q1, q2, q3, ok0, ok1, ok2, ok3 = chunks(q_ptr, n, CH)
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
def centre_force(m0, m1, m2, m3, ok0, ok1, ok2, ok3, n_f):
    """dV/dq_i = G_i - mean G with G_i = sum_k u_k - m_i (the constant cancels): 4 x [CH]."""
    m0, m1 = tl.where(ok0, m0, 0.0), tl.where(ok1, m1, 0.0)
    m2, m3 = tl.where(ok2, m2, 0.0), tl.where(ok3, m3, 0.0)
    mm = ((tl.sum(m0, axis=0) + tl.sum(m1, axis=0))
          + (tl.sum(m2, axis=0) + tl.sum(m3, axis=0))) / n_f
    return (tl.where(ok0, mm - m0, 0.0), tl.where(ok1, mm - m1, 0.0),
            tl.where(ok2, mm - m2, 0.0), tl.where(ok3, mm - m3, 0.0))


@triton.jit
def example_force(q_ptr, u_ptr, n, n_f, lg, T2, w1_ptr, b1_ptr, H, CH: tl.constexpr,
                  BQ: tl.constexpr, EVEN: tl.constexpr, EXACT: tl.constexpr,
                  FAST: tl.constexpr, CLIP: tl.constexpr):
    """dV/dq of one example given its u [H] (the sigma pass): 4 x [CH], zero off the masks."""
    y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax = centred(q_ptr, n, n_f, CH)
    m0, m1, m2, m3 = _sigma_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, T2, w1_ptr,
                                 b1_ptr, u_ptr, H, CH, BQ, EVEN, EXACT, FAST, CLIP)
    return centre_force(m0, m1, m2, m3, ok0, ok1, ok2, ok3, n_f)


def tiles(n: int, hidden: int, dtype: torch.dtype) -> dict:
    """Tile sizes and warps of the per-example passes: CH particles per chunk (four chunks),
    BLOCK_H hidden units rounded up to a power of two, BH units per softplus tile, 4 BQ per
    sigma tile; EVEN (no masked particle), EXACT (float64), CLIP (the per-tile branch)."""
    ch = max(4, triton.next_power_of_2(triton.cdiv(n, 4)))
    block_h = max(16, triton.next_power_of_2(hidden))
    f32 = dtype == torch.float32
    return dict(CH=ch, BLOCK_H=block_h, BH=min(block_h, 32 if f32 else 16),
                BQ=min(block_h, 8 if f32 else 4), EVEN=4 * ch == n, EXACT=not f32, CLIP=1,
                num_warps=8)


def check_weights(weights, dtype, device) -> tuple[torch.Tensor, ...]:
    """The 7 weights (w1 [H], b1 [H], W2 [H, H], b2 [H], W3 [H, H], b3 [H], w4 [H]) checked
    for shape, dtype and device, detached and contiguous."""
    if len(weights) != 7:
        raise ValueError("weights must be (w1, b1, W2, b2, W3, b3, w4), as DeepSet.weights()")
    w1, b1, W2, b2, W3, b3, w4 = weights
    hidden = w1.shape[0] if w1.dim() == 1 else -1
    shapes = {"w1": (w1, (hidden,)), "b1": (b1, (hidden,)), "W2": (W2, (hidden, hidden)),
              "b2": (b2, (hidden,)), "W3": (W3, (hidden, hidden)), "b3": (b3, (hidden,)),
              "w4": (w4, (hidden,))}
    return tuple(check_tensors(shapes, dtype, device, "hidden from w1 [H]", ok=hidden >= 1))


def check_tensors(shapes: dict, dtype, device, sizes: str, ok: bool = True) -> list[torch.Tensor]:
    """{name: (tensor, shape)} checked for shape (`sizes` says where the sizes come from;
    ok False fails every one), dtype and device like q: the tensors detached and contiguous.

    Raises:
        ValueError: naming the first bad tensor.
    """
    out = []
    for name, (t, shape) in shapes.items():
        if not isinstance(t, torch.Tensor) or not ok or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a tensor of shape {shape} ({sizes}), got {got}")
        if t.dtype != dtype or t.device != device:
            raise ValueError(f"{name} must be {dtype} on {device} like q, got {t.dtype} on "
                             f"{t.device}")
        out.append(t.detach().contiguous())
    return out


def check_state(q: torch.Tensor, p: torch.Tensor) -> None:
    """q, p: float32 or float64 [B, N] tensors alike (dtype, shape, device), N >= 1."""
    if q.dim() != 2 or q.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"q must be a float32/float64 [B, N] tensor, got {q.dtype} of shape "
                         f"{tuple(q.shape)}")
    if p.shape != q.shape or p.dtype != q.dtype or p.device != q.device:
        raise ValueError(f"p must match q ({q.dtype} {tuple(q.shape)} on {q.device}), got "
                         f"{p.dtype} {tuple(p.shape)} on {p.device}")
    if q.shape[1] < 1:
        raise ValueError("q must hold at least one particle per example")


def fast_math(q: torch.Tensor) -> bool:
    """SFU approximations (float32 on a GPU); the interpreter has no libdevice."""
    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    return q.dtype == torch.float32 and q.is_cuda and not interpreted and libdevice is not None

