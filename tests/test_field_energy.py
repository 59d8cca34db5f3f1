"""The field-energy Deep Set: its force is the PIC field, its energy the grid formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastvp
from fastvp.surrogate.field_energy import build_field_energy_model, field_energy_init, window_from_data
from fastvp.surrogate.pretrain import force_loss, pic_acceleration


def _states(config, sigma, n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centre = config.box_length / 2  # the paper's mu_q
    return centre + sigma * torch.randn(n, config.n_particles, generator=gen, dtype=torch.float64)


def _model(config, window=20.0, **kw):
    model = fastvp.Surrogate(config).double()
    field_energy_init(model, config, window, **kw)
    return model


@pytest.mark.parametrize("interaction", ["electrostatic", "gravitational"])
@pytest.mark.parametrize("sigma", [0.5, 1.5, 5.0])
def test_force_is_the_pic_field_averaged_over_the_grid_phase(interaction, sigma):
    config = fastvp.PICConfig(interaction=interaction)
    q = _states(config, sigma)
    model = _model(config)
    pic = pic_acceleration(q, config)
    averaged = torch.stack([pic_acceleration(q + k / 16, config) for k in range(16)]).mean(0)
    phase_variance = (((pic - averaged) ** 2).mean() / (averaged**2).mean()).item()
    with torch.no_grad():
        err_averaged = force_loss(model.V_net, q, averaged).item()
        err_pic = force_loss(model.V_net, q, pic).item()
    # relative squared errors: the PIC force itself moves by phase_variance with the grid
    assert err_averaged < 3e-4, err_averaged
    assert err_pic < 2 * phase_variance, (err_pic, phase_variance)


def test_the_force_scales_with_charge_over_mass():
    base, heavy = fastvp.PICConfig(), fastvp.PICConfig(charge_over_mass=0.25)
    q = _states(base, 1.0)
    with torch.no_grad():
        ratio = _model(heavy).grad(q) / _model(base).grad(q)
    assert torch.allclose(ratio[ratio.isfinite()], torch.tensor(0.25, dtype=torch.float64), rtol=1e-9)


def test_potential_gradient_is_the_grid_field_energy_gradient():
    """dV/dq of the network equals autograd of h s_f (q/m) / (2c) sum_k E_k^2 (rho's square
    is exact up to its quartic term, e^2 E^2 / 12 <= 2.1e-4 relative)."""
    config, window, sharp = fastvp.PICConfig(), 20.0, 6.0
    model = _model(config, window, sharpness=sharp)
    q = _states(config, 2.0, n=3).requires_grad_(True)
    G = model.V_net.hidden // 2
    h = 2 * window / G
    xk = -window + (torch.arange(G, dtype=torch.float64) + 0.5) * h
    c, N = config.charge, config.n_particles
    w = sharp / config.dx
    y = q - q.mean(dim=1, keepdim=True)
    u = w * (xk[:, None, None] - y)                                   # [G, B, N]
    S = (F.softplus(u + sharp / 2) - F.softplus(u - sharp / 2)) / sharp
    E = c * S.sum(-1) - N * c / 2 - N * c / config.box_length * xk[:, None]
    V = (h / (2 * c) * (E**2).sum(0)).sum()
    (expected,) = torch.autograd.grad(V, q)
    got = model.grad(q.detach())
    assert torch.allclose(got, expected, rtol=0, atol=3e-4 * expected.abs().max())


def test_flow_with_the_field_energy_follows_pic():
    config = fastvp.PICConfig()
    batch = fastvp.initial_conditions(8, config, seed=3)
    ref = fastvp.simulate(batch, config)
    model = _model(config)
    q, p = model.sample(config.final_time, batch)
    for x, x0, xT in ((q, ref.q[0], ref.q[-1]), (p, ref.p[0], ref.p[-1])):
        w1 = fastvp.wasserstein_1d(x, xT).mean().item()
        identity = fastvp.wasserstein_1d(x0, xT).mean().item()
        assert w1 < 0.03 * identity, (w1, identity)


def test_invariances_and_float32():
    config = fastvp.PICConfig()
    model = _model(config)
    q = _states(config, 1.0, n=2)
    perm = torch.randperm(config.n_particles)
    with torch.no_grad():
        g = model.grad(q)
        assert torch.allclose(model.grad(q + 3.7), g, atol=1e-9)
        assert torch.allclose(model.grad(q[:, perm]), g[:, perm], atol=1e-12)
        g32 = model.float().grad(q.float())
    assert torch.allclose(g32.double(), g, rtol=0, atol=1e-4 * g.abs().max())


def test_window_from_data():
    q = np.array([[1.0, 2.0, 6.0], [0.0, 0.0, 0.0]])
    assert window_from_data(q, margin=1.0) == pytest.approx(3.0)
    assert window_from_data(torch.as_tensor(q)) == pytest.approx(3.9)
    with pytest.raises(ValueError, match="margin"):
        window_from_data(q, margin=0.5)
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        window_from_data(np.zeros(3))


@pytest.mark.parametrize(("kw", "match"), [
    ({"window": 0.0}, "window"), ({"window": math.nan}, "window"), ({"window": 1000.0}, "too wide"),
    ({"sharpness": -1.0}, "sharpness"), ({"ramp": math.inf}, "ramp"),
])
def test_bad_arguments_are_named(kw, match):
    config = fastvp.PICConfig()
    args = {"window": 20.0, **kw}
    with pytest.raises(ValueError, match=match):
        field_energy_init(fastvp.Surrogate(config), config, **args)


def test_odd_width_is_refused():
    config = fastvp.PICConfig()
    with pytest.raises(ValueError, match="even width"):
        field_energy_init(fastvp.Surrogate(config, hidden=15), config, 2.0)


def test_the_potential_is_the_field_energy_without_offset():
    config = fastvp.PICConfig()
    model = _model(config)
    q = _states(config, 1.0, n=2)
    with torch.no_grad():
        V = model.potential(q)
        s = model.V_net.pooled(q)[:, : model.V_net.hidden // 2]          # E_k at the grid points
    h = 2 * 20.0 / (model.V_net.hidden // 2)
    expected = h / (2 * config.charge) * (s**2).sum(dim=1)
    assert torch.allclose(V, expected, rtol=1e-3), (V, expected)


def test_build_field_energy_model_runs_both_stages(tmp_path):
    """The bundled field-energy-1d's recipe (and ``fastvp train --init field-energy``'s)."""
    ds = fastvp.generate_dataset(tmp_path / "ds", n_examples=20, config=fastvp.PICConfig(n_particles=32),
                                 seed=0, progress=False)
    train = ds.split("train")
    stages = []
    model, info = build_field_energy_model(ds, steps=5, per_snapshot=4, iterations=10, verbose=False,
                                           after_stage=lambda stage, m: stages.append(stage))
    assert stages == ["field-energy", "lbfgs"]
    assert info["window"] == window_from_data(np.concatenate([train.q(s) for s in train.steps]))
    assert info["lbfgs"]["evaluations"] >= 1 and info["lbfgs"]["loss"] < 1e-2
    assert model.steps == 5 and model.a.item() == 1.0 and model.a.dtype == torch.float64
    with torch.no_grad():
        assert model.V_net.rho(torch.zeros(1, model.V_net.hidden, dtype=torch.float64)).abs().item() < 1e-6
