"""Growth (or damping) rate and frequency of a field mode, fitted on its linear stage.

The model is the field amplitude of one mode, |E_m(t)| ~ exp(gamma t), from the
diagnostics that ``simulate(..., diagnostics=True)`` records at every step:

* a standing wave (two counter-propagating waves of one |omega|, as a density ripple of a
  symmetric plasma makes) has |E_m| ~ exp(gamma t) |cos(omega t + phi)|: its maxima are
  pi / omega apart and lie on exp(gamma t), so gamma is the slope of log(maximum) against
  time and omega = pi / (spacing of the maxima);
* otherwise (one wave dominates, or a purely growing mode) gamma is the slope of
  log |E_m| and omega = -d(phase)/dt, the wave being cos(k x + phase) = cos(k x - omega t).

The window is the linear stage: for a growing mode, the last climb from a quarter of the
way (in log) from its starting amplitude to its largest, to a quarter of the way below
that maximum; for a damped or steady one, from the first maximum after t = 0 to the last
maximum before one that does not decrease (the noise floor). ``t_min`` / ``t_max``
override either end.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..arguments import integer, number
from .base import Rate

#: a growing mode rises past this factor over its starting amplitude
GROWTH_FACTOR = 10.0
#: fraction of the log rise cut at each end of a growing mode's window
EDGE_FRACTION = 0.25
#: troughs below this fraction of the neighbouring maxima make a standing wave
STANDING_DEPTH = 0.5


def _peaks(y: np.ndarray) -> np.ndarray:
    """Indices of the interior local maxima of y [S]."""
    i = np.arange(1, y.size - 1)
    return i[(y[i] > y[i - 1]) & (y[i] >= y[i + 1])]


def _refine(t: np.ndarray, logy: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Time and height of each maximum from the parabola through its three samples."""
    a, b, c = logy[idx - 1], logy[idx], logy[idx + 1]
    den = a - 2 * b + c
    shift = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
    dt = t[1] - t[0]
    return t[idx] + shift * dt, b - 0.25 * (a - c) * shift


def _window(t: np.ndarray, amp: np.ndarray, t_min, t_max) -> tuple[int, int]:
    """First and last index (inclusive) of the linear stage."""
    logy = np.log(np.maximum(amp, np.finfo(float).tiny))
    top = int(np.argmax(amp))
    if amp[top] > GROWTH_FACTOR * amp[0]:
        # the last climb from the starting level to the first maximum, both ends trimmed
        span = logy[top] - logy[0]
        below = np.flatnonzero(logy[:top] < logy[0] + EDGE_FRACTION * span)
        lo = int(below[-1]) + 1 if below.size else 0
        above = np.flatnonzero(logy[lo:top + 1] > logy[top] - EDGE_FRACTION * span)
        hi = lo + int(above[0]) - 1 if above.size else top
    else:
        peaks = _peaks(logy)
        lo, hi = 0, t.size - 1
        if peaks.size >= 2:
            lo = int(peaks[0])
            if logy[peaks[0]] - logy[peaks].min() > 1.0:
                # decayed: stop at the last maximum before one that does not decrease (the
                # noise floor, or nonlinear trapping, has taken over)
                rises = np.flatnonzero(np.diff(logy[peaks]) >= 0)
                hi = int(peaks[rises[0]] if rises.size else peaks[-1])
    if t_min is not None:
        lo = int(np.searchsorted(t, t_min, side="left"))
    if t_max is not None:
        hi = int(np.searchsorted(t, t_max, side="right")) - 1
    return lo, hi


def _fit_one(t: np.ndarray, amp: np.ndarray, phase: np.ndarray, t_min, t_max) -> Rate:
    lo, hi = _window(t, amp, t_min, t_max)
    if hi - lo < 2:
        raise ValueError(f"the fit window [{t[lo]:g}, {t[min(hi, t.size - 1)]:g}] holds fewer than "
                         "3 steps: set t_min and t_max")
    logy = np.log(np.maximum(amp, np.finfo(float).tiny))
    peaks = _peaks(logy)
    peaks = peaks[(peaks >= lo) & (peaks <= hi)]
    if peaks.size >= 3:
        troughs = np.array([amp[p:q].min() for p, q in zip(peaks[:-1], peaks[1:])])
        depth = np.median(troughs / np.minimum(amp[peaks[:-1]], amp[peaks[1:]]))
        if depth < STANDING_DEPTH:
            tp, yp = _refine(t, logy, peaks)
            gamma = np.polyfit(tp, yp, 1)[0]
            spacing = np.polyfit(np.arange(tp.size), tp, 1)[0]
            return Rate(float(gamma), float(math.pi / spacing))
    ts = t[lo:hi + 1]
    gamma = np.polyfit(ts, logy[lo:hi + 1], 1)[0]
    omega = -np.polyfit(ts, np.unwrap(phase[lo:hi + 1]), 1)[0]
    return Rate(float(gamma), float(omega))


def _series(traj, mode: int, example: int | None, t_min, t_max):
    """Checked arguments -> (t [S_all], amplitudes [S_all, b], phases [S_all, b]) as numpy."""
    diag = getattr(traj, "diagnostics", traj)
    if diag is None or not hasattr(diag, "modes"):
        raise ValueError("traj must come from simulate(..., diagnostics=True), got "
                         f"{type(traj).__name__} without diagnostics")
    n_modes, n_examples = diag.modes.shape[2], diag.modes.shape[1]
    mode = integer("mode", mode, low=1, high=n_modes - 1)
    for name, value in (("t_min", t_min), ("t_max", t_max)):
        if value is not None:
            number(name, value, low=0.0)
    if t_min is not None and t_max is not None and t_max <= t_min:
        raise ValueError(f"t_max must be > t_min, got t_min={t_min!r}, t_max={t_max!r}")
    picks = slice(None)
    if example is not None:
        i = integer("example", example, low=0, high=n_examples - 1)
        picks = slice(i, i + 1)

    def host(x: torch.Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float64).numpy()

    return host(diag.t), host(diag.modes[:, picks, mode]), host(diag.phases[:, picks, mode])


def fit_rate(traj, mode: int = 1, t_min: float | None = None, t_max: float | None = None,
             example: int | None = None) -> Rate:
    """Fit Rate(gamma, omega) of the field amplitude |E_mode(t)| ~ exp(gamma t) on its
    linear stage (the module docstring tells how the window and the model are chosen).

    Args:
        traj: a Trajectory from ``simulate(..., diagnostics=True)``, or its Diagnostics.
        mode: the Fourier mode, 1 .. M - 1 (the driven mode of every problem is 1).
        t_min, t_max: override the start / end of the window (times).
        example: fit this example only.
    Returns:
        Rate of floats for one example (or `example` given), else of [B] arrays.
    Raises:
        ValueError: for a trajectory without diagnostics, a bad mode, example or window.

    Example:
        >>> import fastvp
        >>> prob = fastvp.problems.plasma_oscillation(particles=1024, steps=400)
        >>> batch = prob.initial_conditions(quiet=True)
        >>> traj = fastvp.simulate(batch, prob.config, diagnostics=True)
        >>> rate = fastvp.problems.fit_rate(traj)
        >>> round(rate.omega, 2), abs(rate.gamma) < 1e-3      # theory: omega_p = 1, gamma = 0
        (1.0, True)
    """
    t, amp, phase = _series(traj, mode, example, t_min, t_max)
    rates = [_fit_one(t, amp[:, i], phase[:, i], t_min, t_max) for i in range(amp.shape[1])]
    if len(rates) == 1:
        return rates[0]
    return Rate(np.array([r.gamma for r in rates]), np.array([r.omega for r in rates]))


def fit_window(traj, mode: int = 1, t_min: float | None = None, t_max: float | None = None,
               example: int = 0) -> tuple[float, float]:
    """The (start, end) times of the window ``fit_rate`` uses for one example.

    Raises:
        ValueError: as ``fit_rate``.
    """
    t, amp, _ = _series(traj, mode, example, t_min, t_max)
    lo, hi = _window(t, amp[:, 0], t_min, t_max)
    return float(t[lo]), float(t[hi])
