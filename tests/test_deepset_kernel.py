"""The fused DeepSet leapfrog (Triton, interpreted on CPU) and the blocked CPU path against
the closed-form torch gradient and the autograd reference (docs/physics.md section 3).

Every network here has hidden units pushed past torch's Softplus threshold (z > 20, where
its slope is exactly 1) in both the particle layer and the rho layer, so the tests see
that branch. Sizes stay small: the interpreter runs a program at a time in NumPy.
"""

from __future__ import annotations

import pytest
import torch

from fastvp.backend import triton_available, triton_interpreted
from fastvp.surrogate.flow import (
    integrate,
    leapfrog,
    leapfrog_blocked,
    leapfrog_unmerged,
)
from fastvp.surrogate.potential import (
    SOFTPLUS_THRESHOLD,
    DeepSet,
    closed_form_grad,
    grad_autograd,
    grad_nograd,
)

if triton_available():  # an optional dependency: the kernel tests skip without it
    from fastvp.kernels.deepset_leapfrog import deepset_leapfrog as _deepset_leapfrog
    from fastvp.kernels.deepset_leapfrog import fused_grad
    from fastvp.kernels.deepset_train import closed_form_grad_triton

#: These tests run the Triton kernels on CPU tensors, i.e. under the interpreter (conftest
#: sets it where there is no GPU); on a GPU machine tests/test_cuda_kernels.py covers them.
interpreted = pytest.mark.skipif(not (triton_available() and triton_interpreted()),
                                 reason="needs triton, and TRITON_INTERPRET=1 for CPU tensors "
                                 "(GPU: test_cuda_kernels)")


def deepset_leapfrog(q, p, weights, a2, dt, steps):
    return _deepset_leapfrog(q, p, weights, a2, dt, steps, threshold=SOFTPLUS_THRESHOLD)

TOL = {torch.float64: 1e-10, torch.float32: 1e-4}
DTYPES = [torch.float64, torch.float32]
DTYPE_IDS = ["float64", "float32"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def make_net(hidden: int, dtype: torch.dtype, seed: int = 0) -> DeepSet:
    """Seeded DeepSet whose first quarter of units sit past the Softplus threshold."""
    torch.manual_seed(seed)
    net = DeepSet(hidden)
    with torch.no_grad():
        hot = max(1, hidden // 4)
        net.phi[0].bias[:hot] = 21.0   # z = w1 y + 21 crosses 20 within the particle cloud
        net.rho[0].bias[:hot] = 25.0 + net.rho[0].bias[:hot]
    return net.to(dtype)


def make_state(batch: int, n: int, dtype: torch.dtype, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    q = 64.0 + 1.5 * torch.randn(batch, n, generator=gen, dtype=torch.float64)
    p = torch.randn(batch, n, generator=gen, dtype=torch.float64)
    return q.to(dtype), p.to(dtype)


def crosses_threshold(net: DeepSet, q: torch.Tensor) -> tuple[bool, bool]:
    """Whether some z_ik and some rho pre-activation lie on each side of the threshold."""
    w = net.weights()
    y = q - q.mean(dim=1, keepdim=True)
    z = y[..., None] * w.w1 + w.b1
    act = net.pooled(q) @ w.W3.T + w.b3
    both = lambda t: bool((t > SOFTPLUS_THRESHOLD).any() and (t < SOFTPLUS_THRESHOLD).any())  # noqa: E731
    return both(z), both(act)


@interpreted
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n,hidden", [(13, 8), (50, 16), (64, 32)])
def test_kernel_gradient_matches_closed_form_and_autograd(dtype, n, hidden):
    net = make_net(hidden, dtype)
    q, _ = make_state(2, n, dtype)
    assert crosses_threshold(net, q) == (True, True)
    with torch.no_grad():
        kernel = fused_grad(q, net.weights(), threshold=SOFTPLUS_THRESHOLD)
        closed = net.grad(q)
    auto = grad_autograd(net.double(), q.double())
    assert rel_err(kernel, closed) < TOL[dtype]
    assert rel_err(kernel, auto) < TOL[dtype]
    assert kernel.sum(dim=1).abs().max() < 1e3 * TOL[dtype] * kernel.abs().max()  # mean removed


@interpreted
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("dt", [0.04, -0.2])
def test_kernel_leapfrog_matches_torch_leapfrog(dtype, steps, dt):
    net = make_net(16, dtype)
    q, p = make_state(3, 37, dtype)
    a2 = 0.9924**2
    with torch.no_grad():
        qk, pk = deepset_leapfrog(q, p, net.weights(), a2, dt, steps)
        qt, pt = leapfrog(q, p, net.grad, a2, dt, steps)
    assert rel_err(qk, qt) < TOL[dtype]
    assert rel_err(pk, pt) < TOL[dtype]


@interpreted
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_kernel_leapfrog_matches_unmerged_autograd_reference(dtype):
    """The authors' scheme: two autograd gradients per step, float64."""
    net = make_net(32, dtype)
    q, p = make_state(2, 64, dtype)
    with torch.no_grad():
        qk, pk = deepset_leapfrog(q, p, net.weights(), 1.0, 0.2, 5)
    ref = net.double()
    qr, pr = leapfrog_unmerged(q.double(), p.double(), lambda x: grad_autograd(ref, x), 1.0, 0.2, 5)
    assert rel_err(qk, qr) < TOL[dtype]
    assert rel_err(pk, pr) < TOL[dtype]


@interpreted
def test_kernel_backward_flow_undoes_forward_flow():
    net = make_net(16, torch.float64)
    q, p = make_state(2, 29, torch.float64)
    w = net.weights()
    with torch.no_grad():
        q1, p1 = deepset_leapfrog(q, p, w, 1.0, 0.2, 5)
        q0, p0 = deepset_leapfrog(q1, p1, w, 1.0, -0.2, 5)
    assert rel_err(q0, q) < 1e-12
    assert rel_err(p0, p) < 1e-10


@interpreted
def test_kernel_at_paper_width_256_particles_256_hidden():
    net = make_net(256, torch.float64)
    q, p = make_state(1, 256, torch.float64)
    with torch.no_grad():
        qk, pk = deepset_leapfrog(q, p, net.weights(), 1.0, 0.04, 1)
        qt, pt = leapfrog(q, p, net.grad, 1.0, 0.04, 1)
    assert rel_err(qk, qt) < 1e-10
    assert rel_err(pk, pt) < 1e-10


@interpreted
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_kernel_runs_the_bundled_model(dtype):
    """The bundled field-energy model puts pre-activations far past the threshold (z up to
    ~250, where exp(z) overflows): the kernel's stable softplus must still agree."""
    import fastvp

    model = fastvp.Surrogate.load("field-energy-1d").to(dtype=dtype)
    with torch.no_grad():
        q, p = model.sample(0.6, fastvp.initial_conditions(2, seed=9).to(dtype=dtype))
        a2 = model.a[0] ** 2
        got = deepset_leapfrog(q, p, model.V_net.weights(), a2, 0.04, 2)
        want = leapfrog(q, p, model.V_net.grad, a2, 0.04, 2)
    for x, y in zip(got, want, strict=True):
        assert torch.isfinite(x).all()
        assert rel_err(x, y) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_blocked_cpu_gradient_matches_closed_form(dtype):
    net = make_net(32, dtype)
    q, _ = make_state(5, 40, dtype)
    with torch.no_grad():
        g = grad_nograd(q, net.weights())
    assert rel_err(g, grad_autograd(net.double(), q.double())) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("block", [1, 2, 3, None])
def test_blocked_cpu_leapfrog_matches_torch_leapfrog(dtype, block):
    """Blocks that do not divide the batch (the last block overlaps) give the same flow."""
    net = make_net(16, dtype)
    q, p = make_state(7, 33, dtype)
    with torch.no_grad():
        qb, pb = leapfrog_blocked(q, p, net.weights(), 0.8, -0.1, 4, block=block)
        qt, pt = leapfrog(q, p, net.grad, 0.8, -0.1, 4)
    assert rel_err(qb, qt) < TOL[dtype]
    assert rel_err(pb, pt) < TOL[dtype]


@interpreted
@pytest.mark.parametrize("kernels", ["torch", "triton"])
def test_integrate_paths_agree(kernels):
    net = make_net(16, torch.float64)
    q, p = make_state(3, 20, torch.float64)
    with torch.no_grad():
        qi, pi = integrate(q, p, net.weights(), 1.0, 0.1, 3, kernels=kernels)
        qt, pt = leapfrog(q, p, net.grad, 1.0, 0.1, 3)
    assert rel_err(qi, qt) < 1e-10
    assert rel_err(pi, pt) < 1e-10


def test_integrate_stays_differentiable_when_parameters_need_gradients():
    net = make_net(8, torch.float64)
    q, p = make_state(2, 10, torch.float64)
    a = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    qk, pk = integrate(q, p, net.weights(), a**2, 0.1, 2, kernels="torch")
    assert pk.requires_grad
    (pk.sum() + qk.sum()).backward()
    assert net.phi[0].weight.grad is not None and a.grad is not None


@interpreted
def test_kernel_launcher_rejects_bad_inputs():
    net = make_net(8, torch.float64)
    q, p = make_state(2, 10, torch.float64)
    w = net.weights()
    with pytest.raises(ValueError, match="steps"):
        deepset_leapfrog(q, p, w, 1.0, 0.1, 0)
    with pytest.raises(ValueError, match="w1"):
        deepset_leapfrog(q.float(), p.float(), w, 1.0, 0.1, 1)
    with pytest.raises(ValueError, match="p must match"):
        deepset_leapfrog(q, p[:, :5], w, 1.0, 0.1, 1)
    with pytest.raises(ValueError, match="W2"):
        deepset_leapfrog(q, p, w._replace(W2=w.W2[:4]), 1.0, 0.1, 1)


@interpreted
@pytest.mark.parametrize("per_program", [1, 2, 16])
def test_kernel_examples_per_program_do_not_change_the_flow(per_program):
    """Programs of 1, 2 (the last one short) or all examples: the same flow as torch's."""
    net = make_net(16, torch.float64)
    q, p = make_state(5, 21, torch.float64)
    with torch.no_grad():
        qk, pk = _deepset_leapfrog(q, p, net.weights(), 0.9, 0.1, 3,
                                   threshold=SOFTPLUS_THRESHOLD, per_program=per_program)
        qt, pt = leapfrog(q, p, net.grad, 0.9, 0.1, 3)
    assert rel_err(qk, qt) < 1e-10
    assert rel_err(pk, pt) < 1e-10


# ---------------------------------------------------------------------------- training step

GRAD_TOL = {torch.float64: 1e-9, torch.float32: 2e-4}


def _grad_and_vjp(fn, net, q, v):
    """dV/dq and the gradients of <dV/dq, v> in q and in the weights' parameters."""
    leaves = [net.phi[0].weight, net.phi[0].bias, net.phi[2].weight, net.phi[2].bias,
              net.rho[0].weight, net.rho[0].bias, net.rho[2].weight]
    x = q.clone().requires_grad_(True)
    force = fn(x, net.weights())
    return force.detach(), torch.autograd.grad((force * v).sum(), [x, *leaves])


@interpreted
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n,hidden", [(13, 8), (64, 32)])
def test_fused_training_gradient_matches_the_hand_derived_torch_backward(dtype, n, hidden):
    net = make_net(hidden, dtype)
    q, _ = make_state(3, n, dtype)
    v = torch.randn(3, n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    v = v.to(dtype)
    assert crosses_threshold(net, q) == (True, True)
    got = _grad_and_vjp(lambda x, w: closed_form_grad_triton(x, w, threshold=SOFTPLUS_THRESHOLD),
                        net, q, v)
    want = _grad_and_vjp(lambda x, w: closed_form_grad(x, w, kernels="torch"), net, q, v)
    assert rel_err(got[0], want[0]) < TOL[dtype]
    for a, b in zip(got[1], want[1], strict=True):   # dq, then w1, b1, W2, b2, W3, b3, w4
        assert rel_err(a, b) < GRAD_TOL[dtype]


@interpreted
def test_closed_form_grad_takes_the_triton_path_when_asked_and_torch_on_cpu_by_default():
    net = make_net(8, torch.float64)
    q, _ = make_state(2, 12, torch.float64)
    x = q.clone().requires_grad_(True)
    assert closed_form_grad(x, net.weights(), kernels="triton").grad_fn.name().startswith(
        "_TritonClosedFormGrad")
    assert "_ClosedFormGrad" in closed_form_grad(x, net.weights()).grad_fn.name()


@interpreted
def test_fused_training_pullback_matches_torch_through_all_steps():
    """A whole training pullback (K = 3 leapfrog steps, dt < 0) differentiated through the
    Triton gradient: the loss's parameter gradients equal the torch path's (float64)."""
    net = make_net(16, torch.float64)
    q, p = make_state(2, 20, torch.float64)

    def grads(kernels):
        net.zero_grad(set_to_none=True)
        q0, p0 = leapfrog(q, p, lambda x: closed_form_grad(x, net.weights(), kernels=kernels),
                          0.95, -0.2, 3)
        ((q0 - 64.0).square().sum() + p0.square().sum()).backward()
        return [t.grad.clone() for t in net.parameters() if t.grad is not None]

    for a, b in zip(grads("triton"), grads("torch"), strict=True):
        assert rel_err(a, b) < 1e-9
