"""Physics of the batched PIC simulator: references, conservation laws, symmetries."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import fastvp
from fastvp.pic.diagnostics import total_energy, total_momentum

from . import numpy_pic

FIXTURE = Path(__file__).parent / "data" / "official-generator-8"


def _load_fixture():
    q = {s: np.load(FIXTURE / f"Q{s:02d}.npy") for s in range(0, 30, 5)}
    p = {s: np.load(FIXTURE / f"P{s:02d}.npy") for s in range(0, 30, 5)}
    return q, p


def _reference(batch, cfg):
    q, p = numpy_pic.simulate_loop(
        batch.q.numpy(), batch.p.numpy(), L=cfg.box_length, nx=cfg.cells, q=cfg.charge,
        qm=cfg.charge_over_mass, dt=cfg.dt, steps=cfg.steps, save_every=cfg.save_every,
        scheme=cfg.scheme, sign=cfg.force_sign,
    )
    return q, p


# ------------------------------------------------------------------ independent references


@pytest.mark.parametrize(
    "cfg",
    [
        fastvp.PICConfig(),
        fastvp.PICConfig(box_length=50.0, cells=37, charge=0.3, charge_over_mass=2.0, dt=0.05,
                         steps=12, save_every=4),
        fastvp.PICConfig(interaction="gravitational", charge=0.5),
        fastvp.PICConfig(scheme="official"),
    ],
    ids=["paper", "odd-grid", "gravitational", "official"],
)
def test_matches_per_example_numpy_reference(cfg):
    batch = fastvp.initial_conditions(6, cfg, seed=3)
    traj = fastvp.simulate(batch, cfg)
    q_ref, p_ref = _reference(batch, cfg)
    assert traj.q.shape == (cfg.n_snapshots, 6, cfg.n_particles)
    np.testing.assert_allclose(traj.q.numpy(), q_ref, rtol=0, atol=1e-11)
    np.testing.assert_allclose(traj.p.numpy(), p_ref, rtol=0, atol=1e-11)


def test_particles_crossing_the_boundary_match_reference():
    cfg = fastvp.PICConfig(box_length=16.0, cells=16, n_particles=64, steps=40, save_every=10, dt=0.1)
    batch = fastvp.initial_conditions(4, cfg, seed=1, sigma_q=4.0, sigma_p=6.0)  # many wraps
    traj = fastvp.simulate(batch, cfg)
    q_ref, p_ref = _reference(batch, cfg)
    assert (traj.q[1:] >= 0).all() and (traj.q[1:] < cfg.box_length).all()
    np.testing.assert_allclose(traj.p.numpy(), p_ref, rtol=0, atol=1e-10)
    dq = (traj.q.numpy() - q_ref + cfg.box_length / 2) % cfg.box_length - cfg.box_length / 2
    np.testing.assert_allclose(dq, 0, atol=1e-10)


def test_official_scheme_reproduces_the_authors_generator():
    q, p = _load_fixture()
    traj = fastvp.simulate((q[0], p[0]), fastvp.PICConfig(scheme="official"))
    for i, step in enumerate(range(0, 30, 5)):
        np.testing.assert_allclose(traj.q[i].numpy(), q[step], rtol=0, atol=1e-12)
        np.testing.assert_allclose(traj.p[i].numpy(), p[step], rtol=0, atol=1e-12)


def test_leapfrog_differs_from_official_as_documented():
    """docs/physics.md: at T the momentum spread is ~7.0 with leapfrog and ~3.9 with the official scheme."""
    q, p = _load_fixture()
    lf = fastvp.simulate((q[0], p[0]))
    np.testing.assert_allclose(p[25].std(axis=1).mean(), 3.83, atol=0.1)
    assert 6.5 < lf.p[-1].std(dim=1).mean() < 7.5


# ------------------------------------------------------------------ conservation laws


@pytest.mark.parametrize("interaction", ["electrostatic", "gravitational"])
def test_total_momentum_is_conserved(interaction):
    cfg = fastvp.PICConfig(interaction=interaction)
    batch = fastvp.initial_conditions(8, cfg, seed=5)
    traj = fastvp.simulate(batch, cfg)
    mom = total_momentum(traj.p, cfg)                       # [S, B]
    scale = total_momentum(traj.p.abs(), cfg).max()
    assert ((mom - mom[0]).abs().max() / scale) < 1e-13


def test_energy_is_bounded_and_its_time_step_error_shrinks_as_dt_squared():
    batch = fastvp.initial_conditions(8, seed=2, sigma_q=1.0, sigma_p=1.0)

    def run(dt):
        cfg = fastvp.PICConfig(dt=dt, steps=round(1 / dt), save_every=round(0.2 / dt))
        tr = fastvp.simulate(batch, cfg)
        return torch.stack([total_energy(tr.q[i], tr.p[i], cfg) for i in range(len(tr))]), tr

    ref, traj_ref = run(0.04 / 16)
    # bounded: PIC with CIC is not exactly energy conserving, but close over the run
    assert ((ref - ref[0]).abs() / ref[0]).max() < 1e-3
    errors = [(run(dt)[0] - ref).abs().max().item() for dt in (0.04, 0.02, 0.01)]
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.3 < coarse / fine < 4.7, errors


def test_time_reversibility():
    cfg = fastvp.PICConfig(steps=50, save_every=50)
    batch = fastvp.initial_conditions(4, cfg, seed=7)
    fwd = fastvp.simulate(batch, cfg)
    back = fastvp.simulate((fwd.q[-1], -fwd.p[-1]), cfg)
    np.testing.assert_allclose(back.q[-1].numpy(), batch.q.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(-back.p[-1].numpy(), batch.p.numpy(), rtol=0, atol=1e-10)


# ------------------------------------------------------------------ symmetries


def test_translation_by_whole_cells_shifts_the_solution():
    cfg = fastvp.PICConfig()
    batch = fastvp.initial_conditions(4, cfg, seed=9)
    shift = 7 * cfg.dx
    a = fastvp.simulate(batch, cfg)
    b = fastvp.simulate((batch.q + shift, batch.p), cfg)
    np.testing.assert_allclose((b.q - shift).numpy(), a.q.numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(b.p.numpy(), a.p.numpy(), rtol=0, atol=1e-11)


def test_mirror_symmetry():
    """x -> L - x, v -> -v maps solutions to solutions."""
    cfg = fastvp.PICConfig()
    batch = fastvp.initial_conditions(4, cfg, seed=11)
    a = fastvp.simulate(batch, cfg)
    b = fastvp.simulate((cfg.box_length - batch.q, -batch.p), cfg)
    np.testing.assert_allclose((cfg.box_length - b.q).numpy(), a.q.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose((-b.p).numpy(), a.p.numpy(), rtol=0, atol=1e-10)


def test_permuting_particles_permutes_the_solution():
    batch = fastvp.initial_conditions(3, seed=4)
    perm = torch.randperm(batch.n_particles, generator=torch.Generator().manual_seed(0))
    a = fastvp.simulate(batch)
    b = fastvp.simulate((batch.q[:, perm], batch.p[:, perm]))
    np.testing.assert_allclose(b.q.numpy(), a.q[:, :, perm].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.p.numpy(), a.p[:, :, perm].numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("x0", [0.0, 3.25, 17.5, 127.9])
def test_a_single_particle_feels_no_self_force(x0):
    cfg = fastvp.PICConfig(n_particles=1, charge=1.0)
    q = torch.tensor([[x0]], dtype=torch.float64)
    p = torch.tensor([[0.37]], dtype=torch.float64)
    traj = fastvp.simulate((q, p), cfg)
    np.testing.assert_allclose(traj.p.numpy(), 0.37, rtol=0, atol=1e-14)
    expected = (x0 + 0.37 * cfg.dt * np.arange(0, cfg.steps + 1, cfg.save_every)) % cfg.box_length
    np.testing.assert_allclose(traj.q[:, 0, 0].numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("interaction,sign", [("electrostatic", 1), ("gravitational", -1)])
def test_like_charges_repel_and_masses_attract(interaction, sign):
    cfg = fastvp.PICConfig(n_particles=2, charge=1.0, interaction=interaction, steps=20, save_every=20)
    q = torch.tensor([[60.0, 68.0]], dtype=torch.float64)
    traj = fastvp.simulate((q, torch.zeros_like(q)), cfg)
    v_left, v_right = traj.p[-1, 0]
    assert sign * v_left < 0 < sign * v_right  # pushed apart (sign +1) or pulled together
    assert abs(v_left + v_right) < 1e-14       # equal and opposite


def test_cold_plasma_oscillates_at_the_plasma_frequency():
    """A cold, uniform plasma with a small velocity perturbation oscillates at omega_p,
    omega_p^2 = n q (q/m) / eps0 with density n = N / L."""
    n_part, length, charge = 2048, 64.0, 0.02
    omega_p = math.sqrt(n_part / length * charge * 1.0)
    period = 2 * math.pi / omega_p
    dt = period / 200
    cfg = fastvp.PICConfig(box_length=length, cells=64, n_particles=n_part, charge=charge,
                           dt=dt, steps=400, save_every=1)
    x = (torch.arange(n_part, dtype=torch.float64) + 0.5) * length / n_part
    k = 2 * math.pi / length
    v = 1e-3 * torch.sin(k * x)
    traj = fastvp.simulate((x[None], v[None]), cfg)
    amp = (traj.p[:, 0] * torch.sin(k * x)).sum(dim=1).numpy()  # projection on the mode
    t = traj.t.numpy()
    # a cos(omega t) fit by its zero crossings
    crossings = t[:-1][np.sign(amp[:-1]) != np.sign(amp[1:])]
    omega = math.pi / np.diff(crossings).mean()
    assert len(crossings) >= 3
    assert abs(omega / omega_p - 1) < 5e-3, (omega, omega_p)


# ------------------------------------------------------------------ API behaviour


def test_float32_is_kept_and_close_to_float64():
    b64 = fastvp.initial_conditions(4, seed=1)
    b32 = fastvp.initial_conditions(4, seed=1, dtype=torch.float32)
    t64, t32 = fastvp.simulate(b64), fastvp.simulate(b32)
    assert t32.q.dtype == torch.float32 and t32.t.dtype == torch.float32
    np.testing.assert_allclose(t32.p.numpy(), t64.p.numpy(), atol=2e-3)


def test_numpy_input_gives_cpu_tensors():
    b = fastvp.initial_conditions(2, seed=1)
    traj = fastvp.simulate((b.q.numpy(), b.p.numpy()))
    assert isinstance(traj.q, torch.Tensor) and traj.q.device.type == "cpu"
    assert traj.q.dtype == torch.float64
    torch.testing.assert_close(traj.q, fastvp.simulate(b).q, rtol=0, atol=0)


def test_snapshot_zero_is_the_initial_state_and_times_are_right():
    b = fastvp.initial_conditions(2, seed=1)
    traj = fastvp.simulate(b)
    assert torch.equal(traj.q[0], b.q) and torch.equal(traj.p[0], b.p)
    np.testing.assert_allclose(traj.t.numpy(), [0, 0.2, 0.4, 0.6, 0.8, 1.0], atol=1e-15)
    assert not b.q.data_ptr() == traj.q[0].data_ptr()


def test_result_does_not_depend_on_chunking_or_batch_company():
    b = fastvp.initial_conditions(10, seed=1)
    whole = fastvp.simulate(b, chunk_size=10)
    chunked = fastvp.simulate(b, chunk_size=3)
    alone = fastvp.simulate(b[4:5])
    assert torch.equal(whole.q, chunked.q) and torch.equal(whole.p, chunked.p)
    torch.testing.assert_close(alone.q[:, 0], whole.q[:, 4], rtol=0, atol=1e-13)


def test_initial_conditions_follow_the_paper():
    cfg = fastvp.PICConfig()
    b = fastvp.initial_conditions(2000, cfg, seed=0)
    assert b.q.shape == (2000, 256) and b.q.dtype == torch.float64
    assert 0.5 <= b.sigma_q.min() and b.sigma_q.max() <= 1.5
    assert 0.5 <= b.sigma_p.min() and b.sigma_p.max() <= 1.5
    z = (b.q - 64.0) / b.sigma_q[:, None]
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    w = b.p / b.sigma_p[:, None]
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    # example i is the same however the examples are drawn
    part = fastvp.initial_conditions(5, cfg, seed=0, start=1020)
    assert torch.equal(part.q, b.q[1020:1025]) and torch.equal(part.sigma_p, b.sigma_p[1020:1025])
    other = fastvp.initial_conditions(5, cfg, seed=1)
    assert not torch.equal(other.q, b.q[:5])
