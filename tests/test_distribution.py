"""Initial distributions f0 of the problems (fastvp.problems.distribution), and the solver
apart from the problem: PICConfig holds no initial-distribution field."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import fastvp
from fastvp.problems.distribution import Gaussian, PerturbedPlasma
from fastvp.problems.paper import PaperInitial


def test_gaussian_log_prob_is_the_sum_of_normal_log_densities():
    f0 = Gaussian(n_particles=5, mu_q=[64.0, 10.0], sigma_q=[1.0, 0.5], mu_p=0.3, sigma_p=[2.0, 0.7])
    batch = f0.sample(generator=torch.Generator().manual_seed(1))
    want = (stats.norm.logpdf(batch.q.numpy(), [[64.0], [10.0]], [[1.0], [0.5]]).sum(1)
            + stats.norm.logpdf(batch.p.numpy(), 0.3, [[2.0], [0.7]]).sum(1))
    np.testing.assert_allclose(f0.log_prob(batch.q, batch.p).numpy(), want, rtol=1e-13)
    assert batch.gaussian and torch.equal(batch.sigma_q, torch.tensor([1.0, 0.5], dtype=torch.float64))


def test_perturbed_plasma_density_is_normalised_on_the_box():
    f0 = PerturbedPlasma(n_particles=1, k=0.5, alpha=0.3, species=[(0.9, 0.0, 1.0), (0.1, 4.5, 0.5)])

    def density(v, x):
        q = torch.tensor([[x]], dtype=torch.float64)
        p = torch.tensor([[v]], dtype=torch.float64)
        return math.exp(f0.log_prob(q, p).item())

    total, _ = integrate.dblquad(density, 0.0, f0.length, -12.0, 12.0, epsabs=1e-9)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_perturbed_plasma_log_prob_matches_its_formula_and_is_periodic():
    k, alpha = 0.4, np.array([0.01, 0.2])
    f0 = PerturbedPlasma(n_particles=7, k=k, alpha=alpha, species=[(0.5, 1.0, 0.3), (0.5, -1.0, 0.3)])
    batch = f0.sample(generator=torch.Generator().manual_seed(0))
    q, p = batch.q.numpy(), batch.p.numpy()
    want = (np.log((1 + alpha[:, None] * np.cos(k * q)) / (2 * np.pi / k))
            + np.log(0.5 * stats.norm.pdf(p, 1.0, 0.3) + 0.5 * stats.norm.pdf(p, -1.0, 0.3))).sum(1)
    got = f0.log_prob(batch.q, batch.p)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    shifted = f0.log_prob(batch.q + f0.length, batch.p)
    np.testing.assert_allclose(shifted.numpy(), got.numpy(), rtol=1e-12)


def test_perturbed_plasma_samples_follow_the_density():
    f0 = PerturbedPlasma(n_particles=200_000, k=0.5, alpha=0.4, species=[(1.0, 0.0, 1.3)])
    batch = f0.sample(1, torch.Generator().manual_seed(3))
    q, p = batch.q[0].numpy(), batch.p[0].numpy()
    assert np.all((q >= 0) & (q < f0.length))
    assert np.mean(np.cos(0.5 * q)) == pytest.approx(0.2, abs=0.005)   # <cos kx> = alpha / 2
    assert p.std() == pytest.approx(1.3, rel=0.01) and abs(p.mean()) < 0.01
    assert not batch.gaussian


def test_cold_beams_have_no_density_to_score():
    f0 = fastvp.problems.two_stream(particles=16).distribution()
    batch = f0.sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="cold beams"):
        f0.log_prob(batch.q, batch.p)


def test_problem_distribution_takes_the_examples_parameters_in_order():
    prob = fastvp.problems.landau(alpha=[0.01, 0.02, 0.03], vth=[1.0, 0.9, 0.8], particles=32)
    f0 = prob.distribution(2, start=1)
    assert f0.examples == 2
    np.testing.assert_array_equal(f0.alpha, [0.02, 0.03])
    np.testing.assert_array_equal(f0.species[0][2], [0.9, 0.8])
    batch = prob.initial_conditions(2, start=1)
    assert not batch.gaussian
    assert torch.isfinite(f0.log_prob(batch.q, batch.p)).all()
    with pytest.raises(ValueError, match="examples"):
        f0.log_prob(batch.q[:1], batch.p[:1])


def test_paper_distribution_is_the_examples_gaussians():
    prob = fastvp.problems.paper(sigma_q=[0.7, 1.1], sigma_p=0.9)
    batch = prob.initial_conditions()
    f0 = prob.distribution()
    np.testing.assert_allclose(f0.log_prob(batch.q, batch.p).numpy(),
                               Gaussian.of(batch).log_prob(batch.q, batch.p).numpy(), rtol=1e-14)
    with pytest.raises(ValueError, match="per example"):
        fastvp.problems.paper().distribution()


def test_surrogate_log_prob_scores_under_a_distribution_like_under_its_batch():
    model = fastvp.Surrogate(hidden=8).double()
    batch = fastvp.initial_conditions(3, seed=2)
    q, p = model.sample(1.0, batch, steps=5)
    by_batch = model.log_prob(q, p, batch, t=1.0, steps=5)
    by_f0 = model.log_prob(q, p, Gaussian.of(batch), t=1.0, steps=5)
    torch.testing.assert_close(by_batch, by_f0, rtol=0, atol=0)


def test_pic_config_holds_the_solver_only():
    names = {f.name for f in dataclasses.fields(fastvp.PICConfig)}
    assert names == {"box_length", "cells", "n_particles", "charge", "charge_over_mass", "dt",
                     "steps", "save_every", "scheme", "interaction"}
    assert fastvp.PICConfig().mass == pytest.approx(0.1)


def test_deprecated_config_keywords_warn_and_keep_their_meaning():
    with pytest.warns(DeprecationWarning, match=r"fastvp.problems.paper\(sigma_q_range"):
        cfg = fastvp.PICConfig(n_particles=16, sigma_q_range=(1.0, 1.2))
    old = fastvp.initial_conditions(5, cfg, seed=4)
    new = fastvp.problems.paper(sigma_q_range=(1.0, 1.2), config=fastvp.PICConfig(n_particles=16))
    torch.testing.assert_close(old.q, new.initial_conditions(5, seed=4).q, rtol=0, atol=0)
    assert bool(((old.sigma_q >= 1.0) & (old.sigma_q <= 1.2)).all())
    with pytest.warns(DeprecationWarning):
        assert cfg.sigma_q_range == (1.0, 1.2)


def test_a_file_written_before_the_split_reads_without_a_warning():
    d = {**fastvp.PICConfig().to_dict(), "mu_q": 30.0, "mu_p": 0.0, "sigma_range": [0.7, 0.9]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = fastvp.PICConfig.from_dict(d)
    initial = PaperInitial.of(cfg)
    assert initial.sigma_q_range == initial.sigma_p_range == (0.7, 0.9) and initial.mu_q == 30.0
    assert cfg == fastvp.PICConfig()
