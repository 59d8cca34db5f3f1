"""The Surrogate API: sampling, exact likelihood, files, and the errors of bad input."""

import math

import numpy as np
import pytest
import torch

import fastvp
from fastvp.surrogate.flow import leapfrog
from fastvp.surrogate.model import Surrogate
from fastvp.surrogate.model_files import state_shapes

OFFICIAL_KEYS = ["a", "V_net.phi.0.weight", "V_net.phi.0.bias", "V_net.phi.2.weight",
                 "V_net.phi.2.bias", "V_net.rho.0.weight", "V_net.rho.0.bias",
                 "V_net.rho.2.weight", "V_net.rho.2.bias"]
SMALL = fastvp.PICConfig(n_particles=24)


def small_model(seed=0, hidden=16, dtype=torch.float64) -> Surrogate:
    torch.manual_seed(seed)
    model = Surrogate(SMALL, hidden=hidden).to(dtype=dtype)
    with torch.no_grad():
        model.a.fill_(0.97)
    return model


def small_batch(n=3, dtype=torch.float64):
    return fastvp.initial_conditions(n, SMALL, seed=4, dtype=dtype)


def test_state_dict_has_the_official_keys_and_size():
    model = Surrogate()
    assert list(model.state_dict()) == OFFICIAL_KEYS
    assert sum(p.numel() for p in model.parameters()) == 132_354
    assert model.a.item() == 1.0


def test_sample_is_the_leapfrog_flow_with_dt_t_over_k():
    model, batch = small_model(), small_batch()
    q, p = model.sample(0.6, batch, steps=7)
    a2 = model.a[0].detach() ** 2
    q_ref, p_ref = leapfrog(batch.q, batch.p, model.V_net.grad, a2, 0.6 / 7, 7)
    torch.testing.assert_close(q, q_ref, rtol=1e-14, atol=1e-12)
    torch.testing.assert_close(p, p_ref, rtol=1e-14, atol=1e-12)


def test_sample_at_zero_returns_the_input():
    model, batch = small_model(), small_batch()
    q, p = model.sample(0.0, batch)
    assert torch.equal(q, batch.q) and torch.equal(p, batch.p)


def test_sample_of_a_sequence_is_each_time_from_zero():
    model, batch = small_model(), small_batch()
    traj = model.sample([0.4, 0.2, 1.0], batch)
    assert isinstance(traj, fastvp.Trajectory)
    assert traj.t.tolist() == [0.4, 0.2, 1.0]
    assert traj.q.shape == (3, 3, 24)
    for i, t in enumerate([0.4, 0.2, 1.0]):
        q, p = model.sample(t, batch)
        torch.testing.assert_close(traj.q[i], q, rtol=0, atol=0)
        torch.testing.assert_close(traj.p[i], p, rtol=0, atol=0)


def test_sample_draws_its_own_seeded_batch():
    model = small_model()
    q1, _ = model.sample(0.5, n_examples=4, seed=3)
    q2, _ = model.sample(0.5, n_examples=4, seed=3)
    assert q1.shape == (4, 24) and torch.equal(q1, q2)
    q0 = fastvp.initial_conditions(4, SMALL, seed=3).q
    assert torch.equal(model.sample(0.0, n_examples=4, seed=3)[0], q0)


def test_sample_computes_in_the_models_dtype():
    model, batch = small_model(dtype=torch.float32), small_batch()
    q, p = model.sample(1.0, (batch.q.numpy(), batch.p.numpy()))  # float64 numpy in
    assert q.dtype == p.dtype == torch.float32
    q64, _ = small_model().sample(1.0, batch)
    torch.testing.assert_close(q.double(), q64, rtol=1e-5, atol=1e-4)


def test_sample_extrapolates_only_when_asked():
    model, batch = small_model(), small_batch()
    with pytest.raises(ValueError, match=r"t must lie in \[0, T=1\].*1.5"):
        model.sample(1.5, batch)
    with pytest.raises(ValueError, match=r"t must lie.*-0.1"):
        model.sample(-0.1, batch)
    with pytest.raises(ValueError, match=r"t\[1\] must lie"):
        model.sample([0.5, 2.0], batch)
    q, p = model.sample(1.5, batch, extrapolate=True)
    qb, pb = model.sample(-1.5, (q, p), extrapolate=True)  # and back
    torch.testing.assert_close(qb, batch.q, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kwargs,match", [
    (dict(t=float("nan")), "t must be finite"),
    (dict(t="soon"), "t must be a number"),
    (dict(t=[]), "at least one time"),
    (dict(t=0.5, steps=0), "steps must be an integer >= 1, got 0"),
    (dict(t=0.5, steps=2.5), "steps must be an integer >= 1, got 2.5"),
    (dict(t=0.5, batch=None, n_examples=0), "n_examples must be an integer >= 1, got 0"),
])
def test_bad_sample_arguments_are_named(kwargs, match):
    kwargs.setdefault("batch", small_batch())
    with pytest.raises(ValueError, match=match):
        small_model().sample(**kwargs)


@pytest.mark.parametrize("q,p,match", [
    (torch.zeros(3), torch.zeros(3), r"q must have shape \[B, N\]"),
    (torch.zeros(2, 3), torch.zeros(2, 4), "same shape"),
    (torch.tensor([[1.0, float("nan")]]), torch.zeros(1, 2), "q must be finite"),
    (torch.zeros(1, 2), torch.tensor([[1.0, float("inf")]]), "p must be finite"),
])
def test_bad_particles_are_named(q, p, match):
    with pytest.raises(ValueError, match=match):
        small_model().sample(0.5, (q, p))


def test_log_prob_is_the_prior_density_of_the_pulled_back_state():
    model, batch = small_model(), small_batch()
    qT, pT = model.sample(1.0, batch)
    lp = model.log_prob(qT, pT, batch, t=1.0)
    # Flow_{-T}(Flow_T(x)) = x: the density of the sample is the prior's at x
    normal_q = torch.distributions.Normal(batch.mu_q[:, None], batch.sigma_q[:, None])
    normal_p = torch.distributions.Normal(batch.mu_p[:, None], batch.sigma_p[:, None])
    prior = normal_q.log_prob(batch.q).sum(1) + normal_p.log_prob(batch.p).sum(1)
    torch.testing.assert_close(lp, prior, rtol=1e-10, atol=1e-8)
    # and at any point, the prior density of its pull-back, with gradients for training
    x = (batch.q + 0.3, batch.p - 0.2)
    lp = model.log_prob(*x, batch, t=0.6, steps=5)
    q0, p0 = model.sample(-0.6, x, steps=5, extrapolate=True)
    expect = normal_q.log_prob(q0).sum(1) + normal_p.log_prob(p0).sum(1)
    torch.testing.assert_close(lp.detach(), expect, rtol=1e-12, atol=1e-9)
    lp.sum().backward()
    assert model.a.grad is not None and model.V_net.phi[2].weight.grad.abs().sum() > 0


def test_potential_and_grad_are_the_deep_sets():
    model, batch = small_model(), small_batch()
    torch.testing.assert_close(model.potential(batch.q), model.V_net(batch.q))
    torch.testing.assert_close(model.grad(batch.q.float()), model.V_net.grad(batch.q))
    with pytest.raises(ValueError, match="q must be finite"):
        model.grad(torch.full((1, 3), float("nan")))


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model, batch = small_model(), small_batch()
    path = model.save(tmp_path / "m")
    assert path.name == "m.safetensors" and (tmp_path / "m.json").exists()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    loaded = Surrogate.load(path)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                strict=True):
        assert k == k2 and v.dtype == v2.dtype and torch.equal(v, v2)
    assert loaded.config == SMALL and loaded.steps == model.steps
    assert torch.equal(loaded.sample(0.7, batch)[1], model.sample(0.7, batch)[1])


def test_load_errors_name_the_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        Surrogate.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match=r"'no-such-model'.*bundled models: \["):
        Surrogate.load("no-such-model")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="junk.safetensors.*not a fastvp model"):
        Surrogate.load(junk)
    good = small_model().save(tmp_path / "good")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cut.safetensors"):
        Surrogate.load(truncated)
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a PDE-NHF model"):
        Surrogate.load(tmp_path / "other.safetensors")


def official_state(hidden=256, dtype=torch.float32):
    torch.manual_seed(11)
    return {k: torch.randn(s, dtype=dtype) for k, s in state_shapes(hidden).items()}


def test_from_official_reads_a_torch_state_dict(tmp_path):
    state = official_state()
    torch.save(state, tmp_path / "official.pt")
    model = Surrogate.from_official(tmp_path / "official.pt")
    assert model.dtype == torch.float64
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k].double())
    assert model.config.scheme == "official" and model.final_time == 1.0


@pytest.mark.parametrize("change,match", [
    (lambda s: s.pop("V_net.rho.0.bias"), r"missing \['V_net.rho.0.bias'\]"),
    (lambda s: s.update(extra=torch.zeros(1)), r"unexpected \['extra'\]"),
    (lambda s: s.update({"V_net.rho.0.weight": torch.zeros(256, 255)}),
     r"V_net.rho.0.weight must have shape \[256, 256\], got \(256, 255\)"),
    (lambda s: s.update(a=torch.tensor([math.nan])), "a must hold finite"),
])
def test_from_official_rejects_wrong_keys_and_shapes(tmp_path, change, match):
    state = official_state()
    change(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=match):
        Surrogate.from_official(tmp_path / "bad.pt")


def test_from_official_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        Surrogate.from_official(tmp_path / "nothing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="text.pt.*not a torch state_dict"):
        Surrogate.from_official(tmp_path / "text.pt")


def test_model_moves_dtype_like_a_module():
    model = small_model().to(dtype=torch.float32)
    assert model.a.dtype == torch.float32 and model.dtype == torch.float32
    batch = small_batch(2)
    lp = model.log_prob(batch.q, batch.p, batch, t=0.5)  # float64 input, float32 model
    assert lp.dtype == torch.float32 and np.isfinite(lp.detach().numpy()).all()
