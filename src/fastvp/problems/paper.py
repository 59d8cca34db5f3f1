"""The paper's expanding Gaussian (SPEC.md section 2), reached like every other problem.

    q_i ~ N(L/2, sigma_q^2),  p_i ~ N(0, sigma_p^2),  sigma_q, sigma_p ~ U(0.5, 1.5) per example

in the paper's box (L = 128, 128 cells, 256 particles of charge 0.1, q/m = 1, dt = 0.04,
25 steps). A free expansion: no driven mode, no linear theory.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtri

from ..config import PICConfig
from ..initial import Batch, initial_conditions
from ..validation import boolean
from .base import Parameter, Problem, read_parameters
from .sampling import evenly_spaced, van_der_corput

PARAMETERS = (
    Parameter("sigma_q", None, "position spread (default: uniform in [0.5, 1.5] per example)",
              per_example=True, low=0, open_low=True),
    Parameter("sigma_p", None, "momentum spread (default: uniform in [0.5, 1.5] per example)",
              per_example=True, low=0, open_low=True),
)


class PaperProblem(Problem):
    """The paper preset: ``fastvp.initial_conditions`` with this problem's sigmas; quiet
    starts place the particles at Gaussian quantiles instead (positions at evenly spaced
    quantiles, momenta at van der Corput ones). Example i is example i of
    ``fastvp.initial_conditions``, whatever `start` and the batch size select it."""

    gaussian = True

    def initial_conditions(self, examples: int | None = None, seed: int = 0, quiet: bool = False,
                           device=None, dtype: torch.dtype = torch.float64, start: int = 0) -> Batch:
        b = self._examples(examples, start)
        boolean("quiet", quiet)
        sigma = {name: v[start:start + b] if isinstance(v, np.ndarray) else v
                 for name, v in self.params.items()}
        batch = initial_conditions(b, self.config, seed=seed, start=start, device=device,
                                   dtype=dtype, **sigma)
        if quiet:
            n = self.config.n_particles
            zq = torch.from_numpy(ndtri(evenly_spaced(n))).to(batch.q)
            zp = torch.from_numpy(ndtri(van_der_corput(n))).to(batch.p)
            batch.q = batch.mu_q[:, None] + batch.sigma_q[:, None] * zq
            batch.p = batch.mu_p[:, None] + batch.sigma_p[:, None] * zp
        return batch


def paper(sigma_q=None, sigma_p=None) -> Problem:
    """The paper's Gaussian preset (``PICConfig()``) as a Problem.

    ``theory()`` raises NotImplementedError: the expansion has no driven mode.

    Args:
        sigma_q, sigma_p: None (drawn per example as in the paper), a number, or a
            sequence of B numbers.
    Returns:
        A Problem (``.config``, ``.initial_conditions``, ``.theory``).

    Raises:
        ValueError: naming the argument and its value, for a non-positive sigma.

    Example:
        >>> import fastvp, torch
        >>> batch = fastvp.problems.paper().initial_conditions(4, seed=0, device="cpu")
        >>> torch.equal(batch.q, fastvp.initial_conditions(4, seed=0, device="cpu").q)
        True
    """
    params = read_parameters(PARAMETERS, locals())
    return PaperProblem("paper", PICConfig.preset("paper"), params, PARAMETERS, sample=None,
                        rate=None, description="the paper's expanding Gaussian")
