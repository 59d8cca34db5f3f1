"""Triton CIC kernels against their plain-torch twins (interpreter on CPU, CUDA when present)."""

from __future__ import annotations

import pytest
import torch

import fastvp
from fastvp.backend import triton_available, triton_interpreted
from fastvp.pic import deposit as ref

pytestmark = pytest.mark.skipif(
    not triton_available() or not (torch.cuda.is_available() or triton_interpreted()),
    reason="Triton kernels need triton, and CUDA or TRITON_INTERPRET=1",
)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def _kernels():
    from fastvp.kernels import cic

    return cic


def _particles(dtype, b=3, n=37, length=10.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, n, generator=g, dtype=torch.float64) * 1.2 - 0.1) * length  # some outside [0, L)
    v = torch.randn(b, n, generator=g, dtype=torch.float64)
    return x.to(DEVICE, dtype), v.to(DEVICE, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cells", [8, 13])
def test_deposit_kernel_matches_torch(dtype, cells):
    x, _ = _particles(dtype)
    dx = 10.0 / cells
    got = _kernels().deposit(x, cells, dx, 0.7)
    want = ref.deposit(x, cells, dx, 0.7)
    torch.testing.assert_close(got, want, **TOL[dtype])
    # charge is conserved: every particle deposits exactly its weight
    torch.testing.assert_close(got.sum(1), torch.full_like(got[:, 0], 0.7 * x.shape[1]), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gather_kernel_matches_torch(dtype):
    x, _ = _particles(dtype)
    grid = torch.randn(3, 11, dtype=torch.float64).to(DEVICE, dtype)
    torch.testing.assert_close(_kernels().gather(grid, x, 10.0 / 11), ref.gather(grid, x, 10.0 / 11),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_drift_deposit_and_kick_gather_match_torch(dtype):
    x, v = _particles(dtype)
    length, cells, dt = 10.0, 16, 0.3
    x_ref = torch.remainder(x + dt * v, length)
    rho_ref = ref.deposit(x_ref, cells, length / cells, 0.2)
    xk = x.clone()
    rho = _kernels().drift_deposit(xk, v, dt, length, cells, 0.2)
    torch.testing.assert_close(xk, x_ref, **TOL[dtype])
    torch.testing.assert_close(rho, rho_ref, **TOL[dtype])
    grid = torch.randn(3, cells, dtype=torch.float64).to(DEVICE, dtype)
    vk = v.clone()
    _kernels().kick_gather(grid, xk, vk, length / cells, -0.45)
    torch.testing.assert_close(vk, v - 0.45 * ref.gather(grid, x_ref, length / cells), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scheme", ["leapfrog", "official"])
def test_simulate_with_triton_kernels_matches_torch_path(dtype, scheme):
    cfg = fastvp.PICConfig(n_particles=48, steps=6, save_every=3, scheme=scheme)
    batch = fastvp.initial_conditions(3, cfg, seed=2, dtype=dtype, device=DEVICE)
    a = fastvp.simulate(batch, cfg, kernels="triton")
    b = fastvp.simulate(batch, cfg, kernels="torch")
    tol = dict(rtol=1e-11, atol=1e-11) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.q, b.q, **tol)
    torch.testing.assert_close(a.p, b.p, **tol)
