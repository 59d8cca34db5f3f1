"""The periodic potential of PDE-NHF for plasma problems in a box [0, L): Fourier features.

The Deep Set of ``potential`` centres the positions, which does not fit a periodic box.
Here phi holds the first M Fourier modes of the positions and rho is a quadratic form of
their power spectrum plus a learned correction (docs/physics.md, section 3):

    S_m = sum_i exp(i k_m q_i) = C_m + i Sn_m,   k_m = 2 pi m / L,  m = 1 .. M,
    s_m = |S_m|^2 / N,   u_m = log(1 + s_m),
    V(q) = sum_m c_m s_m + w4 . softplus(W3 u + b3) + b4,  c_m = theta_m / k_m^2.   q: [B, N] -> V: [B]

(hidden H = 0: no correction, V the quadratic form alone).

|S_m| does not change when every particle moves by the same shift, so V is invariant
under translations (and permutations). In a periodic plasma with a neutralising background
the field energy is exactly such a quadratic form: W / m = sum_m s_m / k_m^2 for charge
q = L / N, q/m = 1 (before the CIC smoothing and beyond the truncation), so theta_m = 1
(electrostatic; -1 under gravity) is the truth a learned model can reach: the parameters
``quadratic`` = theta are learned in those units. The correction takes what the
truncation and the grid leave out. Its gradient in closed form, with g_m = dV/ds_m = c_m + h_m / (1 + s_m),
h = W3^T (sigma(W3 u + b3) * w4) and a_m = 2 k_m g_m / N:

    dV/dq_i = sum_m a_m (Sn_m cos(k_m q_i) - C_m sin(k_m q_i))          (rows sum to 0)

and its vector-Jacobian product with v [B, N] (the backward of training): with
A_m = sum_i v_i cos_im, Bs_m = sum_i v_i sin_im, D_m = Sn_m A_m - C_m Bs_m, the small
[B, M] map s -> g differentiated by autograd (sb = (dg/ds)^T (2 k D / N)), and
Cb = -a Bs + 2 sb C / N, Sb = a A + 2 sb Sn / N:

    dq_i = -v_i sum_m a_m k_m (Sn_m sin_im + C_m cos_im) + sum_m k_m (Sb_m cos_im - Cb_m sin_im)

``FourierSet`` is the module (its parameters: ``quadratic`` c [M], ``rho`` = Linear(M, H)
-> Softplus -> Linear(H, 1), None for H = 0); ``periodic_grad`` the differentiable closed form;
``potential_autograd`` / ``grad_autograd`` the references of the tests.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .. import arguments


class FourierWeights(NamedTuple):
    """What dV/dq of a ``FourierSet`` depends on, detached (``FourierSet.weights()``):

    k [M] the wavenumbers, c [M] = theta / k^2; the correction's W3 [H, M], b3 [H] (rho.0)
    and w4 [H] (rho.2), all three None for H = 0. The fused sampler's input
    (``fastvp.kernels.fourier_leapfrog``).
    """

    k: torch.Tensor
    c: torch.Tensor
    W3: torch.Tensor | None
    b3: torch.Tensor | None
    w4: torch.Tensor | None


class FourierSet(nn.Module):
    """Translation- and permutation-invariant potential of particles in a periodic box.

    box_length: L; modes: M (the first M Fourier modes, k_m = 2 pi m / L); hidden: H, the
    width of the correction (0: none, V is the quadratic form alone; the correction is a
    function of the whole spectrum, and where a state's spectrum lies outside the training
    data's, e.g. a quiet start's s ~ 0 after random draws' s ~ 1, it extrapolates: the
    bundled two-stream-1d uses H = 0).

    Example::

        net = FourierSet(4 * math.pi, modes=4, hidden=16).double()
        q = 4 * math.pi * torch.rand(3, 128, dtype=torch.float64)
        V, dV = net(q), net.grad(q)          # [3], [3, 128]
    """

    def __init__(self, box_length: float, modes: int = 8, hidden: int = 64):
        super().__init__()
        self.box_length = arguments.positive("box_length", box_length)
        self.modes = arguments.integer("modes", modes, 1)
        self.hidden = arguments.integer("hidden", hidden, 0)
        self.quadratic = nn.Parameter(0.1 * torch.randn(self.modes))
        self.rho = nn.Sequential(nn.Linear(self.modes, self.hidden), nn.Softplus(),
                                 nn.Linear(self.hidden, 1)) if self.hidden else None

    @property
    def wavenumbers(self) -> torch.Tensor:
        """k_m = 2 pi m / L, m = 1 .. M: [M] in the parameters' dtype and device."""
        m = torch.arange(1, self.modes + 1, dtype=self.quadratic.dtype, device=self.quadratic.device)
        return (2 * math.pi / self.box_length) * m

    @property
    def coefficients(self) -> torch.Tensor:
        """c_m = theta_m / k_m^2: the quadratic form of V in s [M]."""
        return self.quadratic / self.wavenumbers**2

    @property
    def offset(self) -> torch.Tensor | None:
        """b4, V's additive constant [1] (None without a correction): the flow and the
        likelihood do not depend on it."""
        return None if self.rho is None else self.rho[2].bias

    def correction(self, s: torch.Tensor) -> torch.Tensor:
        """rho(log(1 + s)): [B, M] -> [B] (zeros without a correction)."""
        if self.rho is None:
            return s.new_zeros(s.shape[0])
        return self.rho(torch.log1p(s))[:, 0]

    def spectrum(self, q: torch.Tensor) -> torch.Tensor:
        """s_m = |sum_i exp(i k_m q_i)|^2 / N: [B, N] -> [B, M]."""
        C, Sn = _sums(q, self.wavenumbers)
        return (C * C + Sn * Sn) / q.shape[1]

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """V(q): [B, N] -> [B]."""
        s = self.spectrum(q)
        return s @ self.coefficients + self.correction(s)

    def grad(self, q: torch.Tensor) -> torch.Tensor:
        """dV/dq in closed form: [B, N] -> [B, N]; differentiable once (``periodic_grad``)."""
        return periodic_grad(q, self)

    def slopes(self, s: torch.Tensor) -> torch.Tensor:
        """g = dV/ds: [B, M] -> [B, M] (differentiable in s and the parameters)."""
        if self.rho is None:
            return self.coefficients.expand_as(s)
        W3, b3, w4 = self.rho[0].weight, self.rho[0].bias, self.rho[2].weight[0]
        h = (torch.sigmoid(torch.log1p(s) @ W3.T + b3) * w4) @ W3
        return self.coefficients + h / (1 + s)

    def parameters_of_slopes(self) -> tuple[torch.Tensor, ...]:
        """The parameters g depends on (V's offset b4 is not one)."""
        if self.rho is None:
            return (self.quadratic,)
        return (self.quadratic, self.rho[0].weight, self.rho[0].bias, self.rho[2].weight)

    def weights(self) -> FourierWeights:
        """k, c and the correction's W3, b3, w4 (None for H = 0), detached: ``FourierWeights``."""
        k, c = self.wavenumbers.detach(), self.coefficients.detach()
        if self.rho is None:
            return FourierWeights(k, c, None, None, None)
        return FourierWeights(k, c, self.rho[0].weight.detach(), self.rho[0].bias.detach(),
                              self.rho[2].weight[0].detach())


def _sums(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """C_m = sum_i cos(k_m q_i), Sn_m = sum_i sin(k_m q_i): [B, N] -> [B, M] each."""
    phase = q[:, :, None] * k
    return torch.cos(phase).sum(dim=1), torch.sin(phase).sum(dim=1)


def _force(q: torch.Tensor, net: FourierSet):
    """dV/dq [B, N] and the [B, M] vectors its backward needs (C, Sn, s, a)."""
    k = net.wavenumbers
    phase = q[:, :, None] * k
    cos, sin = torch.cos(phase), torch.sin(phase)
    C, Sn = cos.sum(dim=1), sin.sum(dim=1)
    n = q.shape[1]
    s = (C * C + Sn * Sn) / n
    a = (2 / n) * k * net.slopes(s)
    force = torch.bmm(cos, (a * Sn)[:, :, None])[..., 0] - torch.bmm(sin, (a * C)[:, :, None])[..., 0]
    return force, (C, Sn, s, a)


class _PeriodicGrad(torch.autograd.Function):
    """dV/dq of ``FourierSet`` with the hand-derived backward of the module docstring."""

    @staticmethod
    def forward(ctx, net, q, *params):
        with torch.no_grad():
            force, saved = _force(q, net)
        ctx.net = net
        ctx.save_for_backward(q, *saved)
        return force

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):
        q, C, Sn, s, a = ctx.saved_tensors
        net = ctx.net
        k = net.wavenumbers
        n = q.shape[1]
        phase = q[:, :, None] * k                                      # recomputed, [B, N, M]
        cos, sin = torch.cos(phase), torch.sin(phase)
        A = torch.bmm(v[:, None, :], cos)[:, 0]                        # sum_i v_i cos_im
        Bs = torch.bmm(v[:, None, :], sin)[:, 0]
        gb = (2 / n) * k * (Sn * A - C * Bs)                           # dL/dg
        params = net.parameters_of_slopes()
        with torch.enable_grad():
            s_ = s.detach().requires_grad_(True)
            g = net.slopes(s_)
            sb, *dparams = torch.autograd.grad(g, (s_, *params), gb, allow_unused=True)
        sb = torch.zeros_like(s) if sb is None else sb  # no correction: g does not depend on s
        Cb = -a * Bs + (2 / n) * sb * C
        Sb = a * A + (2 / n) * sb * Sn
        ak = a * k
        dq = (-v * (torch.bmm(sin, (ak * Sn)[:, :, None]) + torch.bmm(cos, (ak * C)[:, :, None]))[..., 0]
              + torch.bmm(cos, (k * Sb)[:, :, None])[..., 0] - torch.bmm(sin, (k * Cb)[:, :, None])[..., 0])
        dparams = [torch.zeros_like(p) if d is None else d for p, d in zip(params, dparams)]
        return (None, dq, *dparams)


def periodic_grad(q: torch.Tensor, net: FourierSet) -> torch.Tensor:
    """dV/dq [B, N] of q [B, N], differentiable once in q and in the net's parameters.

    The backward recomputes the [B, N, M] phases instead of storing them.
    """
    return _PeriodicGrad.apply(net, q, *net.parameters_of_slopes())


def periodic_grad_nograd(q: torch.Tensor, net: FourierSet) -> torch.Tensor:
    """dV/dq [B, N] without autograd (sampling)."""
    with torch.no_grad():
        return _force(q, net)[0]


# ---------------------------------------------------------------------------- references


def potential_autograd(net: FourierSet, q: torch.Tensor) -> torch.Tensor:
    """V(q) from complex exponentials and the modules themselves: [B, N] -> [B]."""
    S = torch.exp(1j * q.to(torch.complex128 if q.dtype == torch.float64 else torch.complex64)[:, :, None]
                  * net.wavenumbers).sum(dim=1)
    s = (S.abs() ** 2) / q.shape[1]
    rho = net.rho(torch.log1p(s))[:, 0] if net.rho is not None else 0.0
    return s @ (net.quadratic / net.wavenumbers**2) + rho


def grad_autograd(net: FourierSet, q: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """dV/dq by autograd of ``potential_autograd``: [B, N] -> [B, N]."""
    with torch.enable_grad():
        q = q if q.requires_grad else q.detach().requires_grad_(True)
        (dq,) = torch.autograd.grad(potential_autograd(net, q).sum(), q, create_graph=create_graph)
    return dq


def field_energy_theta(box_length: float, modes: int, cells: int | None = None) -> torch.Tensor:
    """theta_m of the PIC field energy per unit mass for q = L / N, q/m = 1: 1, times the CIC
    smoothing sinc^4(k_m dx / 2) of a grid of `cells` (None: no grid): [M] float64.

    The value a learned ``quadratic`` is compared with (never used to set it)."""
    k = 2 * math.pi / box_length * torch.arange(1, modes + 1, dtype=torch.float64)
    theta = torch.ones(modes, dtype=torch.float64)
    if cells is not None:
        theta = torch.sinc(k * (box_length / cells) / 2 / math.pi) ** 4
    return theta
