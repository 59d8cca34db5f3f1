"""Linear theory of electrostatic (and gravitational) waves in a 1D Vlasov plasma.

For species s of density fraction n_s (sum n_s = 1), drift u_s and thermal speed vth_s,
in units where the total plasma frequency is 1 (the Jeans frequency under gravity), a
perturbation exp(i (k x - omega t)) of the field obeys eps(k, omega) = 0 with

    eps = 1 + g sum_s n_s / (k vth_s)^2 [1 + zeta_s Z(zeta_s)],   zeta_s = (omega - k u_s) / (sqrt(2) k vth_s)

(g = +1 electrostatic, -1 gravitational; Z the plasma dispersion function,
Z(zeta) = i sqrt(pi) w(zeta) with w the Faddeeva function, analytic in the whole plane,
which is Landau's continuation), and for a cold species (vth_s = 0) the term
-g n_s / (omega - k u_s)^2 instead. Im(omega) = gamma is the growth rate of the field
amplitude |E_k(t)| ~ exp(gamma t).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import wofz

SQRT2 = math.sqrt(2.0)
SQRT_PI = math.sqrt(math.pi)

#: A species: (density fraction n_s, drift u_s, thermal speed vth_s >= 0).
Species = tuple[float, float, float]


def plasma_z(zeta):
    """Z(zeta) = i sqrt(pi) w(zeta), the plasma dispersion function (complex array in, out)."""
    return 1j * SQRT_PI * wofz(zeta)


#: |zeta| beyond which 1 + zeta Z(zeta) comes from its asymptotic series (Im zeta >= 0)
ASYMPTOTIC = 15.0
#: (2n - 1)!! / 2^n, n = 1 .. 7: 1 + zeta Z ~ -sum_n c_n zeta^(-2n) for large zeta
_SERIES = np.array([0.5, 0.75, 1.875, 6.5625, 29.53125, 162.421875, 1055.7421875])


def response(zeta):
    """R(zeta) = 1 + zeta Z(zeta) and R'(zeta) = Z - 2 zeta R: a pair of complex arrays.

    Far out (|zeta| > ASYMPTOTIC), where 1 + zeta Z cancels to ~ -1 / (2 zeta^2) and a
    cold species' huge prefactor 1 / (k vth)^2 would amplify the rounding of w(zeta), both
    come from the asymptotic series instead, wherever its Landau term
    i sigma sqrt(pi) zeta exp(-zeta^2) is negligible: above the real axis (sigma = 0),
    or below it with Re(zeta^2) > 750 (|exp(-zeta^2)| < 1e-325).
    """
    zeta = np.asarray(zeta, dtype=complex)
    z = plasma_z(zeta)
    r = 1 + zeta * z
    dr = z - 2 * zeta * r
    far = (np.abs(zeta) > ASYMPTOTIC) & ((zeta.imag >= 0) | ((zeta * zeta).real > 750))
    if far.any():
        inv2 = 1 / zeta[far] ** 2
        powers = inv2[:, None] ** np.arange(1, _SERIES.size + 1)
        r[far] = -(powers * _SERIES).sum(axis=1)
        dr[far] = (powers * _SERIES * 2 * np.arange(1, _SERIES.size + 1)).sum(axis=1) / zeta[far]
    return r, dr


def dielectric(omega, k: float, species: Sequence[Species], sign: float = 1.0):
    """eps(k, omega) and d eps / d omega for complex omega (any shape): a pair of arrays."""
    omega = np.asarray(omega, dtype=complex)
    eps = np.ones_like(omega)
    deps = np.zeros_like(omega)
    for n, u, vth in species:
        shifted = omega - k * u
        if vth == 0:
            eps -= sign * n / shifted**2
            deps += 2 * sign * n / shifted**3
            continue
        scale = SQRT2 * k * vth
        resp, dresp = response(shifted / scale)
        eps += sign * n / (k * vth) ** 2 * resp
        deps += sign * n / (k * vth) ** 2 * dresp / scale
    return eps, deps


def _guesses(k: float, species: Sequence[Species]) -> np.ndarray:
    """Starting points of Newton's method covering the waves such a plasma carries."""
    speed = max(abs(u) + 4 * vth for _, u, vth in species)
    top = k * speed + 3.0
    re = np.linspace(-top, top, 41)
    im = np.array([-1.0, -0.4, -0.1, 0.02, 0.2, 0.6, 1.5])
    return (re[:, None] + 1j * im[None, :]).ravel()


def roots(k: float, species: Sequence[Species], sign: float = 1.0, iterations: int = 80) -> np.ndarray:
    """The distinct roots omega of eps(k, omega) = 0 that Newton's method reaches from a
    grid of starting points: complex array, sorted by decreasing Im(omega)."""
    w = _guesses(k, species)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            eps, deps = dielectric(w, k, species, sign)
            step = np.where(np.isfinite(eps / deps), eps / deps, 0)
            w = w - step
        eps, _ = dielectric(w, k, species, sign)
        # |eps| against the size of its terms, which carry their rounding (a cold term's
        # pole, where Newton's steps also shrink, is no root: its term is infinite)
        scale = 1 + sum(np.abs(n / (k * vth) ** 2 * response((w - k * u) / (SQRT2 * k * vth))[0])
                        if vth > 0 else n / np.abs(w - k * u) ** 2 for n, u, vth in species)
    reach = 10 * np.abs(_guesses(k, species)).max()
    ok = (np.isfinite(w) & np.isfinite(eps) & (np.abs(eps) < 1e-8 * scale) & (np.abs(w) < reach)
          & (np.abs(step) < 1e-9 * np.maximum(1.0, np.abs(w))))
    found: list[complex] = []
    for z in w[ok]:
        if all(abs(z - f) > 1e-7 * max(1.0, abs(z)) for f in found):
            found.append(complex(z))
    return np.array(sorted(found, key=lambda z: (-z.imag, -z.real)), dtype=complex)


def dominant_root(k: float, species: Sequence[Species], sign: float = 1.0) -> complex:
    """The root of largest Im(omega) (the least damped or fastest growing wave); among
    roots of equal Im(omega) the one of largest Re(omega). Real parts below 1e-10 of the
    scale are set to 0 (a purely growing mode).

    Raises:
        ValueError: if no root is found.
    """
    found = roots(k, species, sign)
    if found.size == 0:
        raise ValueError(f"no root of the dispersion relation found for k={k!r}, species={species!r}")
    best = found[np.abs(found.imag - found[0].imag) <= 1e-9 * max(1.0, abs(found[0]))]
    omega = best[np.argmax(best.real)]
    if abs(omega.real) < 1e-10 * max(1.0, abs(omega)):
        omega = complex(0.0, omega.imag)
    return omega


def cold_two_stream_rate(k: float, v0: float) -> float:
    """Growth rate of two equal cold beams at +-v0 (total omega_p = 1):

        gamma^2 = [sqrt(1 + 8 a^2) - (1 + 2 a^2)] / 2,  a = k v0,

    positive for a < 1, largest, 1 / (2 sqrt 2), at a^2 = 3 / 8; 0 for a >= 1.
    """
    a2 = (k * v0) ** 2
    return math.sqrt(max(0.0, 0.5 * (math.sqrt(1 + 8 * a2) - (1 + 2 * a2))))
