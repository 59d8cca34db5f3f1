"""Initial distributions f0 of the problems: each example's N particles are i.i.d. draws of
a density f(x, v) on the box, so the example's log density is sum_i log f(q_i, p_i).

Two families cover every standard problem:

- ``Gaussian``: f(x, v) = N(x; mu_q, sigma_q^2) N(v; mu_p, sigma_p^2) with per-example
  parameters (the paper's expanding Gaussian);
- ``PerturbedPlasma``: f(x, v) = (1 + alpha cos(k x)) / L x sum_s n_s M(v; u_s, vth_s) on
  the periodic box [0, L), L = 2 pi / k (M a Maxwellian of mean u and width vth; the
  fractions n_s sum to 1): Landau damping, two-stream, bump-on-tail, Jeans, plasma
  oscillations. Cold species (vth = 0) are beams: they have no density.

Both take scalars or [B] per-example parameters, ``sample(examples, generator)`` -> Batch
and ``log_prob(q, p)`` -> [B], exact. PDE-NHF's likelihood scores the pulled-back state
with ``log_prob`` (``Surrogate.log_prob``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from ..arguments import integer
from ..backend import resolve_device, resolve_dtype
from ..particles import Batch, check_particles
from .sampling import mixture_velocities, perturbed_positions

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """sum_i log N(x_i; mu, sigma^2): x [B, N], mu, sigma [B] -> [B]."""
    z = (x - mu[:, None]) / sigma[:, None]
    n = x.shape[1]
    return -0.5 * (z * z).sum(dim=1) - n * (torch.log(sigma) + LOG_SQRT_2PI)


def _values(name: str, value, low: float | None = None) -> np.ndarray:
    """A float64 array [] or [B] of finite numbers (> low when low is given)."""
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                     dtype=np.float64)
    if arr.ndim > 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite number or a [B] sequence of them, got {value!r}")
    if low is not None and np.any(arr <= low):
        raise ValueError(f"{name} must be > {low:g}, got {value!r}")
    return arr


class InitialDistribution:
    """f0 of B examples of N i.i.d. particles.

    n_particles: N; examples: B of the per-example parameters (None: every parameter is
    shared, any B). Subclasses give ``_draw(b, generator)`` -> numpy (q, p) [b, N] and
    ``_log_density(q, p)`` -> [B, N] (log f of each particle).
    """

    n_particles: int
    examples: int | None

    def _set_examples(self, arrays: Sequence[np.ndarray]) -> None:
        sizes = {a.size for a in arrays if a.ndim == 1}
        if len(sizes) > 1:
            raise ValueError(f"per-example parameters must have one length, got lengths {sorted(sizes)}")
        self.examples = sizes.pop() if sizes else None

    def _b(self, examples: int | None) -> int:
        if examples is None:
            return self.examples or 1
        examples = integer("examples", examples, low=1)
        if self.examples is not None and examples != self.examples:
            raise ValueError(f"examples must be {self.examples} (the length of the per-example "
                             f"parameters), got {examples!r}")
        return examples

    def _column(self, arr: np.ndarray, b: int) -> np.ndarray:
        return np.broadcast_to(arr, (b,)).astype(np.float64)

    def sample(self, examples: int | None = None, generator: torch.Generator | None = None,
               device=None, dtype: torch.dtype = torch.float64) -> Batch:
        """B examples drawn from f0 with `generator` (a CPU torch.Generator; None: torch's
        global stream): a Batch of q, p [B, N] (and the Gaussians' parameters, if any)."""
        b = self._b(examples)
        q, p = self._draw(b, generator)
        kw = dict(device=resolve_device(device), dtype=resolve_dtype(dtype))
        return self._batch(torch.from_numpy(q).to(**kw), torch.from_numpy(p).to(**kw))

    def _batch(self, q: torch.Tensor, p: torch.Tensor) -> Batch:
        return Batch(q, p)

    def log_prob(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """log f0(q, p) = sum_i log f(q_i, p_i): q, p [B, N] -> [B], in q's dtype and device."""
        check_particles(q, p)
        if self.examples is not None and q.shape[0] != self.examples:
            raise ValueError(f"q must hold {self.examples} examples (the length of the per-example "
                             f"parameters), got {q.shape[0]}")
        if q.shape[1] != self.n_particles:
            raise ValueError(f"q must hold {self.n_particles} particles per example, got {q.shape[1]}")
        return self._log_prob(q, p)

    def log_density(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``log_prob`` without the argument checks (no host sync): for states a flow has
        pulled back inside training, where a non-finite value must reach the loop's guard."""
        return self._log_prob(q, p)

    def subset(self, index) -> InitialDistribution:
        """f0 of the examples `index` (an index array or tensor into the per-example
        parameters); shared parameters stay shared."""
        index = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
        out = copy.copy(self)
        out._pick(index)
        out._set_examples(out._arrays())
        return out

    def _param(self, arr: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """[B] (or [1]) tensor of a parameter, in like's dtype and device."""
        return torch.as_tensor(np.atleast_1d(arr), dtype=like.dtype, device=like.device)


class Gaussian(InitialDistribution):
    """f(x, v) = N(x; mu_q, sigma_q^2) N(v; mu_p, sigma_p^2): the paper's initial state.

    mu_q, sigma_q, mu_p, sigma_p: numbers or [B] sequences (sigma > 0).

    Example:
        >>> import torch
        >>> f0 = Gaussian(n_particles=4, mu_q=64.0, sigma_q=[1.0, 0.5], mu_p=0.0, sigma_p=1.0)
        >>> batch = f0.sample(generator=torch.Generator().manual_seed(0))
        >>> tuple(batch.q.shape), tuple(f0.log_prob(batch.q, batch.p).shape)
        ((2, 4), (2,))
    """

    def __init__(self, n_particles: int, mu_q, sigma_q, mu_p=0.0, sigma_p=1.0):
        self.n_particles = integer("n_particles", n_particles, low=1)
        self.mu_q, self.mu_p = _values("mu_q", mu_q), _values("mu_p", mu_p)
        self.sigma_q, self.sigma_p = _values("sigma_q", sigma_q, 0.0), _values("sigma_p", sigma_p, 0.0)
        self._set_examples(self._arrays())

    def _arrays(self) -> list[np.ndarray]:
        return [self.mu_q, self.mu_p, self.sigma_q, self.sigma_p]

    def _pick(self, index: np.ndarray) -> None:
        for name in ("mu_q", "mu_p", "sigma_q", "sigma_p"):
            arr = getattr(self, name)
            setattr(self, name, arr[index] if arr.ndim else arr)

    def _columns(self, b: int) -> list[np.ndarray]:
        return [self._column(a, b) for a in (self.mu_q, self.sigma_q, self.mu_p, self.sigma_p)]

    def _draw(self, b: int, generator) -> tuple[np.ndarray, np.ndarray]:
        z = torch.randn((b, 2, self.n_particles), generator=generator, dtype=torch.float64).numpy()
        mq, sq, mp, sp = self._columns(b)
        return mq[:, None] + sq[:, None] * z[:, 0], mp[:, None] + sp[:, None] * z[:, 1]

    def _batch(self, q: torch.Tensor, p: torch.Tensor) -> Batch:
        mq, sq, mp, sp = (torch.from_numpy(c).to(q) for c in self._columns(q.shape[0]))
        return Batch(q, p, sigma_q=sq, sigma_p=sp, mu_q=mq, mu_p=mp)

    def _log_prob(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        mq, sq, mp, sp = (self._param(c, q).expand(q.shape[0]) for c in
                          (self.mu_q, self.sigma_q, self.mu_p, self.sigma_p))
        return gaussian_log_prob(q, mq, sq) + gaussian_log_prob(p, mp, sp)

    @classmethod
    def of(cls, batch: Batch) -> Gaussian:
        """The Gaussians a Batch carries (its mu_*, sigma_* [B])."""
        if not batch.gaussian:
            raise ValueError("batch carries no Gaussian parameters (sigma_q, sigma_p, mu_q, mu_p)")
        return cls(batch.n_particles, batch.mu_q, batch.sigma_q, batch.mu_p, batch.sigma_p)


class PerturbedPlasma(InitialDistribution):
    """f(x, v) = (1 + alpha cos(k x)) / L x sum_s n_s M(v; u_s, vth_s) on [0, L), L = 2 pi / k.

    k: the wavenumber (shared); alpha: number or [B] in [0, 1); species: a list of (n_s, u_s,
    vth_s), each a number or [B] (n_s summing to 1). Cold species (vth_s = 0) are beams and
    have no density: ``log_prob`` refuses them. Positions are taken modulo L.

    Example:
        >>> import torch
        >>> f0 = PerturbedPlasma(n_particles=8, k=0.5, alpha=0.01, species=[(1.0, 0.0, 1.0)])
        >>> b = f0.sample(3, torch.Generator().manual_seed(0))
        >>> tuple(f0.log_prob(b.q, b.p).shape)
        (3,)
    """

    def __init__(self, n_particles: int, k: float, alpha, species):
        self.n_particles = integer("n_particles", n_particles, low=1)
        self.k = float(_values("k", k, 0.0))
        self.length = 2 * math.pi / self.k
        self.alpha = _values("alpha", alpha)
        if np.any(np.abs(self.alpha) >= 1):
            raise ValueError(f"alpha must lie in (-1, 1), got {alpha!r}")
        self.species = [tuple(_values(name, x) for name, x in zip(("n", "u", "vth"), s)) for s in species]
        if not self.species:
            raise ValueError("species must hold at least one (n, u, vth)")
        self._set_examples(self._arrays())

    def _arrays(self) -> list[np.ndarray]:
        return [self.alpha] + [x for s in self.species for x in s]

    def _pick(self, index: np.ndarray) -> None:
        def pick(a):
            return a[index] if a.ndim else a
        self.alpha = pick(self.alpha)
        self.species = [tuple(pick(x) for x in s) for s in self.species]

    @property
    def cold(self) -> bool:
        """True when every species is a cold beam (vth = 0)."""
        return all(np.all(vth == 0) for _, _, vth in self.species)

    def _example_species(self, i: int) -> list[tuple[float, float, float]]:
        def pick(a):
            return float(a[i] if a.ndim else a)
        return [(pick(n), pick(u), pick(vth)) for n, u, vth in self.species]

    def _draw(self, b: int, generator) -> tuple[np.ndarray, np.ndarray]:
        u = torch.rand((b, 2, self.n_particles), generator=generator, dtype=torch.float64).numpy()
        alpha = self._column(self.alpha, b)
        q = np.stack([perturbed_positions(u[i, 0], self.k, alpha[i]) for i in range(b)])
        w = np.clip(u[:, 1], 1e-300, None)  # the inverse CDF of a Maxwellian needs w > 0
        p = np.stack([mixture_velocities(w[i], self._example_species(i)) for i in range(b)])
        return q, p

    def _log_prob(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        if any(np.any(vth == 0) for _, _, vth in self.species):
            raise ValueError("this initial distribution has cold beams (vth = 0): no density to "
                             "score; give the species a thermal spread vth > 0")
        alpha = self._param(self.alpha, q)[:, None]
        log_x = torch.log1p(alpha * torch.cos(self.k * q)) - math.log(self.length)
        terms = []
        for n, u, vth in self.species:
            n, u, vth = (self._param(x, q)[:, None] for x in (n, u, vth))
            z = (p - u) / vth
            terms.append(torch.log(n) - torch.log(vth) - LOG_SQRT_2PI - 0.5 * z * z)
        log_v = torch.logsumexp(torch.stack(terms), dim=0)
        return (log_x + log_v).sum(dim=1)
