"""The leapfrog flow: reversibility, volume preservation, and the fast training gradient."""

import pytest
import torch

from fastvp.surrogate.flow import leapfrog, leapfrog_unmerged
from fastvp.surrogate.model import Surrogate

from .test_potential import random_net, random_q, rel


def state(B, N, seed=5):
    g = torch.Generator().manual_seed(seed)
    return random_q(B, N, seed), torch.randn(B, N, dtype=torch.float64, generator=g)


def test_flow_is_reversible():
    net = random_net(12)
    q, p = state(3, 21)
    q1, p1 = leapfrog(q, p, net.grad, 1.3, 0.04, 25)
    q0, p0 = leapfrog(q1, p1, net.grad, 1.3, -0.04, 25)
    assert (q1 - q).abs().max() > 1e-3  # it moved
    torch.testing.assert_close(q0, q, rtol=0, atol=1e-11)
    torch.testing.assert_close(p0, p, rtol=0, atol=1e-11)


def test_merged_kicks_equal_unmerged_steps():
    net = random_net(12)
    q, p = state(2, 17)
    a = leapfrog(q, p, net.grad, 0.9, 0.05, 7)
    b = leapfrog_unmerged(q, p, net.grad, 0.9, 0.05, 7)
    torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-12)


def test_flow_preserves_volume():
    """det d(q_T, p_T)/d(q_0, p_0) = 1: the flow is symplectic."""
    net = random_net(8)
    q, p = state(1, 4)

    def flow(x):
        q1, p1 = leapfrog(x[None, :4], x[None, 4:], net.grad, 1.1, 0.2, 5)
        return torch.cat([q1[0], p1[0]])

    J = torch.autograd.functional.jacobian(flow, torch.cat([q[0], p[0]]))
    assert (J - torch.eye(8, dtype=J.dtype)).abs().max() > 1e-3  # not the identity
    assert abs(torch.linalg.det(J).item() - 1) < 1e-10


def _param_grads(model, method, qT, pT, t=1.0):
    model.zero_grad(set_to_none=True)
    q0, p0 = model.pullback(qT, pT, t, method=method)
    loss = 0.5 * ((q0 - 64) ** 2).sum() + 0.5 * (p0 ** 2).sum() + 0.3 * (q0 * p0).sum()
    loss.backward()
    return [x.grad for x in model.parameters() if x.grad is not None]


@pytest.mark.parametrize("B,N,H,K", [(3, 19, 12, 5), (2, 256, 256, 3), (4, 7, 3, 25)])
def test_fast_training_gradients_equal_double_autograd(B, N, H, K):
    torch.manual_seed(7)
    model = Surrogate(steps=K, hidden=H).double()
    with torch.no_grad():
        model.a.fill_(1.07)
    qT, pT = state(B, N, seed=8)
    fast = _param_grads(model, "fast", qT, pT)
    ref = _param_grads(model, "autograd", qT, pT)
    assert len(fast) == len(ref) == 8  # a and every weight but V's constant offset
    for a, b in zip(fast, ref, strict=True):
        assert rel(a, b) < 1e-8


@pytest.mark.slow
def test_compiled_training_gradients_equal_double_autograd():
    torch.manual_seed(7)
    model = Surrogate(steps=4, hidden=16).double()
    qT, pT = state(3, 19, seed=8)
    for a, b in zip(_param_grads(model, "compiled", qT, pT),
                    _param_grads(model, "autograd", qT, pT), strict=True):
        assert rel(a, b) < 1e-8
