"""The Deep Set potential of PDE-NHF, its gradient in closed form, and that gradient's backward.

This module is the one torch home of the Deep Set math; ``fastvp.kernels.deepset_leapfrog``
(sampling) and ``fastvp.kernels.deepset_train`` (training) are its fused Triton twins.

    V(q) = rho( sum_i phi(q_i - mean(q)) ),   q: [B, N] -> V: [B]
    phi = Linear(1, H) -> Softplus -> Linear(H, H),  rho = Linear(H, H) -> Softplus -> Linear(H, 1)

V is invariant under permutations and translations of the particles. Its gradient needs
neither autograd nor a [B, N, H] x [H, H] product, because the second linear layer of phi
commutes with the sum over particles (docs/physics.md section 3). With y_i = q_i - mean(q),
z_ik = w1_k y_i + b1_k, sigma = softplus' (taken as 1 above torch's threshold of 20, as
torch's Softplus does) and the [B, H] vectors

    S = sum_i softplus(z_i),  s = W2 S + N b2,  r = W3 s + b3,  tau = sigma(r),
    g = W3^T (tau * w4) = dV/ds,  c = W2^T g,  u = c * w1,
    G_i = sum_k sigma(z_ik) u_k,   dV/dq_i = G_i - mean_j G_j.

Its vector-Jacobian product with v [B, N] (the backward of training), vb = v - mean v,
sigma' = sigma (1 - sigma):

    A = sigma^T vb,   cb = A * w1,   gb = W2 cb,   e = W3 gb,   rb = e * w4 * sigma'(r),
    sb = W3^T rb,     Sb = W2^T sb,
    zb_ik = vb_i u_k sigma'_ik + Sb_k sigma_ik                     (never formed)
    dq    = yb - mean yb,  yb_i = vb_i sum_k sigma'_ik u_k w1_k + sum_k sigma_ik Sb_k w1_k
    dw1 = A c + sum_i zb_i y_i,  db1 = sum_i zb_i,  dW2 = g cb^T + sb S^T,  db2 = N sb,
    dW3 = (tau w4) gb^T + rb s^T,  db3 = rb,  dw4 = e tau         (summed over the batch)

``grad_block`` / ``grad_block_backward`` compute both on one block of examples, with the
[b, N, H] work recomputed in the backward rather than stored (only q [B, N] and a few
[B, H] vectors are kept per leapfrog step). ``closed_form_grad`` wraps them in an autograd
Function (differentiable once); ``grad_nograd`` is the sampling path. Parameter names follow
the authors' checkpoints (phi.0, phi.2, rho.0, rho.2), so an official state_dict loads as
is. ``potential_autograd`` / ``grad_autograd`` state V and dV/dq through nn.Sequential and
autograd (autograd of autograd for training): the references of the tests.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import arguments
from ..backend import use_triton

#: torch's Softplus returns z itself above this threshold (beta = 1): its slope there is 1.
SOFTPLUS_THRESHOLD = 20.0
#: Elements of one [b, N, H] block on the CPU: a block stays in the caches.
CPU_BLOCK_ELEMENTS = 2**18
#: Elements of one [b, N, H] block on CUDA (the torch path there): bounds memory.
CUDA_BLOCK_ELEMENTS = 2**26


class DeepSetWeights(NamedTuple):
    """The weights dV/dq depends on, under the names of the equations (V's offset b4 is not one).

    w1 [H], b1 [H] (phi.0), W2 [H, H], b2 [H] (phi.2), W3 [H, H], b3 [H] (rho.0), w4 [H] (rho.2).
    """

    w1: torch.Tensor
    b1: torch.Tensor
    W2: torch.Tensor
    b2: torch.Tensor
    W3: torch.Tensor
    b3: torch.Tensor
    w4: torch.Tensor

    def detach(self) -> DeepSetWeights:
        return DeepSetWeights(*(w.detach() for w in self))


class DeepSet(nn.Module):
    """Permutation- and translation-invariant potential V(q) = rho(sum_i phi(q_i - mean q)).

    Example::

        net = DeepSet(256).double()
        q = 64 + torch.randn(4, 256, dtype=torch.float64)
        V, dV = net(q), net.grad(q)          # [4], [4, 256]
    """

    def __init__(self, hidden: int = 256):
        super().__init__()
        arguments.integer("hidden", hidden, 1)
        self.hidden = hidden
        self.phi = nn.Sequential(nn.Linear(1, hidden), nn.Softplus(), nn.Linear(hidden, hidden))
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, 1))

    def weights(self) -> DeepSetWeights:
        """The weights of dV/dq as a DeepSetWeights (views of the parameters)."""
        return DeepSetWeights(self.phi[0].weight[:, 0], self.phi[0].bias, self.phi[2].weight,
                              self.phi[2].bias, self.rho[0].weight, self.rho[0].bias,
                              self.rho[2].weight[0])

    @property
    def offset(self) -> torch.Tensor:
        """b4, V's additive constant [1]: the flow and the likelihood do not depend on it."""
        return self.rho[2].bias

    def pooled(self, q: torch.Tensor) -> torch.Tensor:
        """s = W2 sum_i softplus(w1 y_i + b1) + N b2: [B, N] -> [B, H]."""
        w = self.weights()
        y = q - q.mean(dim=1, keepdim=True)
        size = block_size(q, self.hidden)
        pooled = [F.softplus(y[i:i + size, :, None] * w.w1 + w.b1).sum(dim=1)
                  for i in range(0, q.shape[0], size)]
        return torch.cat(pooled) @ w.W2.T + q.shape[1] * w.b2

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """V(q): [B, N] -> [B]."""
        w = self.weights()
        return F.softplus(self.pooled(q) @ w.W3.T + w.b3) @ w.w4 + self.offset

    def grad(self, q: torch.Tensor) -> torch.Tensor:
        """dV/dq in closed form: [B, N] -> [B, N]; differentiable once (``closed_form_grad``)."""
        return closed_form_grad(q, self.weights())


# ---------------------------------------------------------------------------- pieces


def softplus_prime(z: torch.Tensor) -> torch.Tensor:
    """sigma(z) = softplus'(z) as torch's Softplus has it: 1 above SOFTPLUS_THRESHOLD."""
    return torch.where(z > SOFTPLUS_THRESHOLD, 1.0, torch.sigmoid(z))


def softplus_second(sig: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """softplus''(z) = sigma (1 - sigma) from sig = sigma(z): 0 above the threshold."""
    return torch.where(z > SOFTPLUS_THRESHOLD, 0.0, sig - sig * sig)


def block_size(q: torch.Tensor, hidden: int) -> int:
    """Examples per block of the [b, N, H] work: cache-sized on CPU, memory-bounded on CUDA."""
    limit = CUDA_BLOCK_ELEMENTS if q.is_cuda else CPU_BLOCK_ELEMENTS
    return max(1, limit // max(1, q.shape[1] * hidden))


def crosses_threshold(y: torch.Tensor, w: DeepSetWeights) -> bool:
    """Whether some z_ik = w1_k y_i + b1_k may exceed the Softplus threshold.

    z is affine in y_i, so its maximum over particles is at min y or max y: an [b, H]
    check instead of an [b, N, H] one. A margin of 1 covers rounding. When false, the
    threshold masks of ``grad_block`` are skipped.
    """
    lo, hi = y.aminmax(dim=1)
    zmax = torch.maximum(lo[:, None] * w.w1, hi[:, None] * w.w1) + w.b1
    return bool((zmax > SOFTPLUS_THRESHOLD - 1.0).any())


def _complement(y: torch.Tensor, w: DeepSetWeights, clip: bool):
    """m = 1 - sigma(z) = sigma(-z) [b, N, H], and -z where the threshold may be crossed.

    Working with m rather than sigma(z) saves a transcendental pass: softplus(z) = -log m,
    and sum_k sigma_ik x_k = sum_k x_k - sum_k m_ik x_k, whose first term is the same for
    every particle and cancels in the centred gradient. Above the threshold m = 0 (sigma = 1).
    """
    zneg = torch.addcmul(-w.b1, y[:, :, None], w.w1, value=-1.0)
    m = torch.sigmoid(zneg)
    if clip:
        m = torch.where(zneg < -SOFTPLUS_THRESHOLD, 0.0, m)
    return m, (zneg if clip else None)


def _sum_softplus(m: torch.Tensor, zneg: torch.Tensor | None) -> torch.Tensor:
    """S_k = sum_i softplus(z_ik) = -sum_i log m_ik: [b, N, H] -> [b, H].

    The logarithm is the costly part, so it is taken of products of `group` factors: log
    is needed N / group times instead of N. Below the threshold m > sigma(-20) = 2e-9, so
    a product of 8 (float64) or 4 (float32) factors stays a normal number. Above it
    softplus(z) = z, added apart, and m counts as 1 in the products.
    """
    extra = None
    if zneg is not None:
        over = zneg < -SOFTPLUS_THRESHOLD
        extra = torch.where(over, -zneg, 0.0).sum(dim=1)
        m = torch.where(over, 1.0, m)
    group = 8 if m.dtype == torch.float64 else 4
    b, n, h = m.shape
    main = n - n % group
    S = -torch.log(m[:, :main].reshape(b, main // group, group, h).prod(dim=2)).sum(dim=1)
    if main < n:
        S = S - torch.log(m[:, main:]).sum(dim=1)
    return S if extra is None else S + extra


def _rowdot(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_k m_ik x_k: [b, N, H] x [b, H] -> [b, N]."""
    return torch.bmm(m, x[:, :, None])[..., 0]


# ---------------------------------------------------------------------------- closed form


def grad_block(y: torch.Tensor, w: DeepSetWeights, clip: bool):
    """dV/dq of one block, y [b, N] centred: (F [b, N], the [b, H] vectors of the backward)."""
    n = y.shape[1]
    m, zneg = _complement(y, w, clip)                             # [b, N, H]
    S = _sum_softplus(m, zneg)                                    # [b, H]
    s = torch.addmm(w.b2 * n, S, w.W2.T)
    r = torch.addmm(w.b3, s, w.W3.T)
    tau = softplus_prime(r)
    g = (tau * w.w4) @ w.W3
    c = g @ w.W2
    u = c * w.w1
    mG = _rowdot(m, u)                                            # G = sum(u) - mG
    return mG.mean(dim=1, keepdim=True) - mG, (S, s, r, tau, g, c, u)


def grad_block_backward(v: torch.Tensor, y: torch.Tensor, saved, w: DeepSetWeights, clip: bool):
    """VJP of ``grad_block`` with v [b, N]: dq [b, N] and the block's DeepSetWeights gradients."""
    S, s, r, tau, g, c, u = saved
    n = y.shape[1]
    vb = v - v.mean(dim=1, keepdim=True)
    m, zneg = _complement(y, w, clip)                             # recomputed, [b, N, H]
    dsig = torch.addcmul(m, m, m, value=-1.0)                     # sigma' = m (1 - m)
    if zneg is not None:
        dsig = torch.where(zneg < -SOFTPLUS_THRESHOLD, 0.0, dsig)
    # contractions over particles, with sigma = 1 - m: sigma^T x = sum_i x_i - m^T x
    X = torch.stack((vb, y, torch.ones_like(vb)), dim=1)          # [b, 3, N]
    M = X.sum(dim=2)[:, :, None] - torch.bmm(X, m)                # sigma^T [vb, y, 1]: [b, 3, H]
    Md = torch.bmm(torch.stack((vb * y, vb), dim=1), dsig)        # sigma'^T [vb y, vb]: [b, 2, H]
    A = M[:, 0]
    cb = A * w.w1
    gb = cb @ w.W2.T
    e = gb @ w.W3.T
    rb = e * w.w4 * softplus_second(tau, r)
    sb = rb @ w.W3
    Sb = sb @ w.W2
    yb = vb * _rowdot(dsig, u * w.w1) - _rowdot(m, Sb * w.w1)     # + a constant, cancelled
    dq = yb - yb.mean(dim=1, keepdim=True)
    grads = DeepSetWeights(
        w1=(A * c + u * Md[:, 0] + Sb * M[:, 1]).sum(0),
        b1=(u * Md[:, 1] + Sb * M[:, 2]).sum(0),
        W2=g.T @ cb + sb.T @ S,
        b2=n * sb.sum(0),
        W3=(tau * w.w4).T @ gb + rb.T @ s,
        b3=rb.sum(0),
        w4=(e * tau).sum(0),
    )
    return dq, grads


_COMPILED: dict[str, object] = {}


def _block_functions(compile: bool):
    """(grad_block, grad_block_backward): eager, or fused by torch.compile (built once)."""
    if not compile:
        return grad_block, grad_block_backward
    if not _COMPILED:
        _COMPILED["forward"] = torch.compile(grad_block, dynamic=False)
        _COMPILED["backward"] = torch.compile(grad_block_backward, dynamic=False)
    return _COMPILED["forward"], _COMPILED["backward"]


def _blocks(q: torch.Tensor, hidden: int) -> list[slice]:
    size = block_size(q, hidden)
    return [slice(i, i + size) for i in range(0, q.shape[0], size)]


class _ClosedFormGrad(torch.autograd.Function):
    """dV/dq with the hand-derived backward of the module docstring."""

    @staticmethod
    def forward(ctx, compile, q, *weights):
        w = DeepSetWeights(*weights)
        y = q - q.mean(dim=1, keepdim=True)
        clip = crosses_threshold(y, w)
        block = _block_functions(compile)[0]
        outs, saved = zip(*(block(y[sl], w, clip) for sl in _blocks(q, w.w1.shape[0])),
                          strict=True)
        keep = [torch.cat(t) for t in zip(*saved, strict=True)]
        ctx.save_for_backward(y, *w, *keep)
        ctx.clip, ctx.compile = clip, compile
        return torch.cat(outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):
        y, *rest = ctx.saved_tensors
        w, keep = DeepSetWeights(*rest[:7]), rest[7:]
        block = _block_functions(ctx.compile)[1]
        dqs, total = [], None
        for sl in _blocks(y, w.w1.shape[0]):
            dq, grads = block(v[sl].contiguous(), y[sl], [k[sl] for k in keep], w, ctx.clip)
            dqs.append(dq)
            total = grads if total is None else [a + b for a, b in zip(total, grads, strict=True)]
        return (None, torch.cat(dqs), *total)


def closed_form_grad(q: torch.Tensor, weights: DeepSetWeights, compile: bool = False,
                     kernels: str | None = None) -> torch.Tensor:
    """dV/dq [B, N] of q [B, N], differentiable once in q and in the weights.

    Its backward (``grad_block_backward``) costs about two forward evaluations and stores
    no [B, N, H] intermediates. compile=True fuses the [b, N, H] work of each block with
    torch.compile (the first call compiles). Where ``fastvp.backend.use_triton(q, kernels)``
    (CUDA by default) and not compile, the Triton twin of both directions runs instead
    (``fastvp.kernels.deepset_train.closed_form_grad_triton``).
    """
    if not compile and use_triton(q, kernels):
        from fastvp.kernels.deepset_train import closed_form_grad_triton

        return closed_form_grad_triton(q, weights, threshold=SOFTPLUS_THRESHOLD)
    return _ClosedFormGrad.apply(compile, q, *weights)


def grad_nograd(q: torch.Tensor, weights: DeepSetWeights) -> torch.Tensor:
    """dV/dq [B, N] without autograd (sampling), block by block.

    ``grad_block`` where no pre-activation reaches the threshold; else ``_grad_direct``,
    whose fused Softplus handles the threshold in its one pass (the masks of the
    complement form cost more than the transcendental pass they save).
    """
    w = weights.detach()
    with torch.no_grad():
        y = q - q.mean(dim=1, keepdim=True)
        if crosses_threshold(y, w):
            return torch.cat([_grad_direct(y[sl], w) for sl in _blocks(q, w.w1.shape[0])])
        return torch.cat([grad_block(y[sl], w, False)[0] for sl in _blocks(q, w.w1.shape[0])])


def _grad_direct(y: torch.Tensor, w: DeepSetWeights) -> torch.Tensor:
    """dV/dq of one block from softplus(z) and sigma(z) themselves, y [b, N] centred."""
    z = torch.addcmul(w.b1, y[:, :, None], w.w1)                  # [b, N, H]
    S = F.softplus(z, threshold=SOFTPLUS_THRESHOLD).sum(dim=1)
    s = torch.addmm(w.b2 * y.shape[1], S, w.W2.T)
    u = (((softplus_prime(torch.addmm(w.b3, s, w.W3.T)) * w.w4) @ w.W3) @ w.W2) * w.w1
    if y.dtype == torch.float64:  # in float32 sigmoid(z > 20) already rounds to 1
        sig = softplus_prime(z)
    else:
        sig = z.sigmoid_()
    G = _rowdot(sig, u)
    return G - G.mean(dim=1, keepdim=True)


# ---------------------------------------------------------------------------- references


def potential_autograd(net: DeepSet, q: torch.Tensor) -> torch.Tensor:
    """V(q) through the modules themselves, phi applied per particle: [B, N] -> [B]."""
    y = q - q.mean(dim=1, keepdim=True)
    return net.rho(net.phi(y[..., None]).sum(dim=1))[:, 0]


def grad_autograd(net: DeepSet, q: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """dV/dq by autograd of ``potential_autograd`` (the authors' approach): [B, N] -> [B, N]."""
    with torch.enable_grad():
        q = q if q.requires_grad else q.detach().requires_grad_(True)
        V = potential_autograd(net, q)
        (dq,) = torch.autograd.grad(V.sum(), q, create_graph=create_graph)
    return dq
