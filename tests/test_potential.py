"""The Deep Set potential: closed-form gradient and its hand-derived backward against autograd."""

import pytest
import torch

from fastvp.surrogate.potential import (
    DeepSet,
    closed_form_grad,
    grad_autograd,
    grad_nograd,
    potential_autograd,
)


def random_net(hidden: int, seed: int = 0, scale: float = 1.0) -> DeepSet:
    torch.manual_seed(seed)
    net = DeepSet(hidden).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale * (1 + torch.rand_like(p)))
    return net


def random_q(B: int, N: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 64 + 2 * torch.randn(B, N, generator=g, dtype=torch.float64)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


# scale 3 pushes some pre-activations past Softplus's threshold of 20 (where it is linear)
CASES = [(3, 37, 24, 1.0), (2, 256, 256, 1.0), (4, 19, 7, 3.0), (1, 1, 5, 1.0)]


@pytest.mark.parametrize("B,N,H,scale", CASES)
def test_closed_form_grad_equals_autograd(B, N, H, scale):
    net, q = random_net(H, scale=scale), random_q(B, N)
    w1, b1 = net.weights().w1, net.weights().b1
    crossed = bool(((q - q.mean(1, keepdim=True))[..., None] * w1 + b1 > 20).any())
    assert crossed == (scale > 1)  # the threshold branch is exercised where meant
    assert rel(net.grad(q), grad_autograd(net, q)) < 1e-10
    assert rel(closed_form_grad(q, net.weights()), grad_autograd(net, q)) < 1e-10
    assert rel(grad_nograd(q, net.weights()), grad_autograd(net, q)) < 1e-10


@pytest.mark.parametrize("B,N,H,scale", CASES)
def test_hand_backward_equals_double_autograd(B, N, H, scale):
    """VJP of dV/dq w.r.t. q (a Hessian-vector product) and every parameter."""
    net, q = random_net(H, seed=2, scale=scale), random_q(B, N, seed=3)
    v = torch.randn(B, N, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    params = [p for name, p in net.named_parameters() if name != "rho.2.bias"]  # V's offset

    def vjp(fn):
        x = q.clone().requires_grad_(True)
        return torch.autograd.grad((fn(x) * v).sum(), [x, *params])

    fast = vjp(lambda x: closed_form_grad(x, net.weights()))
    ref = vjp(lambda x: grad_autograd(net, x, create_graph=True))
    for a, b in zip(fast, ref, strict=True):
        assert rel(a, b) < 1e-10


def test_potential_is_permutation_invariant():
    net, q = random_net(16), random_q(3, 40)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net(q[:, perm]), net(q), rtol=1e-13, atol=0)
    torch.testing.assert_close(net.grad(q[:, perm]), net.grad(q)[:, perm], rtol=1e-12, atol=1e-15)


def test_potential_is_translation_invariant():
    net, q = random_net(16), random_q(3, 40)
    torch.testing.assert_close(net(q + 3.25), net(q), rtol=1e-12, atol=0)
    torch.testing.assert_close(potential_autograd(net, q), net(q), rtol=1e-12, atol=0)
    # hence the total force vanishes: momentum sum_i p_i is conserved by the flow
    assert net.grad(q).sum(dim=1).abs().max() < 1e-12 * net.grad(q).abs().max()
