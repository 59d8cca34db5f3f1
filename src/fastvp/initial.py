"""The paper's initial conditions in one call: ``fastvp.initial_conditions``.

A thin, documented form of the paper's problem (``fastvp.problems.paper``, which owns the
Gaussian sampler); ``Batch`` is defined in ``fastvp.particles``.
"""

from __future__ import annotations

import torch

from .config import PICConfig
from .particles import Batch
from .problems.paper import PaperInitial, gaussian_initial_conditions

__all__ = ["Batch", "initial_conditions"]


def initial_conditions(
    n_examples: int,
    config: PICConfig | None = None,
    seed: int = 0,
    sigma_q=None,
    sigma_p=None,
    device=None,
    dtype: torch.dtype = torch.float64,
    start: int = 0,
) -> Batch:
    """Examples start .. start+n_examples-1 of the seeded Gaussian initial conditions.

    q_i ~ N(mu_q, sigma_q^2), p_i ~ N(mu_p, sigma_p^2), i = 1..N, independently;
    sigma_q ~ U(sigma_q_range), sigma_p ~ U(sigma_p_range) per example unless given. Example i is the same
    whatever `n_examples` and `start` select it: datasets can be drawn in chunks. Drawn in
    float64 on the CPU, then cast and moved.

    Args:
        n_examples: B, the number of examples.
        config: the PICConfig giving N (default: the paper's); the Gaussians' family is
            the paper's (``problems.paper(sigma_q_range=...)`` for others), or what the
            config's deprecated keywords (sigma_q_range, ...) say.
        seed: the random stream (an integer >= 0).
        sigma_q, sigma_p: a number or [B] values instead of the uniform draw.
        device, dtype: where the tensors live (float32 or float64).
        start: index of the first example of the stream.

    Returns:
        A Batch: q, p [B, N]; sigma_q, sigma_p, mu_q, mu_p [B].

    Raises:
        ValueError: a bad count, seed, start, sigma, device or dtype (named).

    Example:
        >>> import fastvp
        >>> batch = fastvp.initial_conditions(3, seed=0)
        >>> tuple(batch.q.shape), batch.q.dtype
        ((3, 256), torch.float64)
        >>> bool(((batch.sigma_q >= 0.5) & (batch.sigma_q <= 1.5)).all())
        True
    """
    config = config or PICConfig()
    if not isinstance(config, PICConfig):
        raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
    return gaussian_initial_conditions(n_examples, config, PaperInitial.of(config), seed=seed,
                                       sigma_q=sigma_q, sigma_p=sigma_p, device=device,
                                       dtype=dtype, start=start)
