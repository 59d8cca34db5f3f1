"""Growth (or damping) rate and frequency of a field mode, fitted on its linear stage,
with the fit's quality and the particle-noise floor it is measured against.

The model is the field amplitude of one mode, |E_m(t)| ~ exp(gamma t), from the
diagnostics that ``simulate(..., diagnostics=True)`` records at every step:

* a standing wave (two counter-propagating waves of one |omega|, as a density ripple of a
  symmetric plasma makes) has |E_m| ~ exp(gamma t) |cos(omega t + phi)|: its maxima are
  pi / omega apart and lie on exp(gamma t), so gamma is the slope of log(maximum) against
  time and omega = pi / (spacing of the maxima);
* otherwise (one wave dominates, or a purely growing mode) gamma is the slope of
  log |E_m| and omega = -d(phase)/dt, the wave being cos(k x + phase) = cos(k x - omega t).

The noise floor of mode m at time t is what the particles' sampling noise puts in the
modes the perturbation does not drive, rescaled to mode m (the density noise is flat in
m, the field is the density over i k_m):

    floor_m(t) = sqrt(mean_{m' != m, m' >= 1} (m' |E_m'(t)| / m)^2).

The window is the linear stage: for a growing mode, the last climb from a quarter of the
way (in log) from its starting amplitude to its largest, to a quarter of the way below
that maximum; for a damped or steady one, from the first maximum after t = 0 to the last
maximum before one that does not decrease or that lies below NOISE_MARGIN x the floor.
``t_min`` / ``t_max`` override either end. A fit is reliable when its window holds
MIN_POINTS steps and an oscillating mode's full period, the fitted amplitude stays above
NOISE_MARGIN x the floor in it, and log |E_m| (or its maxima) deviates from the fitted line
by at most MAX_RESIDUAL (rms); an unreliable fit issues a ``FitWarning`` saying why.
"""

from __future__ import annotations

import math
import warnings

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
#: a reliable fit keeps the mode this many times above its noise floor
NOISE_MARGIN = 10.0
#: the fewest steps in a reliable window
MIN_POINTS = 8
#: the largest rms deviation of log |E_m| (or of its maxima) from a reliable fit's line
MAX_RESIDUAL = 0.1


class FitWarning(UserWarning):
    """``fit_rate``'s fit is not reliable: the message says why."""


class Fit(Rate):
    """Rate(gamma, omega) fitted on the linear stage (it unpacks as gamma, omega), with the
    fit's quality as attributes: floats for one example, [B] arrays (reason: a list) for a
    batch.

    r2: R^2 of the straight line in log |E_m| (of the maxima for a standing wave);
    residual: rms deviation from that line (in log); points: steps in the window;
    window: (t_start, t_end) ([B, 2] for a batch); noise_floor: the mode's particle-noise
    floor where it is weakest in the window (module docstring); reliable: True or False;
    reason: why not ("" when reliable).
    """

    _extra = ("r2", "residual", "points", "window", "noise_floor", "reliable", "reason")

    def __new__(cls, gamma, omega, r2=math.nan, residual=math.nan, points=0,
                window=(math.nan, math.nan), noise_floor=math.nan, reliable=False, reason=""):
        self = super().__new__(cls, gamma, omega)
        for name, value in zip(cls._extra, (r2, residual, points, window, noise_floor,
                                            reliable, reason)):
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name, value):
        raise AttributeError(f"a Fit is read-only, cannot set {name}")

    def __reduce__(self):
        return (Fit, (*self, *(getattr(self, n) for n in self._extra)))

    def __repr__(self) -> str:
        extra = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._extra)
        return f"Fit(gamma={self.gamma!r}, omega={self.omega!r}, {extra})"


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


def _log(y: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(y, np.finfo(float).tiny))


def _window(t: np.ndarray, amp: np.ndarray, floor: np.ndarray, t_min, t_max) -> tuple[int, int]:
    """First and last index (inclusive) of the linear stage; amp, floor [S]."""
    logy = _log(amp)
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
            last = peaks.size - 1
            if logy[peaks[0]] - logy[peaks].min() > 1.0:
                # decayed: stop at the last maximum before one that does not decrease (the
                # noise floor, or nonlinear trapping, has taken over)
                rises = np.flatnonzero(np.diff(logy[peaks]) >= 0)
                last = int(rises[0]) if rises.size else last
            # ... and before a maximum down in the noise (keeping two maxima)
            noisy = np.flatnonzero(amp[peaks] < NOISE_MARGIN * floor[peaks])
            noisy = noisy[noisy >= 2]
            if noisy.size and noisy[0] - 1 < last:
                last = int(noisy[0]) - 1
            if last < peaks.size - 1 or logy[peaks[0]] - logy[peaks].min() > 1.0:
                hi = int(peaks[last])
    if t_min is not None:
        lo = int(np.searchsorted(t, t_min, side="left"))
    if t_max is not None:
        hi = int(np.searchsorted(t, t_max, side="right")) - 1
    return lo, hi


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """The least-squares line y ~ slope x + icept: (slope, icept, R^2, rms residual)."""
    slope, icept = np.polyfit(x, y, 1)
    res = y - (slope * x + icept)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(res ** 2)) / total if total > 0 else math.nan
    return float(slope), float(icept), r2, float(np.sqrt(np.mean(res ** 2)))


def _fit_one(t: np.ndarray, amp: np.ndarray, phase: np.ndarray, floor: np.ndarray,
             t_min, t_max, mode: int) -> Fit:
    """The Fit of one example: t, amp, phase, floor [S_all]."""
    lo, hi = _window(t, amp, floor, t_min, t_max)
    if hi - lo < 2:
        raise ValueError(f"the fit window [{t[lo]:g}, {t[min(hi, t.size - 1)]:g}] holds fewer than "
                         "3 steps: set t_min and t_max")
    logy = _log(amp)
    peaks = _peaks(logy)
    peaks = peaks[(peaks >= lo) & (peaks <= hi)]
    standing = False
    if peaks.size >= 3:
        troughs = np.array([amp[p:q].min() for p, q in zip(peaks[:-1], peaks[1:])])
        standing = np.median(troughs / np.minimum(amp[peaks[:-1]], amp[peaks[1:]])) < STANDING_DEPTH
    if standing:
        tp, yp = _refine(t, logy, peaks)
        gamma, icept, r2, residual = _line(tp, yp)
        omega = math.pi / np.polyfit(np.arange(tp.size), tp, 1)[0]
    else:
        ts = t[lo:hi + 1]
        gamma, icept, r2, residual = _line(ts, logy[lo:hi + 1])
        omega = -float(np.polyfit(ts, np.unwrap(phase[lo:hi + 1]), 1)[0])
    window = (float(t[lo]), float(t[hi]))
    ends = np.array([lo, hi])
    fitted = np.exp(gamma * t[ends] + icept)
    weakest = int(np.argmin(fitted / np.maximum(floor[ends], np.finfo(float).tiny)))
    reasons = _reasons(mode, window, hi - lo + 1, gamma, omega, residual,
                       float(fitted[weakest]), float(floor[ends[weakest]]), window[weakest])
    return Fit(float(gamma), float(omega), r2, residual, hi - lo + 1, window,
               float(floor[ends[weakest]]), not reasons, "; ".join(reasons))


def _reasons(mode: int, window, points: int, gamma: float, omega: float, residual: float,
             amplitude: float, floor: float, at: float) -> list[str]:
    """Why a fit is not reliable (empty: it is), in words."""
    out = []
    if amplitude < NOISE_MARGIN * floor:
        out.append(f"mode at the noise floor: the fitted |E_{mode}| is {amplitude:.2g} at t = "
                   f"{at:g}, {amplitude / floor:.2g}x its particle-noise floor {floor:.2g} (below "
                   f"{NOISE_MARGIN:g}x: more particles, a quiet start or a larger perturbation)")
    span = window[1] - window[0]
    if points < MIN_POINTS or (abs(omega) > abs(gamma) and abs(omega) * span < 2 * math.pi):
        out.append(f"window too short: t = {window[0]:g} .. {window[1]:g} ({points} steps"
                   + (f", {abs(omega) * span / (2 * math.pi):.2g} periods)" if omega else ")"))
    if residual > MAX_RESIDUAL:
        out.append(f"no exponential stage: log |E_{mode}| deviates from the fitted line by "
                   f"{residual:.2g} rms (over {MAX_RESIDUAL:g})")
    return out


def noise_floor(modes: np.ndarray, mode: int) -> np.ndarray:
    """The particle-noise floor of `mode` (module docstring) from the amplitudes of all
    modes: modes [S_all, B, M] -> [S_all, B] (zeros without another mode)."""
    others = [m for m in range(1, modes.shape[-1]) if m != mode]
    if not others:
        return np.zeros(modes.shape[:-1])
    scaled = modes[..., others] * (np.array(others, dtype=np.float64) / mode)
    return np.sqrt(np.mean(scaled ** 2, axis=-1))


def _series(traj, mode: int, example: int | None, t_min, t_max):
    """Checked arguments -> (t [S_all], amplitudes, phases, noise floors [S_all, b]) as numpy."""
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

    modes = host(diag.modes[:, picks])
    return host(diag.t), modes[..., mode], host(diag.phases[:, picks, mode]), noise_floor(modes, mode)


def fit_rate(traj, mode: int = 1, t_min: float | None = None, t_max: float | None = None,
             example: int | None = None) -> Fit:
    """Fit gamma and omega of the field amplitude |E_mode(t)| ~ exp(gamma t) on its linear
    stage, with the fit's quality (the module docstring tells how the window, the model
    and the noise floor are chosen).

    Args:
        traj: a Trajectory from ``simulate(..., diagnostics=True)``, or its Diagnostics.
        mode: the Fourier mode, 1 .. M - 1 (the driven mode of every problem is 1).
        t_min, t_max: override the start / end of the window (times).
        example: fit this example only.
    Returns:
        A Fit (a Rate: ``gamma, omega = fit_rate(traj)``) of floats for one example (or
        `example` given), else of [B] arrays; ``.reliable``, ``.reason``, ``.r2``,
        ``.residual``, ``.points``, ``.window``, ``.noise_floor`` tell its quality.
    Warns:
        FitWarning: when a fit is not reliable, saying why (mode at the noise floor,
            window too short, no exponential stage).
    Raises:
        ValueError: for a trajectory without diagnostics, a bad mode, example or window.

    Example:
        >>> import fastvp
        >>> prob = fastvp.problems.plasma_oscillation(particles=1024, steps=400)
        >>> batch = prob.initial_conditions(quiet=True)
        >>> traj = fastvp.simulate(batch, prob.config, diagnostics=True)
        >>> rate = fastvp.problems.fit_rate(traj)
        >>> round(rate.omega, 2), abs(rate.gamma) < 1e-3, rate.reliable   # theory: omega_p = 1, gamma = 0
        (1.0, True, True)
    """
    t, amp, phase, floor = _series(traj, mode, example, t_min, t_max)
    fits = [_fit_one(t, amp[:, i], phase[:, i], floor[:, i], t_min, t_max, mode)
            for i in range(amp.shape[1])]
    bad = [(i, f.reason) for i, f in enumerate(fits) if not f.reliable]
    if bad:
        where = [reason if len(fits) == 1 else f"example {example if example is not None else i}: "
                 f"{reason}" for i, reason in bad]
        warnings.warn(FitWarning(f"the fit of mode {mode} is not reliable: " + " | ".join(where)),
                      stacklevel=2)
    if len(fits) == 1:
        return fits[0]
    columns = {n: [getattr(f, n) for f in fits] for n in Fit._extra}
    return Fit(np.array([f.gamma for f in fits]), np.array([f.omega for f in fits]),
               **{n: (v if n == "reason" else np.array(v)) for n, v in columns.items()})


def fit_window(traj, mode: int = 1, t_min: float | None = None, t_max: float | None = None,
               example: int = 0) -> tuple[float, float]:
    """The (start, end) times of the window ``fit_rate`` uses for one example.

    Raises:
        ValueError: as ``fit_rate``.
    """
    t, amp, _, floor = _series(traj, mode, example, t_min, t_max)
    lo, hi = _window(t, amp[:, 0], floor[:, 0], t_min, t_max)
    return float(t[lo]), float(t[hi])


def growth_window(traj, mode: int = 1, e_folds: float = 3.0, example: int = 0) -> tuple[float, float]:
    """The window of a growing mode that learned-solver benchmarks fit: the `e_folds`
    e-folds of |E_mode| before it first comes within a factor e of its largest value,

        t_end = min{t : |E(t)| >= max |E| / e},  t_start = max{t < t_end : |E(t)| <= |E(t_end)| e^-e_folds},

    for ``fit_rate(traj, mode, t_min=t_start, t_max=t_end)``: one convention for PIC and a
    surrogate's samples alike.

    Raises:
        ValueError: as ``fit_rate``, for e_folds <= 0, or when the mode does not grow by
            `e_folds` e-folds before it nears its peak (a larger run or a smaller seed).
    """
    number("e_folds", e_folds, low=0.0)
    if e_folds <= 0:
        raise ValueError(f"e_folds must be > 0, got {e_folds!r}")
    t, amp, _, _ = _series(traj, mode, example, None, None)
    amp = amp[:, 0]
    end = int(np.flatnonzero(amp >= amp.max() / math.e)[0])
    below = np.flatnonzero(amp[:end] <= amp[end] * math.exp(-e_folds))
    if not below.size:
        grown = math.log(amp[end] / max(amp[:end + 1].min(), np.finfo(float).tiny))
        raise ValueError(f"mode {mode} of example {example} grows by {grown:.2g} e-folds before it "
                         f"comes within a factor e of its peak (t = {t[end]:g}), not {e_folds:g}: "
                         "a smaller seed or a longer run")
    return float(t[below[-1]]), float(t[end])

