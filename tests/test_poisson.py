"""The FFT Poisson solve: analytic fields, and CuPy against torch.fft where CuPy runs."""

from __future__ import annotations

import math

import pytest
import torch

from fastvp.backend import cupy_available
from fastvp.pic.poisson import electric_field


@pytest.mark.parametrize("cells", [64, 63])
def test_field_of_a_sine_density_is_the_analytic_one(cells):
    """dE/dx = rho with rho = A sin(k x) gives E = -A cos(k x) / k."""
    length = 20.0
    dx = length / cells
    x = torch.arange(cells, dtype=torch.float64) * dx
    k = 2 * math.pi * 3 / length
    e = electric_field((0.7 * torch.sin(k * x))[None], dx)
    torch.testing.assert_close(e[0], -0.7 * torch.cos(k * x) / k, rtol=0, atol=1e-13)


def test_field_has_zero_mean_and_is_real_for_any_density():
    rho = torch.randn(5, 32, dtype=torch.float64)
    e = electric_field(rho - rho.mean(1, keepdim=True), 0.5)
    assert e.dtype == torch.float64 and e.shape == rho.shape
    torch.testing.assert_close(e.mean(1), torch.zeros(5, dtype=torch.float64), rtol=0, atol=1e-14)
    # the derivative of E (by finite differences in Fourier space) gives back rho
    k = 2 * math.pi * torch.fft.rfftfreq(32, 0.5, dtype=torch.float64)
    de = torch.fft.irfft(1j * k * torch.fft.rfft(e), n=32)
    rho_c = rho - rho.mean(1, keepdim=True)
    nyq = torch.fft.irfft(torch.fft.rfft(rho_c) * (k == k[-1]), n=32)  # dropped Nyquist part
    torch.testing.assert_close(de, rho_c - nyq, rtol=0, atol=1e-12)


def test_unknown_fft_backend_is_rejected():
    with pytest.raises(ValueError, match="fft"):
        electric_field(torch.zeros(1, 8), 1.0, fft="numpy")


@pytest.mark.skipif(not (torch.cuda.is_available() and cupy_available()), reason="needs CuPy and a GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cupy_fft_matches_torch_fft(dtype):
    rho = torch.randn(64, 128, dtype=dtype, device="cuda")
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(electric_field(rho, 1.0, "cupy"), electric_field(rho, 1.0, "torch"), **tol)
