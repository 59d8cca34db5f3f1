"""Particles of a perturbed, spatially periodic plasma: random or quiet starts.

Positions follow the density n(x) = 1 + alpha cos(k x) on [0, L), L = 2 pi / k, by its
inverse CDF

    F(x) = (x + (alpha / k) sin(k x)) / L,

velocities a mixture of drifting Maxwellians (or cold beams) by the mixture's inverse CDF.
A quiet start feeds both with low-discrepancy numbers instead of random ones: positions
from the evenly spaced u_i = (i + 1/2) / N, velocities from the base-2 van der Corput
sequence w_i (the pairs (u_i, w_i) form a Hammersley set, spread evenly over phase space,
so the sampling noise of the field is far below the random start's ~N^-1/2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

from .dispersion import Species


def evenly_spaced(n: int) -> np.ndarray:
    """u_i = (i + 1/2) / n, i = 0 .. n - 1: [n]."""
    return (np.arange(n, dtype=np.float64) + 0.5) / n


def van_der_corput(n: int) -> np.ndarray:
    """The base-2 radical inverse of i = 0 .. n - 1, shifted by half its finest step so
    that every value lies strictly inside (0, 1): [n]."""
    bits = max(1, math.ceil(math.log2(max(n, 2))))
    i = np.arange(n, dtype=np.uint64)
    out = np.zeros(n, dtype=np.uint64)
    for b in range(bits):
        out |= ((i >> np.uint64(b)) & np.uint64(1)) << np.uint64(bits - 1 - b)
    return (out.astype(np.float64) + 0.5) / 2.0**bits


def perturbed_positions(u: np.ndarray, k: float, alpha: float) -> np.ndarray:
    """x with F(x) = u for the density 1 + alpha cos(k x) (|alpha| < 1), by Newton's method:
    u [...] in [0, 1) -> x [...] in [0, 2 pi / k)."""
    length = 2 * math.pi / k
    x = u * length
    if alpha == 0:
        return x
    target = u * length
    for _ in range(50):
        step = (x + alpha / k * np.sin(k * x) - target) / (1 + alpha * np.cos(k * x))
        x -= step
        if np.max(np.abs(step)) < 1e-14 * length:
            break
    return np.mod(x, length)


def _mixture_cdf(v: np.ndarray, species: Sequence[Species]) -> tuple[np.ndarray, np.ndarray]:
    cdf = np.zeros_like(v)
    pdf = np.zeros_like(v)
    for n, u, vth in species:
        z = (v - u) / vth
        cdf += n * ndtr(z)
        pdf += n * np.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * vth)
    return cdf, pdf


def mixture_velocities(w: np.ndarray, species: Sequence[Species]) -> np.ndarray:
    """v with G(v) = w for the velocity distribution sum_s n_s M(v; u_s, vth_s) (fractions
    n_s summing to 1): w [n] in (0, 1) -> v [n].

    Cold species (vth_s = 0) are beams: all species cold, particle i joins the beam whose
    share of [0, 1) holds w_i. Warm species: the inverse CDF, from a table refined by
    Newton's method.

    Raises:
        ValueError: if cold and warm species are mixed.
    """
    cold = [vth == 0 for _, _, vth in species]
    if all(cold):
        edges = np.cumsum([n for n, _, _ in species])
        idx = np.minimum(np.searchsorted(edges, w * edges[-1], side="right"), len(species) - 1)
        return np.array([u for _, u, _ in species])[idx]
    if any(cold):
        raise ValueError(f"species must be all cold or all warm, got {list(species)!r}")
    lo = min(u - 12 * vth for _, u, vth in species)
    hi = max(u + 12 * vth for _, u, vth in species)
    grid = np.linspace(lo, hi, 8193)
    table, _ = _mixture_cdf(grid, species)
    v = np.interp(w, table, grid)
    for _ in range(4):
        cdf, pdf = _mixture_cdf(v, species)
        v = np.clip(v - (cdf - w) / np.maximum(pdf, 1e-300), lo, hi)
    return v


def sample_example(n: int, k: float, alpha: float, species: Sequence[Species],
                   rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """One example of n particles: (x [n], v [n]); quiet when rng is None, else random
    (positions and velocities independent draws from the same distributions)."""
    if rng is None:
        u, w = evenly_spaced(n), van_der_corput(n)
    else:
        u, w = rng.random(n), rng.random(n)
        w = np.clip(w, 1e-300, None)  # the inverse CDF of a Maxwellian needs w > 0
    return perturbed_positions(u, k, alpha), mixture_velocities(w, species)
