"""The Deep Set potential of PDE-NHF and its gradient in closed form.

    V(q) = rho( sum_i phi(q_i - mean(q)) ),   q: [B, N] -> V: [B]
    phi = Linear(1, H) -> Softplus -> Linear(H, H),  rho = Linear(H, H) -> Softplus -> Linear(H, 1)

V is invariant under permutations and translations of the particles. Its gradient needs
neither autograd nor an [B, N, H] x [H, H] product, because the second linear layer of
phi commutes with the sum over particles (SPEC.md section 3). With y_i = q_i - mean(q),
z_ik = w1_k y_i + b1_k:

    s   = W2 sum_i softplus(z_i) + N b2                      [B, H]
    g   = dV/ds = W3^T (sigmoid(W3 s + b3) * w4)             [B, H]
    (sigmoid = softplus', taken as 1 above torch's threshold of 20, as torch does)
    u   = W2^T g                                             [B, H]
    G_i = sum_k u_k w1_k sigmoid(z_ik)                       [B, N]
    dV/dq_i = G_i - mean_j G_j

Parameter names follow the authors' checkpoints (phi.0, phi.2, rho.0, rho.2), so that an
official state_dict loads as is. ``potential_autograd`` / ``grad_autograd`` state the same
function through nn.Sequential and autograd: the reference of the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Particles x hidden units per [B, N, H] block of the closed-form gradient: bounds memory.
BLOCK_ELEMENTS = 2**24
#: torch's Softplus returns z itself above this threshold (beta = 1): its slope there is 1.
SOFTPLUS_THRESHOLD = 20.0


class DeepSet(nn.Module):
    """Permutation- and translation-invariant potential V(q) = rho(sum_i phi(q_i - mean q))."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {hidden!r}")
        self.hidden = hidden
        self.phi = nn.Sequential(nn.Linear(1, hidden), nn.Softplus(), nn.Linear(hidden, hidden))
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, 1))

    # weights under the names of the equations
    def weights(self) -> tuple[torch.Tensor, ...]:
        """(w1 [H], b1 [H], W2 [H, H], b2 [H], W3 [H, H], b3 [H], w4 [H], b4 [1])."""
        return (
            self.phi[0].weight[:, 0], self.phi[0].bias, self.phi[2].weight, self.phi[2].bias,
            self.rho[0].weight, self.rho[0].bias, self.rho[2].weight[0], self.rho[2].bias,
        )

    def pooled(self, q: torch.Tensor) -> torch.Tensor:
        """s = W2 sum_i softplus(w1 y_i + b1) + N b2: [B, N] -> [B, H]."""
        w1, b1, W2, b2 = self.weights()[:4]
        y = q - q.mean(dim=1, keepdim=True)
        pooled = [F.softplus(y[sl, :, None] * w1 + b1).sum(dim=1) for sl in _blocks(q, self.hidden)]
        return torch.cat(pooled) @ W2.T + q.shape[1] * b2

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """V(q): [B, N] -> [B]."""
        W3, b3, w4, b4 = self.weights()[4:]
        return F.softplus(self.pooled(q) @ W3.T + b3) @ w4 + b4

    def grad(self, q: torch.Tensor) -> torch.Tensor:
        """dV/dq in closed form: [B, N] -> [B, N]; differentiable in the parameters."""
        w1, b1, W2, b2, W3, b3, w4, b4 = self.weights()
        y = q - q.mean(dim=1, keepdim=True)
        n = q.shape[1]
        out = []
        for sl in _blocks(q, self.hidden):
            z = y[sl, :, None] * w1 + b1                            # [b, N, H]
            s = F.softplus(z).sum(dim=1) @ W2.T + n * b2             # [b, H]
            g = (softplus_prime(s @ W3.T + b3) * w4) @ W3            # [b, H]
            u = (g @ W2) * w1                                        # [b, H]
            G = torch.bmm(softplus_prime(z), u[:, :, None])[..., 0]  # [b, N]
            out.append(G - G.mean(dim=1, keepdim=True))
        return out[0] if len(out) == 1 else torch.cat(out)


def softplus_prime(z: torch.Tensor) -> torch.Tensor:
    """Derivative of torch's Softplus, which is the identity above z = SOFTPLUS_THRESHOLD."""
    return torch.where(z > SOFTPLUS_THRESHOLD, 1.0, torch.sigmoid(z))


def _blocks(q: torch.Tensor, hidden: int) -> list[slice]:
    """Slices of the batch whose [b, N, H] intermediates hold about BLOCK_ELEMENTS numbers."""
    per_example = max(1, q.shape[1] * hidden)
    size = max(1, BLOCK_ELEMENTS // per_example)
    return [slice(i, i + size) for i in range(0, q.shape[0], size)]


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
