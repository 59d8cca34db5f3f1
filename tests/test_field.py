"""One PIC acceleration: the simulator's movers, force matching and the diagnostics agree
with ``pic.field`` (deposit, neutralise, solve, gather, scale)."""

from __future__ import annotations

import pytest
import torch

import fastvp
from fastvp.backend import triton_available
from fastvp.pic.diagnostics import field_energy
from fastvp.pic.field import acceleration, field
from fastvp.surrogate.pretrain import pic_acceleration

CONFIGS = [fastvp.PICConfig(), fastvp.PICConfig(interaction="gravitational", charge=0.3,
                                                charge_over_mass=2.0, cells=50, box_length=40.0)]


def _batch(cfg: fastvp.PICConfig):
    return fastvp.initial_conditions(3, cfg, seed=4, sigma_q=3.0, sigma_p=1.0)


@pytest.mark.parametrize("kernels", ["torch", pytest.param("triton", marks=pytest.mark.skipif(
    not triton_available(), reason="needs triton, an optional dependency"))])
@pytest.mark.parametrize("cfg", CONFIGS, ids=["paper", "gravitational"])
def test_one_simulator_step_is_kick_drift_kick_with_the_field_acceleration(cfg, kernels):
    """x1 = x0 + dt (v0 + dt/2 a(x0)),  v1 = v0 + dt/2 a(x0) + dt/2 a(x1)."""
    cfg = cfg.replace(steps=1, save_every=1)
    b = _batch(cfg)
    traj = fastvp.simulate(b, cfg, kernels=kernels)
    dt = cfg.dt
    v_half = b.p + 0.5 * dt * acceleration(b.q, cfg)
    x1 = torch.remainder(b.q + dt * v_half, cfg.box_length)
    v1 = v_half + 0.5 * dt * acceleration(x1, cfg)
    torch.testing.assert_close(traj.q[1], x1, rtol=0, atol=1e-12)
    torch.testing.assert_close(traj.p[1], v1, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["paper", "gravitational"])
def test_force_matching_and_energy_diagnostic_use_the_same_field(cfg):
    b = _batch(cfg)
    torch.testing.assert_close(pic_acceleration(b.q, cfg), acceleration(b.q, cfg), rtol=0, atol=0)
    E = field(b.q, cfg)
    expected = cfg.force_sign * 0.5 * cfg.dx * (E * E).sum(dim=1)
    torch.testing.assert_close(field_energy(b.q, cfg), expected, rtol=1e-14, atol=0)


def test_acceleration_pushes_like_charges_apart_and_pulls_masses_together():
    """Two particles: electrostatic acceleration points away from the partner, gravity toward."""
    q = torch.tensor([[60.0, 68.0]], dtype=torch.float64)
    rep = acceleration(q, fastvp.PICConfig())
    att = acceleration(q, fastvp.PICConfig(interaction="gravitational"))
    assert rep[0, 0] < 0 < rep[0, 1]
    assert att[0, 1] < 0 < att[0, 0]
    torch.testing.assert_close(rep.sum(), torch.zeros((), dtype=torch.float64), atol=1e-14, rtol=0)
