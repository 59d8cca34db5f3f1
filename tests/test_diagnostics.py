"""simulate(..., diagnostics=True): the per-step energies, momentum and field modes against
independent computations (fastvp.pic.diagnostics on snapshots, an FFT of the field), and fit_rate
on signals of known rate."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fastvp
from fastvp.pic import diagnostics as physics
from fastvp.pic.field import field
from fastvp.problems import fit_rate
from fastvp.problems.fit import fit_window


def _paper(examples=6, **changes):
    """A small paper-preset batch on the CPU (where runs are deterministic to the bit)."""
    cfg = fastvp.PICConfig(**changes)
    return fastvp.initial_conditions(examples, cfg, seed=2, device="cpu"), cfg


def test_diagnostics_leave_the_trajectory_unchanged(one_thread):
    batch, cfg = _paper()
    a = fastvp.simulate(batch, cfg)
    b = fastvp.simulate(batch, cfg, diagnostics=True)
    assert a.diagnostics is None
    assert torch.equal(a.q, b.q) and torch.equal(a.p, b.p) and torch.equal(a.t, b.t)


def test_shapes_names_and_times(one_thread):
    batch, cfg = _paper(examples=3, steps=10, save_every=5)
    d = fastvp.simulate(batch, cfg, diagnostics=True).diagnostics
    for name in ("field_energy", "kinetic_energy", "total_energy", "momentum"):
        assert d[name].shape == (11, 3) and d[name].dtype == torch.float64
    assert d.modes.shape == d.phases.shape and d.modes.shape[:2] == (11, 3)
    np.testing.assert_allclose(d.t.numpy(), np.arange(11) * cfg.dt)
    assert set(d.keys()) >= {"t", "field_energy", "kinetic_energy", "total_energy", "momentum", "modes"}
    assert torch.equal(d.modes[:, :, 0], torch.zeros(11, 3))  # mode 0: the neutralised mean


@pytest.mark.parametrize("scheme", ["leapfrog", "official"])
@pytest.mark.parametrize("interaction", ["electrostatic", "gravitational"])
def test_energies_and_momentum_match_metrics_at_the_snapshots(scheme, interaction, one_thread):
    batch, cfg = _paper(scheme=scheme, interaction=interaction)
    traj = fastvp.simulate(batch, cfg, diagnostics=True)
    d = traj.diagnostics
    for s, (q, p) in zip(cfg.snapshot_steps, zip(traj.q, traj.p)):
        torch.testing.assert_close(d.kinetic_energy[s], physics.kinetic_energy(p, cfg), rtol=1e-12, atol=0)
        torch.testing.assert_close(d.field_energy[s], physics.field_energy(q, cfg), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(d.total_energy[s], physics.total_energy(q, p, cfg), rtol=1e-12, atol=0)
        torch.testing.assert_close(d.momentum[s], physics.total_momentum(p, cfg), rtol=0, atol=1e-12)
    if interaction == "gravitational":
        assert (d.field_energy <= 0).all()


def test_kinetic_energy_between_snapshots_is_that_of_integer_times(one_thread):
    """Merged kicks hold v at half steps; the recorded K_n must be that of v_n, which a
    run saving every step has in its snapshots."""
    batch, cfg = _paper(steps=20, save_every=10)
    every = fastvp.simulate(batch, cfg.replace(save_every=1))
    d = fastvp.simulate(batch, cfg, diagnostics=True).diagnostics
    torch.testing.assert_close(d.kinetic_energy, physics.kinetic_energy(every.p, cfg), rtol=1e-10, atol=0)
    torch.testing.assert_close(d.momentum, physics.total_momentum(every.p, cfg), rtol=0, atol=1e-10)
    fe = torch.stack([physics.field_energy(q, cfg) for q in every.q])
    torch.testing.assert_close(d.field_energy, fe, rtol=1e-10, atol=1e-12)


def test_momentum_is_conserved_and_energy_nearly(one_thread):
    prob = fastvp.problems.landau(particles=4096, steps=100)
    d = fastvp.simulate(prob.initial_conditions(seed=1), prob.config, diagnostics=True).diagnostics
    p = d.momentum[:, 0]
    scale = math.sqrt(2 * prob.config.charge * 4096 * float(d.kinetic_energy[0, 0]))
    assert (p - p[0]).abs().max() < 1e-12 * scale
    h = d.total_energy[:, 0]
    assert (h - h[0]).abs().max() < 1e-3 * h[0]


def test_modes_are_the_fourier_amplitudes_of_the_field(one_thread):
    batch, cfg = _paper(examples=4)
    traj = fastvp.simulate(batch, cfg, diagnostics=True)
    d = traj.diagnostics
    m = d.modes.shape[2]
    for s, q in zip(cfg.snapshot_steps, traj.q):
        e_hat = torch.fft.rfft(field(q, cfg), dim=1)[:, 1:m]
        torch.testing.assert_close(d.modes[s, :, 1:], 2 * e_hat.abs() / cfg.cells, rtol=1e-9, atol=1e-13)
        strong = d.modes[s, :, 1:] > 1e-8
        diff = torch.remainder(d.phases[s, :, 1:] - e_hat.angle() + math.pi, 2 * math.pi) - math.pi
        assert diff[strong].abs().max() < 1e-9


def test_mode_amplitude_and_phase_of_a_known_ripple(one_thread):
    # density 1 + alpha cos(k x): dE/dx = alpha cos(k x), E = (alpha / k) sin(k x)
    prob = fastvp.problems.plasma_oscillation(k=0.5, alpha=0.02, particles=2**14, cells=128, steps=2,
                                              save_every=1)
    d = fastvp.simulate(prob.initial_conditions(quiet=True), prob.config, diagnostics=True).diagnostics
    # CIC smooths mode 1 by sinc^2(k dx / 2) (deposit) on the grid
    kdx = 0.5 * prob.config.dx
    assert float(d.modes[0, 0, 1]) == pytest.approx(0.04 * (math.sin(kdx / 2) / (kdx / 2)) ** 2, rel=1e-6)
    assert float(d.phases[0, 0, 1]) == pytest.approx(-math.pi / 2, abs=1e-9)  # sin = cos(. - pi/2)


def test_diagnostics_do_not_depend_on_chunking(one_thread):
    batch, cfg = _paper(examples=5)
    a = fastvp.simulate(batch, cfg, diagnostics=True, chunk_size=2).diagnostics
    b = fastvp.simulate(batch, cfg, diagnostics=True).diagnostics
    for name in ("t", "field_energy", "kinetic_energy", "total_energy", "momentum"):
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    # the modes' matrix product may block its sums differently for other chunk sizes
    torch.testing.assert_close(a.modes, b.modes, rtol=1e-12, atol=1e-15)
    strong = a.modes > 1e-9
    torch.testing.assert_close(a.phases[strong], b.phases[strong], rtol=0, atol=1e-9)


def test_threaded_chunks_record_the_same_diagnostics():
    """Chunks run in parallel threads when torch has several: each writes its own columns."""
    batch, cfg = _paper(examples=7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = fastvp.simulate(batch, cfg, diagnostics=True, chunk_size=2).diagnostics
        torch.set_num_threads(2)
        b = fastvp.simulate(batch, cfg, diagnostics=True, chunk_size=2).diagnostics
    finally:
        torch.set_num_threads(threads)
    for name in a.keys():
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_triton_path_records_the_same_diagnostics(one_thread):
    pytest.importorskip("triton")
    from fastvp.backend import triton_interpreted

    if not (torch.cuda.is_available() or triton_interpreted()):
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch, cfg = _paper(examples=2, n_particles=64, steps=4, save_every=2)
    batch = batch.to(device)
    a = fastvp.simulate(batch, cfg, diagnostics=True, kernels="torch").diagnostics
    b = fastvp.simulate(batch, cfg, diagnostics=True, kernels="triton").diagnostics
    for name in a.keys():
        torch.testing.assert_close(a[name], b[name], rtol=1e-9, atol=1e-9)


def test_diagnostics_flag_is_checked():
    with pytest.raises(ValueError, match="diagnostics.*'yes'"):
        fastvp.simulate(fastvp.initial_conditions(1), diagnostics="yes")


# --- fit_rate on signals of known rate -----------------------------------------------------


def _signal(t, amplitude, phase):
    t = torch.as_tensor(t, dtype=torch.float64)
    modes = torch.zeros(t.shape[0], 1, 3, dtype=torch.float64)
    phases = torch.zeros_like(modes)
    modes[:, 0, 1] = torch.as_tensor(amplitude)
    phases[:, 0, 1] = torch.as_tensor(phase)
    return SimpleNamespace(t=t, modes=modes, phases=phases)


def test_fit_recovers_a_damped_standing_wave():
    t = np.arange(0, 30, 0.1)
    diag = _signal(t, 0.02 * np.exp(-0.15 * t) * np.abs(np.cos(1.4 * t + 0.3)), np.zeros_like(t))
    rate = fit_rate(diag)
    assert rate.gamma == pytest.approx(-0.15, rel=1e-3) and rate.omega == pytest.approx(1.4, rel=1e-3)


def test_fit_recovers_a_growing_travelling_wave_and_stops_at_saturation():
    t = np.arange(0, 60, 0.1)
    growth = 1e-5 * np.exp(0.2 * t)
    amp = growth / (1 + growth / 0.1)  # saturates near 0.1
    rate = fit_rate(_signal(t, amp, -1.0 * t))
    assert rate.gamma == pytest.approx(0.2, rel=0.03) and rate.omega == pytest.approx(1.0, rel=1e-9)
    lo, hi = fit_window(_signal(t, amp, -1.0 * t))
    assert 0 < lo < hi < t[np.argmax(amp)]
    narrow = fit_rate(_signal(t, amp, -1.0 * t), t_min=5.0, t_max=15.0)
    assert narrow.gamma == pytest.approx(0.2, rel=1e-3)


def test_growth_window_is_the_three_e_folds_before_the_peak_over_e():
    t = np.arange(0, 60, 0.1)
    growth = 1e-5 * np.exp(0.2 * t)
    amp = growth / (1 + growth / 0.1)  # saturates near 0.1
    diag = _signal(t, amp, -1.0 * t)
    lo, hi = fastvp.problems.growth_window(diag)
    assert amp[np.searchsorted(t, hi)] >= amp.max() / np.e > amp[np.searchsorted(t, hi) - 1]
    assert np.log(amp[np.searchsorted(t, hi)] / amp[np.searchsorted(t, lo)]) == pytest.approx(3, abs=0.03)
    inside = (t >= lo - 1e-9) & (t <= hi + 1e-9)
    slope = np.polyfit(t[inside], np.log(amp[inside]), 1)[0]  # 0.18: the saturation bends it
    assert fit_rate(diag, t_min=lo, t_max=hi).gamma == pytest.approx(slope, rel=1e-9)
    with pytest.raises(ValueError, match="e-folds"):
        fastvp.problems.growth_window(diag, e_folds=30)
    with pytest.raises(ValueError, match="e_folds"):
        fastvp.problems.growth_window(diag, e_folds=0)


def test_fit_rate_of_a_batch_gives_arrays_and_checks_its_input(one_thread):
    prob = fastvp.problems.plasma_oscillation(alpha=[0.01, 0.02], particles=1024, steps=400)
    traj = fastvp.simulate(prob.initial_conditions(quiet=True), prob.config, diagnostics=True)
    rate = fit_rate(traj)
    assert rate.omega.shape == (2,)
    np.testing.assert_allclose(rate.omega, 1.0, rtol=0.01)
    assert fit_rate(traj, example=1).omega == pytest.approx(rate.omega[1])
    with pytest.raises(ValueError, match="mode"):
        fit_rate(traj, mode=0)
    with pytest.raises(ValueError, match="example"):
        fit_rate(traj, example=2)
    with pytest.raises(ValueError, match="t_max"):
        fit_rate(traj, t_min=5.0, t_max=2.0)
    with pytest.raises(ValueError, match="diagnostics"):
        fit_rate(fastvp.simulate(prob.initial_conditions(quiet=True), prob.config))
