"""What every standard problem shares: Rate, the parameter table, Problem and its box.

Units: the total plasma frequency omega_p = 1 (the Jeans frequency under gravity) and
eps0 = 1. The box is L = 2 pi / k, so the driven wave is mode 1. N particles of charge
q = L / N and q/m = 1 give the mean density n0 = N / L and

    omega_p^2 = (q/m) q n0 = 1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..arguments import boolean, integer, number
from ..backend import resolve_device, resolve_dtype
from ..config import PICConfig
from ..particles import Batch
from .dispersion import Species, dominant_root
from .distribution import InitialDistribution, PerturbedPlasma
from .sampling import sample_example


class Rate(NamedTuple):
    """gamma and omega of a wave exp(gamma t) cos(k x - omega t) of the field: floats, or
    [B] arrays for a batch whose examples differ."""

    gamma: float | np.ndarray
    omega: float | np.ndarray


@dataclass(frozen=True)
class Parameter:
    """One keyword argument of a problem, as the CLI declares it.

    name, default, help: the flag (default None: the problem chooses); per_example: may
    differ between the examples of a batch (a number or a sequence of B numbers); kind:
    float or int; low / high: bounds, low excluded when open_low.
    """

    name: str
    default: float | int | None
    help: str
    per_example: bool = False
    kind: type = float
    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def check(self, value) -> float | int | np.ndarray:
        """The validated value: a number, or a float64 array [B] for a per-example sequence.

        Raises:
            ValueError: naming the parameter and the value, if it is out of bounds, not a
                number, or a sequence where one number is needed.
        """
        if value is None and self.default is None:
            return None
        if self.per_example and not isinstance(value, (numbers.Number, str)) and value is not None:
            arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
            if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
                raise ValueError(f"{self.name} must be a number or a 1-D sequence of numbers, "
                                 f"got {value!r}")
            for v in arr.tolist():
                self.check(v)
            return arr.astype(np.float64)
        if self.kind is int:
            return integer(self.name, value, low=self.low, high=self.high)
        return number(self.name, value, low=self.low, high=self.high,
                                 open_low=self.open_low)


def numerics(particles: int, cells: int, dt: float, steps: int, save_every: int) -> tuple[Parameter, ...]:
    """The shared numerical parameters of a problem, with its defaults."""
    return (
        Parameter("particles", particles, "particles per example", kind=int, low=1),
        Parameter("cells", cells, "grid cells", kind=int, low=2),
        Parameter("dt", dt, "time step (units of 1 / omega_p)", low=0, open_low=True),
        Parameter("steps", steps, "time steps", kind=int, low=1),
        Parameter("save_every", save_every, "steps between snapshots (must divide steps)",
                  kind=int, low=1),
    )


def read_parameters(table: Sequence[Parameter], values: Mapping) -> dict:
    """Check `values` against `table`: {name: number or [B] array}; arrays share one length.

    Raises:
        ValueError: for a bad value, or per-example arrays of different lengths.
    """
    out = {p.name: p.check(values[p.name]) for p in table}
    lengths = {name: v.size for name, v in out.items() if isinstance(v, np.ndarray)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-example parameters must have one length, got lengths {lengths}")
    return out


def box_config(k: float, params: Mapping, interaction: str = "electrostatic") -> PICConfig:
    """The PICConfig of a problem: L = 2 pi / k, q = L / N, q/m = 1 (omega_p = 1)."""
    length = 2 * math.pi / k
    return PICConfig(box_length=length, cells=params["cells"], n_particles=params["particles"],
                     charge=length / params["particles"], charge_over_mass=1.0, dt=params["dt"],
                     steps=params["steps"], save_every=params["save_every"],
                     interaction=interaction)


class Problem:
    """A standard plasma problem: its PICConfig, parameters, initial particles and theory.

    name: the registry name; config: PICConfig (shared by every example); params: {name:
    number or [B] array} (arrays: per-example values); table: the Parameter list.
    `sample(i, params_i, rng)` draws example i as (x [N], v [N]) numpy arrays from its own
    parameters (rng None: quiet start); `rate(params_i)` is its linear theory.

    Example:
        >>> import fastvp
        >>> prob = fastvp.problems.landau(alpha=[0.01, 0.02], vth=[1.0, 0.8], particles=4096)
        >>> batch = prob.initial_conditions(quiet=True, device="cpu")   # one box, two examples
        >>> tuple(batch.q.shape), prob.examples
        ((2, 4096), 2)
        >>> prob.theory().gamma.round(4)                   # k vth = 0.5 and 0.4: the k = 0.4 root
        array([-0.1534, -0.0661])
    """

    #: each example's initial conditions are the Gaussians N(mu, sigma^2) of its Batch's
    #: mu_* and sigma_* (the paper preset): PDE-NHF's likelihood can be trained on them
    gaussian: bool = False

    def __init__(self, name: str, config: PICConfig, params: dict, table: Sequence[Parameter],
                 sample: Callable, rate: Callable | None, description: str,
                 distribution: Callable[[dict], InitialDistribution] | None = None):
        self.name = name
        self.config = config
        self.params = params
        self.table = tuple(table)
        self.description = description
        self._sample = sample
        self._rate = rate
        self._distribution = distribution
        sizes = {v.size for v in params.values() if isinstance(v, np.ndarray)}
        #: the number of examples the per-example parameters describe (None: all scalars)
        self.examples = sizes.pop() if sizes else None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v.tolist() if isinstance(v, np.ndarray) else v!r}"
                         for k, v in self.params.items())
        return f"{self.name}({args})"

    def example_params(self, i: int) -> dict:
        """The parameters of example i: {name: number}."""
        return {k: (float(v[i]) if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}

    def parameter_values(self, examples: int | None = None) -> dict[str, np.ndarray]:
        """Every parameter of examples 0 .. B - 1: {name: float64 array [B]} (None stays None)."""
        b = self._examples(examples)
        return {k: (None if v is None else np.resize(np.asarray(v, dtype=np.float64)[:b]
                                                     if isinstance(v, np.ndarray) else float(v), b))
                for k, v in self.params.items()}

    def _examples(self, examples: int | None, start: int = 0) -> int:
        """B, checked: with per-example parameters of length n, start + B <= n."""
        start = integer("start", start, low=0)
        n = self.examples
        if n is not None and start >= n:
            raise ValueError(f"start must be below {n} (the length of the per-example "
                             f"parameters), got {start!r}")
        if examples is None:
            return 1 if n is None else n - start
        examples = integer("examples", examples, low=1)
        if n is not None and start + examples > n:
            raise ValueError(f"examples must be at most {n - start} (the length of the per-example "
                             f"parameters is {n}, start {start}), got {examples!r}")
        return examples

    def initial_conditions(self, examples: int | None = None, seed: int = 0, quiet: bool = False,
                           device=None, dtype: torch.dtype = torch.float64, start: int = 0) -> Batch:
        """The initial particles of examples start .. start + B - 1.

        Args:
            examples: B; None gives one per per-example parameter value (or 1).
            seed: example i draws from the stream (seed, i), whatever the batch size.
            quiet: evenly spaced positions and van der Corput velocity quantiles instead of
                random draws (the same particles for examples of equal parameters).
            device, dtype: where the tensors live (float32 or float64).
            start: the index i of the first example (its stream and its per-example
                parameters), so that a dataset can draw its examples chunk by chunk; with
                per-example parameters of length n, start + B <= n.

        Returns:
            A Batch: q, p [B, N] (no Gaussian parameters: f0 is ``distribution()``).

        Raises:
            ValueError: for a bad examples, seed, quiet or start.
        """
        b = self._examples(examples, start)
        seed = integer("seed", seed, low=0)
        boolean("quiet", quiet)
        n = self.config.n_particles
        q = np.empty((b, n))
        p = np.empty((b, n))
        for j, i in enumerate(range(start, start + b)):
            rng = None if quiet else np.random.default_rng(np.random.SeedSequence([seed, i]))
            q[j], p[j] = self._sample(n, self.example_params(i), rng)
        kw = dict(device=resolve_device(device), dtype=resolve_dtype(dtype))
        return Batch(torch.from_numpy(q).to(**kw), torch.from_numpy(p).to(**kw))

    def distribution(self, examples: int | None = None, start: int = 0) -> InitialDistribution:
        """f0 of examples start .. start + B - 1: sample(examples, generator) -> Batch and
        log_prob(q, p) -> [B], exact (per-example parameters in order).

        Example:
            >>> import fastvp, torch
            >>> f0 = fastvp.problems.landau(alpha=[0.01, 0.02], particles=64).distribution()
            >>> batch = f0.sample(generator=torch.Generator().manual_seed(0))
            >>> tuple(f0.log_prob(batch.q, batch.p).shape)
            (2,)
        """
        if self._distribution is None:
            raise ValueError(f"the {self.name!r} problem has no initial density")
        if self.examples is None and examples is None:  # shared parameters: any batch size
            return self._distribution(self.example_params(0))
        b = self._examples(examples, start)
        values = self.parameter_values(start + b)
        return self._distribution({k: (v if v is None else v[start:]) for k, v in values.items()})

    def theory(self) -> Rate:
        """The linear theory of the driven mode (mode 1): Rate(gamma, omega), floats or [B].

        Raises:
            NotImplementedError: for a problem without a linear theory (the paper preset).
        """
        if self._rate is None:
            raise NotImplementedError(f"the {self.name!r} problem has no linear theory")
        if self.examples is None:
            return self._rate(self.example_params(0))
        solved: dict[tuple, Rate] = {}  # a scan repeats values: one root search per distinct set
        rates = []
        for i in range(self.examples):
            p = self.example_params(i)
            key = tuple(sorted(p.items()))
            if key not in solved:
                solved[key] = self._rate(p)
            rates.append(solved[key])
        return Rate(np.array([r.gamma for r in rates]), np.array([r.omega for r in rates]))


def kinetic_problem(name: str, table: Sequence[Parameter], values: Mapping,
                    species: Callable[[dict], list[Species]], description: str,
                    interaction: str = "electrostatic") -> Problem:
    """A problem whose plasma is a perturbed mixture of drifting Maxwellians or beams.

    species(params) -> [(n_s, u_s, vth_s), ...] for one example's parameters; the density
    is 1 + alpha cos(k x) (params "k", "alpha"); the theory is the dominant root of the
    kinetic dispersion relation (``dispersion.dominant_root``) with the force's sign.
    """
    params = read_parameters(table, values)
    k = params["k"]
    config = box_config(k, params, interaction)
    sign = config.force_sign

    def sample(n: int, p: dict, rng):
        return sample_example(n, k, p["alpha"], species(p), rng)

    def rate(p: dict) -> Rate:
        omega = dominant_root(k, species(p), sign)
        return Rate(float(omega.imag), float(omega.real))

    def distribution(values: dict) -> PerturbedPlasma:
        if np.ndim(values["alpha"]) == 0:  # shared parameters
            return PerturbedPlasma(config.n_particles, k, values["alpha"], species(values))
        # species of [B] parameters: each (n_s, u_s, vth_s) an array over the examples
        per_example = [species({name: v[i] for name, v in values.items() if v is not None})
                       for i in range(len(values["alpha"]))]
        columns = [tuple(np.array(c) for c in zip(*s)) for s in zip(*per_example)]
        return PerturbedPlasma(config.n_particles, k, values["alpha"], columns)

    return Problem(name, config, params, table, sample, rate, description, distribution)
