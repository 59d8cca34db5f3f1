"""Fused leapfrog of the Deep Set Hamiltonian H = a^2 |p|^2 / 2 + V(q) as one Triton kernel.

Fused twin of ``fastvp.surrogate.flow.leapfrog`` with the closed-form gradient of
``fastvp.surrogate.potential`` (same math, merged half kicks), for sampling:

    force = dV/dq(q);  p -= dt/2 force;  q += a^2 dt p;  force = dV/dq(q);
    then K - 1 times:  p -= dt force;    q += a^2 dt p;  force = dV/dq(q);
    finally            p -= dt/2 force                      (K + 1 gradients in all)

with, for one example, the pooled sums S and the force from u as in ``deepset_common``
(its softplus and sigma passes) and between them the rho chain

    s = W2 S + N b2;  g = W3^T (softplus'(W3 s + b3) * w4);  u = (W2^T g) * w1,

softplus' taken as 1 above `threshold` (the caller passes torch's Softplus threshold).

One program owns up to M = 16 examples for all K steps (in place on q_out, p_out). Per
gradient it runs the softplus pass example by example, then the H x H products of all its
examples at once as [M, H] x [H, H] tl.dot (each weight tile read once for the M examples),
then the sigma pass and the kick/drift example by example. The [M, H] blocks (S, s, g, u)
go through a per-program scratch in global memory (L1/L2) between passes, behind barriers.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .aot_spec import AotSpec, signature_of
from .deepset_common import (
    LOG2E,
    centred,
    check_state,
    check_weights,
    chunks,
    example_force,
    fast_math,
    softplus_sums,
    store_chunks,
    tiles,
)


@triton.jit
def _softplus_prime(z, THRESHOLD: tl.constexpr):
    # sigmoid(z) from exp(-|z|) (no overflow); 1 above the threshold, as torch's Softplus.
    e = tl.exp(-tl.abs(z))
    r = 1.0 / (1.0 + e)
    sig = tl.where(z >= 0.0, r, e * r)
    return tl.where(z > THRESHOLD, 1.0, sig)

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
def _kick_drift(q_ptr, p_ptr, f0, f1, f2, f3, h, drift, n, CH: tl.constexpr):
    """p -= h force; q += drift p, in place on one example's rows."""
    q0, q1, q2, q3, _, _, _, _ = chunks(q_ptr, n, CH)
    p0, p1, p2, p3, _, _, _, _ = chunks(p_ptr, n, CH)
    p0, p1, p2, p3 = p0 - h * f0, p1 - h * f1, p2 - h * f2, p3 - h * f3
    store_chunks(p_ptr, n, p0, p1, p2, p3, CH)
    store_chunks(q_ptr, n, q0 + drift * p0, q1 + drift * p1, q2 + drift * p2, q3 + drift * p3, CH)


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
            y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax = centred(q_ptr + row, n, n_f, CH)
            softplus_sums(y0, y1, y2, y3, ok0, ok1, ok2, ok3, ymin, ymax, lg, T2, w1_ptr,
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
            f0, f1, f2, f3 = example_force(q_ptr + row, scr + (2 * M + m) * BLOCK_H, n, n_f, lg,
                                           T2, w1_ptr, b1_ptr, H, CH, BQ, EVEN, EXACT, FAST, CLIP)
            if STORE_FORCE:
                store_chunks(force_ptr + row, n, f0, f1, f2, f3, CH)
            if steps > 0:
                _kick_drift(q_ptr + row, p_ptr + row, f0, f1, f2, f3, h, drift, n, CH)
        tl.debug_barrier()


#: Examples per program: the mat-mats of pass 2 need 16 rows (tl.dot), and amortise each
#: weight read (W2 twice, W3 once per gradient) over that many examples.
EXAMPLES_PER_PROGRAM = 16


def _blocks(n: int, hidden: int, dtype: torch.dtype) -> dict:
    """``deepset_common.tiles`` and the mat-mat tiles: BN columns, BK depth, M example rows,
    PREC the tl.dot precision."""
    f32 = dtype == torch.float32
    # float32 mat-mats as tf32x3 on the tensor cores (float32 accuracy). "ieee" (FMA) is as
    # fast by the SASS count and needs 154 registers instead of 255 on sm_90, but spills
    # on sm_80 at these tiles. With Triton 3.6 (not 3.9) BN = 64 spills 20-64 bytes outside
    # the hot loops; BN = 32 would not in float32 but costs ~25 % more predicted time.
    return dict(tiles(n, hidden, dtype), BN=64, BK=16, M=EXAMPLES_PER_PROGRAM,
                PREC="tf32x3" if f32 else "ieee")


def _per_program(n_examples: int, device: torch.device) -> int:
    """Examples per program: at most M, spread so that the last wave of programs is full."""
    if device.type != "cuda":
        return min(EXAMPLES_PER_PROGRAM, n_examples)
    slots = torch.cuda.get_device_properties(device).multi_processor_count
    waves = triton.cdiv(n_examples, slots * EXAMPLES_PER_PROGRAM)
    return max(1, triton.cdiv(n_examples, slots * waves))


def _launch(q, p, weights, a2dt, dt, steps, threshold, store_force, per_program=None):
    w1, b1, W2, b2, W3, b3, w4 = check_weights(weights, q.dtype, q.device)
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
        per, steps, THRESHOLD=float(threshold), STORE_FORCE=store_force, FAST=fast_math(q),
        **blocks,
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
    check_state(q, p)
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
    check_state(q, q)
    return _launch(q, q, weights, 0.0, 0.0, 0, threshold, store_force=True)[2]


def aot_specs(dtype: str, sizes: dict) -> list:
    """The sampler as its launcher runs it on a GPU (K = 25 steps, 13 examples per program),
    for ``fastvp.kernels.aot``. sizes: {"N": particles, "H": hidden units, ...}."""
    n, hidden = sizes["N"], sizes["H"]
    blocks = _blocks(n, hidden, torch.float32 if dtype == "float32" else torch.float64)
    warps = blocks.pop("num_warps")
    const = dict(blocks, STORE_FORCE=False, THRESHOLD=20.0, FAST=dtype == "float32")
    ints = {"n": n, "H": hidden, "n_examples": 6384, "per_program": 13, "steps": 25}
    fn = _leapfrog_kernel
    return [AotSpec("deepset_leapfrog", fn, signature_of(fn, dtype, const, ints), const, warps, ints)]
