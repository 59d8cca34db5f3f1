"""Fused leapfrog of the periodic (Fourier) Hamiltonian H = a^2 |p|^2 / 2 + V(q) as one Triton kernel.

Fused twin of ``fastvp.surrogate.flow.leapfrog`` with ``wrap=L`` and the closed-form
gradient of ``fastvp.surrogate.periodic`` (same math, merged half kicks), for sampling:

    force = dV/dq(q);  p -= dt/2 force;  q = (q + a^2 dt p) mod L;  force = dV/dq(q);
    then K - 1 times:  p -= dt force;    q = (q + a^2 dt p) mod L;  force = dV/dq(q);
    finally            p -= dt/2 force                      (K + 1 gradients in all)

with, for one example of N particles and M modes (k_m = 2 pi m / L),

    C_m = sum_i cos(k_m q_i),  Sn_m = sum_i sin(k_m q_i),  s_m = (C_m^2 + Sn_m^2) / N,
    g_m = c_m + h_m / (1 + s_m),  h = W3^T (sigmoid(W3 log(1 + s) + b3) * w4)   (h = 0 for H = 0),
    dV/dq_i = sum_m a_m (Sn_m cos(k_m q_i) - C_m sin(k_m q_i)),  a_m = 2 k_m g_m / N.

One program owns one example for all K steps, in place on copies of q and p [B, N] (global
memory between passes). Per gradient a first pass over blocks of BLOCK_N particles sums
C and Sn as [BLOCK_N, BLOCK_M] tiles (M padded to a power of two, the padding masked: k = 0
and c = 0 there, so a = 0), the small [M] -> [M] map s -> g runs in registers (the
correction's [H, M] weights in blocks of BH rows; skipped at compile time for H = 0), and a
second pass recomputes the phases, kicks p and drifts and wraps q. The wrap is torch's
``remainder``: fmod (``%`` on floats), plus L where that is negative.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .aot_spec import AotSpec, signature_of
from .deepset_common import check_state, check_tensors


@triton.jit
def _sums(q_ptr, n, kv, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    """C_m = sum_i cos(k_m q_i), Sn_m = sum_i sin(k_m q_i) of one example's row: [BLOCK_M] each."""
    C = tl.zeros([BLOCK_M], dtype=kv.dtype)
    Sn = tl.zeros([BLOCK_M], dtype=kv.dtype)
    for i0 in range(0, n, BLOCK_N):
        offs = i0 + tl.arange(0, BLOCK_N)
        ok = offs < n
        x = tl.load(q_ptr + offs, mask=ok, other=0.0)
        phase = x[:, None] * kv[None, :]
        C += tl.sum(tl.where(ok[:, None], tl.cos(phase), 0.0), axis=0)
        Sn += tl.sum(tl.where(ok[:, None], tl.sin(phase), 0.0), axis=0)
    return C, Sn


@triton.jit
def _log1p(s):
    """log(1 + s) to a few ulps without libdevice: log(w) s / (w - 1), w = 1 + s rounded."""
    w = 1.0 + s
    return tl.where(w == 1.0, s, tl.log(w) * (s / tl.where(w == 1.0, 1.0, w - 1.0)))


@triton.jit
def _sigmoid(z):
    """1 / (1 + e^-z) from e^-|z| (no overflow)."""
    e = tl.exp(-tl.abs(z))
    r = 1.0 / (1.0 + e)
    return tl.where(z >= 0.0, r, e * r)


@triton.jit
def _correction(s, mm, modes, W3_ptr, b3_ptr, w4_ptr, hidden, BLOCK_M: tl.constexpr,
                BH: tl.constexpr):
    """h_m = sum_j W3_jm sigmoid(z_j) w4_j, z = W3 log(1 + s) + b3: [BLOCK_M] (0 past M),
    over the H rows of W3 [H, M] in blocks of BH."""
    u = _log1p(s)
    h = tl.zeros([BLOCK_M], dtype=s.dtype)
    for j0 in range(0, hidden, BH):
        jj = j0 + tl.arange(0, BH)
        mj = jj < hidden
        W3 = tl.load(W3_ptr + jj[:, None] * modes + mm[None, :],
                     mask=mj[:, None] & (mm < modes)[None, :], other=0.0)
        z = tl.sum(W3 * u[None, :], axis=1) + tl.load(b3_ptr + jj, mask=mj, other=0.0)
        tau = _sigmoid(z) * tl.load(w4_ptr + jj, mask=mj, other=0.0)
        h += tl.sum(W3 * tau[:, None], axis=0)
    return h


@triton.jit
def _kick_drift(q_ptr, p_ptr, force_ptr, n, kv, A, Bc, h, drift, length, move,
                BLOCK_N: tl.constexpr, STORE_FORCE: tl.constexpr):
    """force_i = sum_m (A_m cos(k_m q_i) - Bc_m sin(k_m q_i)); p -= h force; where `move`,
    q = (q + drift p) mod L; in place on one example's row, block by block (a barrier
    between a block's reads and its writes: threads may hold copies of the same particles)."""
    for i0 in range(0, n, BLOCK_N):
        offs = i0 + tl.arange(0, BLOCK_N)
        ok = offs < n
        x = tl.load(q_ptr + offs, mask=ok, other=0.0)
        phase = x[:, None] * kv[None, :]
        force = tl.sum(tl.cos(phase) * A[None, :] - tl.sin(phase) * Bc[None, :], axis=1)
        pv = tl.load(p_ptr + offs, mask=ok, other=0.0) - h * force
        # every thread holding a copy of these particles has read them before any writes
        tl.debug_barrier()
        if STORE_FORCE:
            tl.store(force_ptr + offs, force, mask=ok)
        tl.store(p_ptr + offs, pv, mask=ok)
        if move:
            y = (x + drift * pv) % length        # fmod, then into [0, L) as torch.remainder
            tl.store(q_ptr + offs, tl.where(y < 0.0, y + length, y), mask=ok)


@triton.jit
def _fourier_leapfrog_kernel(q_ptr, p_ptr, force_ptr, k_ptr, c_ptr, W3_ptr, b3_ptr, w4_ptr,
                             scal_ptr, n, modes, hidden, steps, BLOCK_N: tl.constexpr,
                             BLOCK_M: tl.constexpr, BH: tl.constexpr, CORRECTION: tl.constexpr,
                             STORE_FORCE: tl.constexpr):
    """K merged-kick leapfrog steps of one example (program b), in place on q, p [B, N]:
    per gradient the sums pass, g in registers, the kick/drift pass (no drift after the last)."""
    row = tl.program_id(0).to(tl.int64) * n
    q_row, p_row, f_row = q_ptr + row, p_ptr + row, force_ptr + row
    half = tl.load(scal_ptr)
    dt = tl.load(scal_ptr + 1)
    a2dt = tl.load(scal_ptr + 2)
    n_f = tl.load(scal_ptr + 3)
    length = tl.load(scal_ptr + 4)
    mm = tl.arange(0, BLOCK_M)
    live = mm < modes
    kv = tl.load(k_ptr + mm, mask=live, other=0.0)
    c = tl.load(c_ptr + mm, mask=live, other=0.0)
    for k in range(steps + 1):
        C, Sn = _sums(q_row, n, kv, BLOCK_N, BLOCK_M)
        s = tl.where(live, (C * C + Sn * Sn) / n_f, 0.0)
        g = c
        if CORRECTION:
            g += _correction(s, mm, modes, W3_ptr, b3_ptr, w4_ptr, hidden, BLOCK_M, BH) / (1.0 + s)
        a = (2.0 / n_f) * kv * g
        # kick (half at both ends, merged full kicks between) and, for k < K, the drift
        h = tl.where((k > 0) & (k < steps), dt, half)
        _kick_drift(q_row, p_row, f_row, n, kv, a * Sn, a * C, h, a2dt, length, k < steps,
                    BLOCK_N, STORE_FORCE)
        tl.debug_barrier()


#: Elements of the [BLOCK_N, BLOCK_M] phase tiles and the [BH, BLOCK_M] weight tiles, and
#: warps: 8 elements a thread. At M = 8 (BLOCK_N = 256) neither dtype spills on sm_80 or
#: sm_90, with or without a correction (``aot``); 1024 elements on 4 or 8 warps spilled
#: 4-8 bytes in one dtype or another (ptxas capping registers at 64 or 80).
TILE = 2048
NUM_WARPS = 8


def _blocks(n: int, modes: int, hidden: int) -> dict:
    """BLOCK_M (M padded to a power of two), BLOCK_N particles and BH rows of W3 per tile."""
    block_m = triton.next_power_of_2(modes)
    per_tile = max(1, TILE // block_m)
    return dict(BLOCK_N=max(16, min(triton.next_power_of_2(n), per_tile)), BLOCK_M=block_m,
                BH=max(1, min(triton.next_power_of_2(max(hidden, 1)), per_tile)),
                CORRECTION=hidden > 0)


def check_fourier_weights(weights, dtype: torch.dtype, device: torch.device) -> tuple:
    """(k [M], c [M], W3 [H, M] | None, b3 [H] | None, w4 [H] | None) checked for shape,
    dtype and device, detached and contiguous; W3, b3, w4 all None or all tensors."""
    if hasattr(weights, "weights") and callable(weights.weights):  # a FourierSet
        weights = weights.weights()
    if not isinstance(weights, tuple) or len(weights) != 5:
        raise ValueError("weights must be a FourierSet or its weights() (k, c, W3, b3, w4), got "
                         f"{type(weights).__name__}")
    k, c, W3, b3, w4 = weights
    if (W3 is None) != (b3 is None) or (W3 is None) != (w4 is None):
        raise ValueError("weights W3, b3, w4 must be all None (no correction) or all tensors")
    modes = k.shape[0] if isinstance(k, torch.Tensor) and k.dim() == 1 else -1
    hidden = W3.shape[0] if isinstance(W3, torch.Tensor) and W3.dim() == 2 else -1
    if hidden == 0:
        raise ValueError("W3 must have at least one row (W3, b3, w4 None: no correction)")
    shapes = {"k": (k, (modes,)), "c": (c, (modes,))}
    if W3 is not None:
        shapes.update(W3=(W3, (hidden, modes)), b3=(b3, (hidden,)), w4=(w4, (hidden,)))
    out = check_tensors(shapes, dtype, device, "M from k [M], H from W3 [H, M]", ok=modes >= 1)
    return tuple(out) if W3 is not None else (*out, None, None, None)


def _launch(q, p, weights, a2dt: float, dt: float, steps: int, length: float, store_force: bool):
    k, c, W3, b3, w4 = check_fourier_weights(weights, q.dtype, q.device)
    q_out = q.detach().clone(memory_format=torch.contiguous_format)
    p_out = p.detach().clone(memory_format=torch.contiguous_format)
    force = torch.empty_like(q_out) if store_force else q_out
    n_examples, n = q.shape
    if n_examples == 0:
        return q_out, p_out, force
    hidden = 0 if W3 is None else W3.shape[0]
    scal = torch.tensor([0.5 * dt, dt, a2dt, float(n), length], dtype=q.dtype, device=q.device)
    W3, b3, w4 = (c, c, c) if W3 is None else (W3, b3, w4)   # unread without a correction
    _fourier_leapfrog_kernel[(n_examples,)](
        q_out, p_out, force, k, c, W3, b3, w4, scal, n, k.shape[0], hidden, steps,
        STORE_FORCE=store_force, num_warps=NUM_WARPS, **_blocks(n, k.shape[0], hidden))
    return q_out, p_out, force


def _positive(name: str, x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a positive finite number, got {x!r}") from exc
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a positive finite number, got {x!r}")
    return x


def fourier_leapfrog(q: torch.Tensor, p: torch.Tensor, weights, a2, dt: float, steps: int,
                     box_length: float) -> tuple[torch.Tensor, torch.Tensor]:
    """K = `steps` merged-kick leapfrog steps of size dt on a^2 |p|^2 / 2 + V(q), V the
    Fourier potential, positions wrapped into [0, L) after each drift; fused.

    q, p: [B, N] float32 or float64 (CUDA, or CPU under TRITON_INTERPRET=1); weights: a
    ``FourierSet`` or its ``weights()`` (k [M], c [M], W3 [H, M], b3 [H], w4 [H]; the last
    three None for H = 0) in q's dtype and device; a2: a^2 (float or 0-d tensor); dt may be
    negative; box_length: L. Returns new tensors (q_K, p_K) [B, N] (the inputs are left
    alone). No autograd: sampling only.
    """
    check_state(q, p)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    dt, a2 = float(dt), float(a2)
    if not (math.isfinite(dt) and math.isfinite(a2)):
        raise ValueError(f"dt and a2 must be finite, got dt={dt!r}, a2={a2!r}")
    length = _positive("box_length", box_length)
    q_out, p_out, _ = _launch(q, p, weights, a2 * dt, dt, steps, length, store_force=False)
    return q_out, p_out


def fourier_grad(q: torch.Tensor, weights) -> torch.Tensor:
    """dV/dq of the Fourier potential by the same fused code: [B, N] -> [B, N]."""
    check_state(q, q)
    return _launch(q, q, weights, 0.0, 0.0, 0, 1.0, store_force=True)[2]


def aot_specs(dtype: str, sizes: dict) -> list:
    """The sampler as its launcher runs it on a GPU (K = 25 steps, M = 8 modes), without a
    correction (the bundled plasma models) and with one of H = sizes["H"] units, for
    ``fastvp.kernels.aot``. sizes: {"N": particles, "H": hidden units, ...}."""
    n, modes = sizes["N"], 8
    fn = _fourier_leapfrog_kernel
    specs = []
    for name, hidden in (("fourier_leapfrog", 0), ("fourier_leapfrog_correction", sizes["H"])):
        const = dict(_blocks(n, modes, hidden), STORE_FORCE=False)
        ints = {"n": n, "modes": modes, "hidden": hidden, "steps": 25}
        specs.append(AotSpec(name, fn, signature_of(fn, dtype, const, ints), const, NUM_WARPS,
                             ints))
    return specs
