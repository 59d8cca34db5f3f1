"""The paper's expanding Gaussian (docs/physics.md, "The paper's setup"), a problem like the others.

    q_i ~ N(mu_q, sigma_q^2),  p_i ~ N(mu_p, sigma_p^2),  sigma_q ~ U(sigma_q_range),
    sigma_p ~ U(sigma_p_range) per example (the paper: mu_q = L/2, mu_p = 0, both [0.5, 1.5])

in the paper's box (L = 128, 128 cells, 256 particles of charge 0.1, q/m = 1, dt = 0.04,
25 steps). A free expansion: no driven mode, no linear theory. This module owns the
seeded sampler behind ``fastvp.initial_conditions``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import ndtri

from ..arguments import boolean, integer, number
from ..backend import resolve_device, resolve_dtype
from ..config import PAPER_SIGMA_RANGE, PICConfig, _range
from ..particles import Batch
from .base import Parameter, Problem, read_parameters
from .distribution import Gaussian
from .sampling import evenly_spaced, van_der_corput

#: Random numbers are drawn in blocks of this many examples, each block from its own
#: seed (seed, block index): example i gets the same particles however a run is chunked.
RNG_BLOCK = 1024

PARAMETERS = (
    Parameter("sigma_q", None, "position spread (default: uniform in [0.5, 1.5] per example)",
              per_example=True, low=0, open_low=True),
    Parameter("sigma_p", None, "momentum spread (default: uniform in [0.5, 1.5] per example)",
              per_example=True, low=0, open_low=True),
)


@dataclass(frozen=True)
class PaperInitial:
    """The family of the paper's initial Gaussians: each example draws sigma_q uniformly in
    `sigma_q_range` and sigma_p in `sigma_p_range`, then its particles from N(mu_q,
    sigma_q^2) x N(mu_p, sigma_p^2). Each field's help is its ``metadata["help"]``."""

    mu_q: float | None = field(default=None, metadata={
        "help": "mean initial position (default: L / 2)"})
    mu_p: float = field(default=0.0, metadata={"help": "mean initial momentum"})
    sigma_q_range: tuple[float, float] = field(default=PAPER_SIGMA_RANGE, metadata={
        "help": "LO HI of the per-example sigma_q (default: --sigma-range; sample: the model's)"})
    sigma_p_range: tuple[float, float] = field(default=PAPER_SIGMA_RANGE, metadata={
        "help": "LO HI of the per-example sigma_p (default: --sigma-range; sample: the model's)"})

    def __post_init__(self) -> None:
        if self.mu_q is not None:
            object.__setattr__(self, "mu_q", number("mu_q", self.mu_q))
        object.__setattr__(self, "mu_p", number("mu_p", self.mu_p))
        for name in ("sigma_q_range", "sigma_p_range"):
            object.__setattr__(self, name, _range(name, getattr(self, name)))

    @classmethod
    def of(cls, config: PICConfig) -> PaperInitial:
        """The settings a config's deprecated keywords give (the paper's without them)."""
        return cls(**(config.legacy_initial or {}))

    def replace(self, sigma_range=None, **changes) -> PaperInitial:
        """A copy with some settings changed; `sigma_range` sets both ranges unless one is
        given on its own (the command line's --sigma-range)."""
        if sigma_range is not None:
            changes.setdefault("sigma_q_range", sigma_range)
            changes.setdefault("sigma_p_range", sigma_range)
        return dataclasses.replace(self, **changes)

    def centre(self, config: PICConfig) -> float:
        """mu_q, with None read as L / 2."""
        return config.box_length / 2 if self.mu_q is None else self.mu_q

    def to_dict(self) -> dict:
        return {"mu_q": self.mu_q, "mu_p": self.mu_p, "sigma_q_range": list(self.sigma_q_range),
                "sigma_p_range": list(self.sigma_p_range)}


def draw_block(seed: int, block: int, config: PICConfig) -> tuple[np.ndarray, np.ndarray]:
    """Random numbers of examples [block*RNG_BLOCK, (block+1)*RNG_BLOCK).

    Returns u: [RNG_BLOCK, 2] uniforms in [0, 1) for (sigma_q, sigma_p) and
    z: [RNG_BLOCK, 2, N] standard normals for (q, p).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, block]))
    u = rng.random((RNG_BLOCK, 2))
    z = rng.standard_normal((RNG_BLOCK, 2, config.n_particles))
    return u, z


def _sigma(name: str, value, n: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a number or have shape [{n}], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return arr


def _stream(seed: int, start: int, n: int, config: PICConfig) -> tuple[np.ndarray, np.ndarray]:
    """The (u, z) of examples start .. start + n - 1, read from their blocks."""
    stop = start + n
    us, zs = [], []
    for block in range(start // RNG_BLOCK, math.ceil(stop / RNG_BLOCK)):
        lo, hi = block * RNG_BLOCK, (block + 1) * RNG_BLOCK
        u, z = draw_block(seed, block, config)
        a, b = max(start, lo) - lo, min(stop, hi) - lo
        us.append(u[a:b])
        zs.append(z[a:b])
    return np.concatenate(us), np.concatenate(zs)


def gaussian_initial_conditions(n_examples: int, config: PICConfig, initial: PaperInitial,
                                seed: int = 0, sigma_q=None, sigma_p=None, device=None,
                                dtype: torch.dtype = torch.float64, start: int = 0) -> Batch:
    """Examples start .. start+n_examples-1 of the seeded paper Gaussians (the body of
    ``fastvp.initial_conditions``, whose docstring has the arguments): a Batch of q, p
    [B, N] and sigma_q, sigma_p, mu_q, mu_p [B]."""
    integer("n_examples", n_examples, 1)
    integer("seed", seed, 0)
    integer("start", start, 0)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype)
    n_examples, start = int(n_examples), int(start)
    sq_given = _sigma("sigma_q", sigma_q, n_examples)
    sp_given = _sigma("sigma_p", sigma_p, n_examples)
    u, z = _stream(seed, start, n_examples, config)
    (lq, hq), (lp, hp) = initial.sigma_q_range, initial.sigma_p_range
    sq = sq_given if sq_given is not None else lq + (hq - lq) * u[:, 0]
    sp = sp_given if sp_given is not None else lp + (hp - lp) * u[:, 1]
    mu_q = initial.centre(config)
    q = mu_q + sq[:, None] * z[:, 0]
    p = initial.mu_p + sp[:, None] * z[:, 1]

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)

    return Batch(q=t(q), p=t(p), sigma_q=t(sq), sigma_p=t(sp),
                 mu_q=t(np.full(n_examples, mu_q)), mu_p=t(np.full(n_examples, initial.mu_p)))


class PaperProblem(Problem):
    """The paper preset: ``fastvp.initial_conditions`` with this problem's sigmas and
    ``initial`` settings; quiet starts place the particles at Gaussian quantiles instead
    (positions at evenly spaced quantiles, momenta at van der Corput ones). Example i is
    example i of ``fastvp.initial_conditions``, whatever `start` and the batch size select."""

    gaussian = True

    def __init__(self, *args, initial: PaperInitial, **kwargs):
        super().__init__(*args, **kwargs)
        #: the family the examples' Gaussians are drawn from (ranges of sigma, means)
        self.initial = initial

    def initial_conditions(self, examples: int | None = None, seed: int = 0, quiet: bool = False,
                           device=None, dtype: torch.dtype = torch.float64, start: int = 0) -> Batch:
        b = self._examples(examples, start)
        boolean("quiet", quiet)
        sigma = {name: v[start:start + b] if isinstance(v, np.ndarray) else v
                 for name, v in self.params.items()}
        batch = gaussian_initial_conditions(b, self.config, self.initial, seed=seed, start=start,
                                            device=device, dtype=dtype, **sigma)
        if quiet:
            n = self.config.n_particles
            zq = torch.from_numpy(ndtri(evenly_spaced(n))).to(batch.q)
            zp = torch.from_numpy(ndtri(van_der_corput(n))).to(batch.p)
            batch.q = batch.mu_q[:, None] + batch.sigma_q[:, None] * zq
            batch.p = batch.mu_p[:, None] + batch.sigma_p[:, None] * zp
        return batch

    def distribution(self, examples: int | None = None, start: int = 0) -> Gaussian:
        """f0 of examples start .. start + B - 1: their Gaussians, when sigma_q and sigma_p
        are given (drawn per example otherwise: score a Batch with ``Gaussian.of``)."""
        if self.params["sigma_q"] is None or self.params["sigma_p"] is None:
            raise ValueError("this paper problem draws sigma_q and sigma_p per example: its f0 is "
                             "each example's Gaussian (Gaussian.of(batch)); give sigma_q and sigma_p "
                             "for one shared distribution")
        b = self._examples(examples, start)
        sq, sp = (self.parameter_values(start + b)[name][start:] for name in ("sigma_q", "sigma_p"))
        return Gaussian(self.config.n_particles, self.initial.centre(self.config), sq,
                        self.initial.mu_p, sp)


def paper(sigma_q=None, sigma_p=None, *, sigma_q_range=PAPER_SIGMA_RANGE,
          sigma_p_range=PAPER_SIGMA_RANGE, mu_q: float | None = None, mu_p: float = 0.0,
          config: PICConfig | None = None) -> Problem:
    """The paper's Gaussian preset as a Problem.

    ``theory()`` raises NotImplementedError: the expansion has no driven mode.

    Args:
        sigma_q, sigma_p: None (drawn per example from its range, as in the paper), a
            number, or a sequence of B numbers.
        sigma_q_range, sigma_p_range: (low, high) of the per-example draws.
        mu_q, mu_p: the Gaussians' means (mu_q None: the box's centre L / 2).
        config: the solver (default: the paper's, ``PICConfig()``).
    Returns:
        A Problem (``.config``, ``.initial``, ``.initial_conditions``, ``.distribution``).

    Raises:
        ValueError: naming the argument and its value, for a non-positive sigma or a bad range.

    Example:
        >>> import fastvp, torch
        >>> batch = fastvp.problems.paper().initial_conditions(4, seed=0, device="cpu")
        >>> torch.equal(batch.q, fastvp.initial_conditions(4, seed=0, device="cpu").q)
        True
    """
    params = read_parameters(PARAMETERS, {"sigma_q": sigma_q, "sigma_p": sigma_p})
    initial = PaperInitial(mu_q, mu_p, sigma_q_range, sigma_p_range)
    if config is not None and not isinstance(config, PICConfig):
        raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
    return PaperProblem("paper", config or PICConfig.preset("paper"), params, PARAMETERS,
                        sample=None, rate=None, description="the paper's expanding Gaussian",
                        initial=initial)
