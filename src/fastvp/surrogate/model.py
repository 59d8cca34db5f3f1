"""PDE-NHF: the Surrogate module (the flow of a Deep Set Hamiltonian), its files and loading.

The math lives in ``potential`` (V, the closed-form dV/dq and its hand-derived backward)
and ``flow`` (the leapfrog); this module wraps them in an ``nn.Module`` with the paper's
parameters (``a`` and ``V_net``), sampling, the exact log-likelihood, and files.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import arguments
from ..backend import use_triton
from ..config import PICConfig
from ..initial import initial_conditions
from ..particles import Batch, Trajectory, as_particles, check_particles, to_tensor
from ..problems import paper
from ..problems.base import Problem
from ..problems.distribution import Gaussian, InitialDistribution
from ..problems.paper import PaperInitial
from ..problems.registry import PROBLEMS
from . import periodic
from .flow import integrate, leapfrog
from .model_files import ModelFiles
from .periodic import FourierSet
from .potential import DeepSet, closed_form_grad, grad_autograd

#: The potentials V a Surrogate can have: the paper's Deep Set of centred positions, or
#: Fourier features of the positions in a periodic box (``periodic.FourierSet``).
POTENTIALS = ("deepset", "fourier")

PULLBACK_METHODS = ("fast", "compiled", "autograd")


class Surrogate(ModelFiles, nn.Module):
    """PDE-NHF: the leapfrog flow of H(q, p) = a^2 |p|^2 / 2 + V(q), V a Deep Set.

    Flow_t = K leapfrog steps of dt = t / K maps initial particles (q0, p0) [B, N] to
    the state at time t; K = `steps` (the training K, 25 in the paper). `config` is the
    PIC setup the model stands for: its final time T bounds t, and its n_particles,
    mu_q, mu_p and sigma_range give the initial conditions drawn by ``sample``.

    Parameters: ``a`` [1] (init 1) and ``V_net`` (a DeepSet); the state_dict keys are the
    official ones (``a``, ``V_net.phi.0.weight``, ...). Like any nn.Module it starts in
    torch's default dtype: ``model.to(dtype=torch.float64)`` for double precision.

    Example::

        model = Surrogate.load("paper-1d")
        q, p = model.sample(0.5, batch)          # [B, N] each, at t = 0.5
        traj = model.sample([0.2, 1.0], batch)   # Trajectory t [2], q, p [2, B, N]
    """

    def __init__(self, config: PICConfig | None = None, steps: int = 25, hidden: int = 256,
                 potential: str = "deepset", modes: int = 8, problem: dict | None = None):
        super().__init__()
        if config is not None and not isinstance(config, PICConfig):
            raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
        self.config = config or PICConfig()
        self.steps = _check_steps(steps)
        self.potential_kind = arguments.choice("potential", potential, POTENTIALS)
        self.a = nn.Parameter(torch.ones(1))
        self.V_net = DeepSet(hidden) if potential == "deepset" else \
            FourierSet(self.config.box_length, modes, hidden)
        if problem is not None and (not isinstance(problem, dict) or problem.get("name") not in PROBLEMS):
            raise ValueError(f"problem must be {{'name': one of {sorted(PROBLEMS)}, 'params': "
                             f"{{...}}}}, got {problem!r}")
        #: {"name", "params"} of the fastvp.problems problem the model stands for (None: the
        #: paper's Gaussians in ``config``'s box)
        self.problem_entry = problem

    @property
    def problem(self) -> Problem:
        """The ``fastvp.problems`` Problem the model was trained for (its name, params,
        config, theory() and initial distribution): from its file's "problem" entry, else
        the paper's Gaussians in the model's box."""
        if self.problem_entry is None:
            initial = PaperInitial.of(self.config)
            return paper(sigma_q_range=initial.sigma_q_range, sigma_p_range=initial.sigma_p_range,
                         mu_q=initial.mu_q, mu_p=initial.mu_p, config=self.config)
        return PROBLEMS[self.problem_entry["name"]](**self.problem_entry.get("params", {}))

    @property
    def periodic(self) -> bool:
        """True for a Fourier potential: positions wrap into [0, L) in the flow."""
        return self.potential_kind == "fourier"

    # ------------------------------------------------------------------ properties

    @property
    def final_time(self) -> float:
        """T: the time the model was trained to reach."""
        return self.config.final_time

    @property
    def dtype(self) -> torch.dtype:
        return self.a.dtype

    @property
    def device(self) -> torch.device:
        return self.a.device

    def extra_repr(self) -> str:
        kind = f"fourier modes={self.V_net.modes}, " if self.periodic else ""
        return (f"{kind}hidden={self.V_net.hidden}, steps={self.steps}, T={self.final_time:g}, "
                f"n_particles={self.config.n_particles}")

    # ------------------------------------------------------------------ the physics

    def _cast(self, name: str, x) -> torch.Tensor:
        x = to_tensor(name, x)
        return x.to(device=self.device, dtype=self.dtype)

    def _positions(self, q) -> torch.Tensor:
        q = self._cast("q", q)
        check_particles(q, q)
        return q

    def potential(self, q) -> torch.Tensor:
        """V(q) = rho(sum_i phi(q_i - mean q)): q [B, N] -> [B] (ValueError on a bad q).

        Example:
            >>> import torch, fastvp
            >>> model = fastvp.Surrogate(hidden=8)
            >>> q = 64 + torch.randn(2, 256)
            >>> bool(torch.allclose(model.potential(q), model.potential(q + 3.0)))
            True
        """
        return self.V_net(self._positions(q))

    def grad(self, q) -> torch.Tensor:
        """dV/dq in closed form: q [B, N] -> [B, N]; each row sums to 0 (translation invariance).

        Example:
            >>> import torch, fastvp
            >>> g = fastvp.Surrogate(hidden=8).grad(64 + torch.randn(2, 256))
            >>> tuple(g.shape), bool(g.sum(dim=1).abs().max() < 1e-4)
            ((2, 256), True)
        """
        return self.V_net.grad(self._positions(q))

    def _time(self, t, extrapolate: bool, name: str = "t") -> float:
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = t.item()
        if isinstance(t, float) and not math.isfinite(t):
            raise ValueError(f"{name} must be finite, got {t!r}")
        t = arguments.number(name, t)
        T = self.final_time
        if not extrapolate and not 0.0 <= t <= T:
            raise ValueError(f"{name} must lie in [0, T={T:g}] (pass extrapolate=True to go "
                             f"beyond), got {t!r}")
        return t

    def _initial(self, batch, n_examples: int, seed) -> tuple[torch.Tensor, torch.Tensor]:
        if batch is None:
            if seed is None:
                seed = int(torch.randint(0, 2**31 - 1, ()).item())
            kw = dict(seed=seed, device=self.device, dtype=self.dtype)
            b = initial_conditions(n_examples, self.config, **kw) if self.problem_entry is None \
                else self.problem.initial_conditions(n_examples, **kw)
            return b.q, b.p
        q, p = as_particles(batch)
        kw = dict(device=self.device, dtype=self.dtype)
        return q.to(**kw), p.to(**kw)

    def _flow(self, q, p, t: float, steps: int, kernels=None):
        if t == 0.0:
            return q, p
        if self.periodic:
            return self._periodic_flow(q, p, t / steps, steps, kernels)
        return integrate(q, p, self.V_net.weights(), self.a[0] ** 2, t / steps, steps,
                         kernels=kernels)

    def _periodic_flow(self, q, p, dt: float, steps: int, kernels=None):
        """K steps of size dt of a Fourier potential for sampling: the fused Triton kernel
        (``fastvp.kernels.fourier_leapfrog``) where ``use_triton(q, kernels)`` says so and
        autograd would not see the flow, else ``leapfrog`` with ``periodic_grad_nograd`` and
        wrap=L (the reference; it tracks neither a nor the net's parameters either)."""
        a2 = self.a[0].detach() ** 2
        box = self.config.box_length
        tracked = torch.is_grad_enabled() and (q.requires_grad or p.requires_grad)
        if use_triton(q, kernels) and not tracked:
            from fastvp.kernels.fourier_leapfrog import fourier_leapfrog

            return fourier_leapfrog(q, p, self.V_net.weights(), a2, dt, steps, box)
        return leapfrog(q, p, lambda x: periodic.periodic_grad_nograd(x, self.V_net), a2, dt, steps,
                        wrap=box)

    def sample(self, t, batch=None, steps: int | None = None, n_examples: int = 1,
               seed: int | None = None, extrapolate: bool = False, kernels: str | None = None):
        """The state at time t of the flow started from `batch`: Flow_t(q0, p0).

        t: a number in [0, T] -> (q, p) [B, N]; or a sequence of times -> Trajectory with
            t [S] exactly those times, q, p [S, B, N]. Each time t_s is reached from t = 0
            with its own K steps of dt = t_s / K, so trajectory[s] is sample(t_s) itself:
            every time gets the same accuracy (K steps), as the paper samples a time t.
            (Stopping one run at the training step size T/K instead gave the same W1 to
            PIC, to 4 digits, at t = 0.2 ... 0.8 for a model trained on a small dataset:
            consistency with sample(t) decides.)
        batch: a Batch, or a (q0, p0) pair of [B, N] tensors or arrays; None draws
            `n_examples` from the model's config (seeded by `seed`, else by torch's RNG).
        steps: K (default: the training K). extrapolate: allow t < 0 or t > T.
        Computes in the model's dtype and device; without gradients (use log_prob to train).

        Returns:
            (q, p) [B, N] for one time; a Trajectory for a sequence of times.

        Raises:
            ValueError: t outside [0, T] (without extrapolate), bad steps, batch or n_examples.

        Example:
            >>> import fastvp
            >>> model = fastvp.Surrogate(hidden=8).double()
            >>> batch = fastvp.initial_conditions(4, seed=0)
            >>> q, p = model.sample(1.0, batch, steps=5)
            >>> tuple(q.shape)
            (4, 256)
            >>> model.sample([0.2, 1.0], batch, steps=5).t.tolist()
            [0.2, 1.0]
        """
        K = self.steps if steps is None else _check_steps(steps)
        if batch is None:
            arguments.integer("n_examples", n_examples, 1)
        if isinstance(t, (str, bytes)):
            raise ValueError(f"t must be a number or a sequence of numbers, got {t!r}")
        sequence = not isinstance(t, (int, float, np.number)) and not (
            isinstance(t, torch.Tensor) and t.dim() == 0)
        if sequence:
            try:
                times = [self._time(ti, extrapolate, f"t[{i}]") for i, ti in enumerate(t)]
            except TypeError as exc:
                raise ValueError(f"t must be a number or a sequence of numbers, got {t!r}") from exc
            if not times:
                raise ValueError("t must hold at least one time, got an empty sequence")
        else:
            times = [self._time(t, extrapolate)]
        q0, p0 = self._initial(batch, n_examples, seed)
        with torch.no_grad():
            states = [self._flow(q0, p0, ti, K, kernels) for ti in times]
        if not sequence:
            return states[0]
        return Trajectory(
            t=torch.tensor(times, dtype=self.dtype, device=self.device),
            q=torch.stack([s[0] for s in states]),
            p=torch.stack([s[1] for s in states]),
        )

    def pullback(self, q: torch.Tensor, p: torch.Tensor, t: float, steps: int | None = None,
                 method: str = "fast") -> tuple[torch.Tensor, torch.Tensor]:
        """Flow_{-t}(q, p): K steps of dt = -t / K, q, p [B, N] in the model's dtype/device.

        With gradients enabled, differentiable (once) in q, p and the parameters:
        method "fast" uses ``closed_form_grad`` (hand-derived backward), "compiled" the same
        fused by torch.compile, "autograd" differentiates autograd's dV/dq again through
        every step (the authors' way; the reference of the tests and benchmark).
        Without gradients, the no-grad integrator ``flow.integrate`` runs.
        """
        K = self.steps if steps is None else _check_steps(steps)
        if method not in PULLBACK_METHODS:
            raise ValueError(f"method must be one of {PULLBACK_METHODS}, got {method!r}")
        if t == 0.0:
            return q, p
        a2 = self.a[0] ** 2
        if self.periodic:
            return self._periodic_pullback(q, p, a2, -t / K, K, method)
        if not torch.is_grad_enabled():
            return integrate(q, p, self.V_net.weights(), a2, -t / K, K)
        if method == "autograd":
            def grad(x):
                return grad_autograd(self.V_net, x, create_graph=True)
        else:
            weights = self.V_net.weights()

            def grad(x):
                return closed_form_grad(x, weights, compile=method == "compiled")
        return leapfrog(q, p, grad, a2, -t / K, K)

    def _periodic_pullback(self, q, p, a2, dt: float, K: int, method: str):
        """``pullback`` of a Fourier potential: positions wrap into [0, L) after each drift
        (without gradients, the sampler's path: the fused kernel where it runs)."""
        if not torch.is_grad_enabled():
            return self._periodic_flow(q, p, dt, K)
        if method == "autograd":
            def grad(x):
                return periodic.grad_autograd(self.V_net, x, create_graph=True)
        else:
            def grad(x):
                return periodic.periodic_grad(x, self.V_net)
        return leapfrog(q, p, grad, a2, dt, K, wrap=self.config.box_length)

    def log_prob(self, q, p, batch, t: float = 1.0, steps: int | None = None) -> torch.Tensor:
        """log p_t(q, p) = log f0(Flow_{-t}(q, p)): [B] summed over the particles.

        Exact, since the flow preserves volume. q, p [B, N]; batch gives each example's
        initial density f0: an ``InitialDistribution`` (``Problem.distribution()``), a
        Batch with Gaussian parameters (its mu_q, mu_p, sigma_q, sigma_p), or a (q0, p0)
        pair (Gaussians of their sample means and deviations). Differentiable in the
        parameters: training minimises -log_prob. K = steps (default: the training K),
        dt = -t / K.

        Returns:
            log p_t(q, p) [B] in nats.

        Raises:
            ValueError: t outside [0, T], shapes that disagree, non-finite q or p.

        Example:
            >>> import fastvp
            >>> model = fastvp.Surrogate(hidden=8)
            >>> batch = fastvp.initial_conditions(2, seed=0)
            >>> q, p = model.sample(1.0, batch, steps=5)
            >>> lp = model.log_prob(q, p, batch, t=1.0, steps=5)
            >>> tuple(lp.shape), bool(lp.requires_grad)
            ((2,), True)
        """
        t = self._time(t, extrapolate=False)
        q, p = self._cast("q", q), self._cast("p", p)
        check_particles(q, p)
        f0 = _initial_density(batch, q.shape[0], None if self.problem_entry is None else self.problem)
        q0, p0 = self.pullback(q, p, t, steps)
        return f0.log_density(q0, p0)


def _initial_density(batch, n_examples: int, problem: Problem | None) -> InitialDistribution:
    """The f0 that ``log_prob`` scores with: a distribution, a Batch's Gaussians, the
    model's problem's f0 (models of a ``fastvp.problems`` problem), or the Gaussians of a
    (q0, p0) pair's sample moments."""
    if problem is not None and not isinstance(batch, InitialDistribution) and not (
            isinstance(batch, Batch) and batch.gaussian):
        batch = problem.distribution(None if problem.examples is None else n_examples)
    if isinstance(batch, InitialDistribution):
        f0 = batch
        if f0.examples not in (None, n_examples):
            raise ValueError(f"batch must describe {n_examples} examples like q, got {f0.examples}")
        return f0
    if not (isinstance(batch, Batch) and batch.gaussian):
        q, p = as_particles(batch)
        n = q.shape[1]
        sq = q.std(dim=1) if n > 1 else torch.ones_like(q[:, 0])
        sp = p.std(dim=1) if n > 1 else torch.ones_like(p[:, 0])
        tiny = torch.finfo(q.dtype).tiny
        batch = Batch(q, p, sq.clamp_min(tiny), sp.clamp_min(tiny), q.mean(dim=1), p.mean(dim=1))
    if len(batch) != n_examples:
        raise ValueError(f"batch must hold {n_examples} examples like q, got {len(batch)}")
    return Gaussian.of(batch)


def _check_steps(steps) -> int:
    return arguments.integer("steps", steps, 1)
