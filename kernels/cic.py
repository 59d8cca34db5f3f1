"""Cloud-In-Cell deposit (atomic scatter) and gather as Triton kernels.

Twin of ``fastvp.pic.deposit`` (same math, same rounding order where it matters):
s = x / dx, j = floor(s), f = s - j; deposit adds (1 - f) w to cell j mod Nx and f w to
cell j + 1 mod Nx of the example's grid; gather reads e_j + f (e_{j+1} - e_j).

The fused launchers also move the particles, for the simulator's CUDA path:
``drift_deposit`` does x <- (x + dt v) mod L then deposits, ``kick_gather`` does
v <- v + c E(x). Scalars travel in a small tensor of the data's dtype, so that float64
runs keep float64 scalars (Triton would pass Python floats as float32).
One program handles BLOCK particles of one example: grid (B, cdiv(N, BLOCK)).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .aot_spec import AotSpec, signature_of

BLOCK = 256


@triton.jit
def _cic_index(x, dx, cells):
    s = x / dx
    j = tl.floor(s)
    f = s - j
    left = j.to(tl.int32) % cells
    left = tl.where(left < 0, left + cells, left)
    right = tl.where(left + 1 == cells, 0, left + 1)
    return left, right, f


@triton.jit
def _lanes(n, BLOCK: tl.constexpr):
    """This program's example b, its particles' offsets and their mask."""
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    return tl.program_id(0), offs, offs < n


@triton.jit
def _scatter(rho_ptr, b, cells, x, dx, w, mask):
    """rho_b[j] += (1 - f) w, rho_b[j + 1] += f w for each particle x (atomic)."""
    left, right, f = _cic_index(x, dx, cells)
    base = rho_ptr + b * cells
    tl.atomic_add(base + left, (1 - f) * w, mask=mask, sem="relaxed")
    tl.atomic_add(base + right, f * w, mask=mask, sem="relaxed")


@triton.jit
def _interpolate(grid_ptr, b, cells, x, dx, mask):
    """e_j + f (e_{j+1} - e_j) of example b's grid at each particle x."""
    left, right, f = _cic_index(x, dx, cells)
    e0 = tl.load(grid_ptr + b * cells + left, mask=mask, other=0.0)
    e1 = tl.load(grid_ptr + b * cells + right, mask=mask, other=0.0)
    return e0 + f * (e1 - e0)


@triton.jit
def _deposit_kernel(x_ptr, rho_ptr, scal_ptr, n, cells, BLOCK: tl.constexpr):
    b, offs, mask = _lanes(n, BLOCK)
    x = tl.load(x_ptr + b * n + offs, mask=mask, other=0.0)
    _scatter(rho_ptr, b, cells, x, tl.load(scal_ptr), tl.load(scal_ptr + 1), mask)


@triton.jit
def _gather_kernel(grid_ptr, x_ptr, out_ptr, scal_ptr, n, cells, BLOCK: tl.constexpr):
    b, offs, mask = _lanes(n, BLOCK)
    x = tl.load(x_ptr + b * n + offs, mask=mask, other=0.0)
    tl.store(out_ptr + b * n + offs, _interpolate(grid_ptr, b, cells, x, tl.load(scal_ptr), mask),
             mask=mask)


@triton.jit
def _drift_deposit_kernel(x_ptr, v_ptr, rho_ptr, scal_ptr, n, cells, BLOCK: tl.constexpr):
    b, offs, mask = _lanes(n, BLOCK)
    dt = tl.load(scal_ptr + 2)
    length = tl.load(scal_ptr + 3)
    x = tl.load(x_ptr + b * n + offs, mask=mask, other=0.0)
    v = tl.load(v_ptr + b * n + offs, mask=mask, other=0.0)
    x = x + dt * v
    x = x - length * tl.floor(x / length)
    x = tl.where(x >= length, x - length, x)
    tl.store(x_ptr + b * n + offs, x, mask=mask)
    _scatter(rho_ptr, b, cells, x, tl.load(scal_ptr), tl.load(scal_ptr + 1), mask)


@triton.jit
def _kick_gather_kernel(grid_ptr, x_ptr, v_ptr, scal_ptr, n, cells, BLOCK: tl.constexpr):
    b, offs, mask = _lanes(n, BLOCK)
    c = tl.load(scal_ptr + 1)
    x = tl.load(x_ptr + b * n + offs, mask=mask, other=0.0)
    v = tl.load(v_ptr + b * n + offs, mask=mask, other=0.0)
    e = _interpolate(grid_ptr, b, cells, x, tl.load(scal_ptr), mask)
    tl.store(v_ptr + b * n + offs, v + c * e, mask=mask)


def _scalars(ref: torch.Tensor, *values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=ref.dtype, device=ref.device)


def _check(name: str, t: torch.Tensor) -> None:
    if t.dim() != 2 or not t.is_contiguous() or t.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be a contiguous float32/float64 [B, N] tensor, got "
                         f"{t.dtype} of shape {tuple(t.shape)}")


def _grid(x: torch.Tensor) -> tuple[int, int]:
    return (x.shape[0], triton.cdiv(x.shape[1], BLOCK))


def deposit(x: torch.Tensor, cells: int, dx: float, weight: float) -> torch.Tensor:
    """rho_j = sum_i CIC weight of particle i at cell j, times `weight`: [B, N] -> [B, Nx]."""
    _check("x", x)
    rho = torch.zeros(x.shape[0], cells, dtype=x.dtype, device=x.device)
    _deposit_kernel[_grid(x)](x, rho, _scalars(x, dx, weight), x.shape[1], cells, BLOCK=BLOCK)
    return rho


def gather(grid: torch.Tensor, x: torch.Tensor, dx: float) -> torch.Tensor:
    """E(x_i) = e_j + f (e_{j+1} - e_j): grid [B, Nx], x [B, N] -> [B, N]."""
    _check("x", x)
    _check("grid", grid)
    out = torch.empty_like(x)
    _gather_kernel[_grid(x)](grid, x, out, _scalars(x, dx), x.shape[1], grid.shape[1], BLOCK=BLOCK)
    return out


def drift_deposit(x: torch.Tensor, v: torch.Tensor, dt: float, length: float, cells: int,
                  weight: float) -> torch.Tensor:
    """In place x <- (x + dt v) mod L, then the CIC deposit of the moved particles: -> [B, Nx]."""
    _check("x", x)
    _check("v", v)
    rho = torch.zeros(x.shape[0], cells, dtype=x.dtype, device=x.device)
    scal = _scalars(x, length / cells, weight, dt, length)
    _drift_deposit_kernel[_grid(x)](x, v, rho, scal, x.shape[1], cells, BLOCK=BLOCK)
    return rho


def kick_gather(grid: torch.Tensor, x: torch.Tensor, v: torch.Tensor, dx: float, coef: float) -> None:
    """In place v <- v + coef * E(x), E read from grid [B, Nx] by CIC."""
    _check("x", x)
    _check("v", v)
    _check("grid", grid)
    _kick_gather_kernel[_grid(x)](grid, x, v, _scalars(x, dx, coef), x.shape[1], grid.shape[1],
                                  BLOCK=BLOCK)


def aot_specs(dtype: str, sizes: dict) -> list:
    """The four CIC kernels as the launchers run them, for ``fastvp.kernels.aot``.

    sizes: {"N": particles per example, "Nx": cells, ...}; dtype "float32" or "float64".
    """
    ints = {"n": sizes["N"], "cells": sizes["Nx"]}
    const = {"BLOCK": BLOCK}
    kernels = {"cic_deposit": _deposit_kernel, "cic_gather": _gather_kernel,
               "cic_drift_deposit": _drift_deposit_kernel, "cic_kick_gather": _kick_gather_kernel}
    return [AotSpec(name, fn, signature_of(fn, dtype, const, ints), const, num_warps=4, ints=ints)
            for name, fn in kernels.items()]
