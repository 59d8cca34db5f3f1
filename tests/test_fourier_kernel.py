"""The fused leapfrog of the periodic (Fourier) potential (Triton, interpreted on CPU) against
its torch twin: ``leapfrog`` with ``periodic_grad_nograd`` and wrap=L (docs/physics.md
section 3).

The states cross the box boundary within the steps (the wrap matters), M = 5 modes pad to
8, N = 300 particles fill a block of 256 and part of a second, and the correction is scaled
up so that it moves the force. Sizes stay small: the interpreter runs a program at a time in NumPy.
"""

from __future__ import annotations

import math

import pytest
import torch

import fastvp
from fastvp.backend import triton_available, triton_interpreted
from fastvp.surrogate.flow import leapfrog
from fastvp.surrogate.periodic import FourierSet, grad_autograd, periodic_grad_nograd

if triton_available():  # an optional dependency: the kernel tests skip without it
    from fastvp.kernels.fourier_leapfrog import fourier_grad, fourier_leapfrog

#: CPU tensors run the kernel under the interpreter (conftest sets it where there is no GPU);
#: on a GPU machine tests/test_cuda_kernels.py covers it.
pytestmark = pytest.mark.skipif(not (triton_available() and triton_interpreted()),
                                reason="needs triton, and TRITON_INTERPRET=1 for CPU tensors "
                                "(GPU: test_cuda_kernels)")

L = 4 * math.pi
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}
DTYPES = [torch.float64, torch.float32]
DTYPE_IDS = ["float64", "float32"]
HIDDEN = [0, 8]
HIDDEN_IDS = ["quadratic_only", "correction"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def make_net(hidden: int, dtype: torch.dtype, modes: int = 5, seed: int = 0) -> FourierSet:
    """A seeded FourierSet with forces of order one: theta ~ 3, the correction scaled up."""
    torch.manual_seed(seed)
    net = FourierSet(L, modes=modes, hidden=hidden)
    with torch.no_grad():
        net.quadratic.copy_(3.0 + torch.rand(modes))
        if net.rho is not None:
            net.rho[0].weight.mul_(4.0)
            net.rho[2].weight.mul_(20.0)
    return net.to(dtype)


def make_state(batch: int, n: int, dtype: torch.dtype, seed: int = 1):
    """Positions in [0, L), a few of them next to either wall, and velocities that carry
    particles across the walls within the steps."""
    g = torch.Generator().manual_seed(seed)
    q = L * torch.rand(batch, n, generator=g, dtype=torch.float64)
    q[:, :4] = torch.tensor([1e-3, L - 1e-3, 0.0, L - 1e-9])
    p = 3.0 * torch.randn(batch, n, generator=g, dtype=torch.float64)
    p[:, :4] = torch.tensor([-2.0, 2.0, -1.0, 1.0])
    return q.to(dtype), p.to(dtype)


def torch_leapfrog(q, p, net, a2, dt, steps, wrap=L):
    with torch.no_grad():
        return leapfrog(q, p, lambda x: periodic_grad_nograd(x, net), a2, dt, steps, wrap=wrap)


@pytest.mark.parametrize("hidden", HIDDEN, ids=HIDDEN_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_kernel_matches_torch_leapfrog(dtype, hidden):
    net = make_net(hidden, dtype)
    q, p = make_state(3, 300, dtype)
    q0, p0 = q.clone(), p.clone()
    qk, pk = fourier_leapfrog(q, p, net, 0.9, 0.1, 5, L)
    qt, pt = torch_leapfrog(q, p, net, 0.9, 0.1, 5)
    assert rel_err(qk, qt) < TOL[dtype]
    assert rel_err(pk, pt) < TOL[dtype]
    assert qk.min() >= 0 and qk.max() <= L                         # wrapped
    unwrapped, _ = torch_leapfrog(q, p, net, 0.9, 0.1, 5, wrap=None)
    assert ((unwrapped < 0) | (unwrapped >= L)).sum() > 50         # ... and the wrap mattered
    assert torch.equal(q, q0) and torch.equal(p, p0)               # inputs left alone


@pytest.mark.parametrize("hidden", HIDDEN, ids=HIDDEN_IDS)
def test_fused_gradient_matches_closed_form_and_autograd(hidden):
    net = make_net(hidden, torch.float64)
    q, _ = make_state(2, 300, torch.float64)
    with torch.no_grad():
        got, want = fourier_grad(q, net), periodic_grad_nograd(q, net)
    assert rel_err(got, want) < 1e-12
    assert rel_err(got, grad_autograd(net, q)) < 1e-12
    if hidden:  # the correction moves the force by much more than the tolerances
        k, c = net.weights()[:2]
        assert rel_err(fourier_grad(q, (k, c, None, None, None)), want) > 1e-2


@pytest.mark.parametrize("modes,n,hidden", [(1, 33, 8), (8, 16, 0), (16, 300, 200)])
def test_kernel_matches_torch_for_other_sizes(modes, n, hidden):
    """M = 1; N = 16, the smallest block; three blocks of 128 particles (M = 16) and the
    correction's rows in two blocks of 128 (the last one part masked)."""
    net = make_net(hidden, torch.float64, modes=modes)
    q, p = make_state(2, n, torch.float64)
    qk, pk = fourier_leapfrog(q, p, net.weights(), 1.1, -0.07, 3, L)
    qt, pt = torch_leapfrog(q, p, net, 1.1, -0.07, 3)
    assert rel_err(qk, qt) < 1e-10
    assert rel_err(pk, pt) < 1e-10


def test_kernel_runs_backwards_to_where_it_started():
    net = make_net(8, torch.float64)
    q, p = make_state(2, 64, torch.float64)
    q1, p1 = fourier_leapfrog(q, p, net, 0.9, 0.1, 4, L)
    q0, p0 = fourier_leapfrog(q1, p1, net, 0.9, -0.1, 4, L)
    d = torch.remainder(q0 - q + L / 2, L) - L / 2                 # distance on the circle
    assert d.abs().max() < 1e-12
    assert rel_err(p0, p) < 1e-12


@pytest.mark.parametrize("hidden", HIDDEN, ids=HIDDEN_IDS)
def test_sample_with_triton_equals_the_torch_path(hidden):
    config = fastvp.PICConfig(box_length=L, n_particles=96, cells=16)
    torch.manual_seed(0)
    model = fastvp.Surrogate(config, steps=4, hidden=hidden, potential="fourier", modes=5).double()
    with torch.no_grad():
        model.V_net.quadratic.fill_(3.0)
        model.a.fill_(1.2)
    batch = make_state(2, 96, torch.float64)
    q, p = model.sample(0.8, batch, kernels="triton")
    qt, pt = model.sample(0.8, batch, kernels="torch")
    assert rel_err(q, qt) < 1e-10 and rel_err(p, pt) < 1e-10
    traj = model.sample([0.3, 0.8], batch, kernels="triton")
    assert rel_err(traj.q[1], qt) < 1e-10 and rel_err(traj.p[1], pt) < 1e-10


def test_pullback_without_gradients_takes_the_kernel_and_matches_torch(monkeypatch):
    config = fastvp.PICConfig(box_length=L, n_particles=96, cells=16)
    torch.manual_seed(0)
    model = fastvp.Surrogate(config, steps=4, hidden=8, potential="fourier", modes=5).double()
    q, p = make_state(2, 96, torch.float64)
    with torch.no_grad():
        monkeypatch.setenv("FASTVP_KERNELS", "torch")
        qt, pt = model.pullback(q, p, 0.8)
        monkeypatch.setenv("FASTVP_KERNELS", "triton")
        qk, pk = model.pullback(q, p, 0.8)
    assert rel_err(qk, qt) < 1e-10 and rel_err(pk, pt) < 1e-10
    assert not torch.equal(qk, q)  # it moved, backwards: sampling forward returns
    back = model.sample(0.8, (qk, pk), kernels="triton")
    around = torch.remainder(back[0] - q + L / 2, L) - L / 2  # 0 and L are one point
    assert around.abs().max() < 1e-9 * L and rel_err(back[1], p) < 1e-9


def test_empty_batch_returns_empty_tensors():
    net = make_net(0, torch.float64)
    q, p = make_state(2, 8, torch.float64)
    qk, pk = fourier_leapfrog(q[:0], p[:0], net, 1.0, 0.1, 2, L)
    assert qk.shape == (0, 8) and pk.shape == (0, 8)


def test_launcher_rejects_bad_arguments():
    net = make_net(8, torch.float64)
    q, p = make_state(2, 10, torch.float64)
    w = net.weights()
    bad = [
        (dict(steps=0), "steps"), (dict(steps=True), "steps"), (dict(steps=2.0), "steps"),
        (dict(dt=float("nan")), "dt"), (dict(a2=float("inf")), "a2"),
        (dict(box_length=0.0), "box_length"), (dict(box_length=-L), "box_length"),
        (dict(box_length=float("nan")), "box_length"), (dict(box_length="L"), "box_length"),
        (dict(p=p[:, :5]), "p must match"), (dict(q=q[0]), "q must be"),
        (dict(q=q.long(), p=p.long()), "q must be"),
        (dict(weights=make_net(8, torch.float32)), "k must be"),
        (dict(weights=w._replace(W3=w.W3[:, :3])), "W3"),
        (dict(weights=w._replace(b3=w.b3[:4])), "b3"),
        (dict(weights=w._replace(w4=None)), "all None"),
        (dict(weights=w._replace(W3=w.W3[:0], b3=w.b3[:0], w4=w.w4[:0])), "at least one row"),
        (dict(weights=w._replace(k=w.k[:4])), "c must"),
        (dict(weights=w[:3]), "weights must"), (dict(weights="net"), "weights must"),
    ]
    args = dict(q=q, p=p, weights=w, a2=1.0, dt=0.1, steps=2, box_length=L)
    for change, match in bad:
        with pytest.raises(ValueError, match=match):
            fourier_leapfrog(**{**args, **change})
