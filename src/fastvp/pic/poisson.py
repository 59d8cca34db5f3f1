"""Periodic 1D Poisson solve for the electric field, by FFT.

    dE/dx = rho (eps0 = 1):  E_k = -i k phi_k,  phi_k = rho_k / k^2 (k != 0),  E_0 = 0,
    i.e. E_k = -i rho_k / k, with k = 2 pi fftfreq(Nx, dx).

For an even Nx the Nyquist mode of E is dropped: its coefficient is imaginary, and the
real part of the inverse transform (docs/physics.md, section 1) removes it. The rfft/irfft pair
below is that same transform for real rho. CuPy's cuFFT runs it on CUDA tensors when
CuPy is installed (zero-copy through DLPack); torch.fft everywhere else.
"""

from __future__ import annotations

import functools
import math

import torch

from ..backend import cupy_available

FFT_CHOICES = ("auto", "torch", "cupy")


@functools.lru_cache(maxsize=32)
def _green(cells: int, dx: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """G_k = -i / k on the rfft frequencies, 0 at k = 0 and at the Nyquist mode: [Nx // 2 + 1]."""
    k = 2 * math.pi * torch.fft.rfftfreq(cells, d=dx, dtype=torch.float64)
    g = torch.zeros(k.shape, dtype=torch.complex128)
    g[1:] = -1j / k[1:]
    if cells % 2 == 0:
        g[-1] = 0
    ctype = torch.complex64 if dtype == torch.float32 else torch.complex128
    return g.to(device=device, dtype=ctype)


def _field_torch(rho: torch.Tensor, dx: float) -> torch.Tensor:
    cells = rho.shape[-1]
    rho_k = torch.fft.rfft(rho, dim=-1)
    return torch.fft.irfft(rho_k * _green(cells, float(dx), rho.device, rho.dtype), n=cells, dim=-1)


def _field_cupy(rho: torch.Tensor, dx: float) -> torch.Tensor:  # pragma: no cover - needs a GPU
    import cupy

    cells = rho.shape[-1]
    green = _green(cells, float(dx), rho.device, rho.dtype)
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(rho.device).cuda_stream)
    with cupy.cuda.Device(rho.device.index or 0), stream:
        r = cupy.from_dlpack(rho.contiguous())
        e = cupy.fft.irfft(cupy.fft.rfft(r, axis=-1) * cupy.from_dlpack(green), n=cells, axis=-1)
        out = torch.from_dlpack(e)
    return out


def electric_field(rho: torch.Tensor, dx: float, fft: str = "auto") -> torch.Tensor:
    """E on the grid from the charge density: rho [B, Nx] -> E [B, Nx] (same dtype)."""
    if fft not in FFT_CHOICES:
        raise ValueError(f"fft must be one of {FFT_CHOICES}, got {fft!r}")
    if fft == "cupy" or (fft == "auto" and rho.is_cuda and cupy_available()):
        if not (rho.is_cuda and cupy_available()):
            raise ValueError("fft='cupy' needs CuPy and a CUDA tensor")
        return _field_cupy(rho, dx)
    return _field_torch(rho, dx)
