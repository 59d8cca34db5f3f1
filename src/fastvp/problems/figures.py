"""Figures of the physics check (``problems/check.py``): the mode-1 amplitude against linear
theory, the phase-space density f(x, v) and the conservation drifts of one run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..plots import as_numpy, subplots


def plot_mode_amplitude(t, amplitude, theory_gamma: float, window: tuple[float, float],
                        fit_gamma: float | None = None, title: str = ""):
    """|E_1(t)| on a log scale with the linear-theory slope exp(gamma t) drawn through the
    fit window's first sample, and the window shaded.

    t, amplitude: [S_all]; window: (t_start, t_end) of the fit.
    """
    t, a = as_numpy(t), as_numpy(amplitude)
    fig, axes = subplots(1, 1, 6.0, 3.6)
    ax = axes[0, 0]
    ax.semilogy(t, a, color="black", lw=1.2, label="PIC |E_1|")
    i0 = int(np.searchsorted(t, window[0]))
    tw = t[(t >= window[0]) & (t <= window[1])]
    ax.axvspan(*window, color="tab:blue", alpha=0.08, label="fit window")
    label = f"theory, gamma = {theory_gamma:.4f}"
    ax.semilogy(t, a[i0] * np.exp(theory_gamma * (t - t[i0])), "--", color="tab:red", lw=1.2, label=label)
    if fit_gamma is not None and tw.size:
        ax.semilogy(tw, a[i0] * np.exp(fit_gamma * (tw - t[i0])), ":", color="tab:blue", lw=2,
                    label=f"fit, gamma = {fit_gamma:.4f}")
    positive = a[a > 0]
    if positive.size:
        ax.set_ylim(positive.min() / 2, positive.max() * 3)
    ax.set(xlabel="time t (1 / omega_p)", ylabel="|E_1|")
    ax.set_title(title or "mode 1 amplitude", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def plot_phase_space_density(times: Sequence[float], snapshots: Sequence[tuple], box_length: float,
                             perturbation: bool = False, bins: int = 128, title: str = ""):
    """f(x, v) as 2-D histograms, one panel per time; perturbation: f - <f>_x (the
    x-average removed, which shows the filamentation of a damped wave).

    snapshots[k]: (x [N], v [N]) of one example at times[k].
    """
    vs = np.concatenate([as_numpy(v).ravel() for _, v in snapshots])
    lo, hi = np.percentile(vs, [0.05, 99.95])
    pad = 0.05 * (hi - lo) + 1e-12
    fig, axes = subplots(1, len(times), 3.4, 3.0)
    for ax, time, (x, v) in zip(axes[0], times, snapshots):
        f, _, _ = np.histogram2d(as_numpy(x).ravel(), as_numpy(v).ravel(), bins=bins,
                                 range=[[0, box_length], [lo - pad, hi + pad]])
        f = f.T / max(f.sum(), 1)
        if perturbation:
            f = f - f.mean(axis=1, keepdims=True)
            scale = np.abs(f).max() or 1.0
            kw = dict(cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            kw = dict(cmap="viridis")
        ax.imshow(f, origin="lower", aspect="auto", extent=[0, box_length, lo - pad, hi + pad], **kw)
        ax.set(title=f"t = {time:g}", xlabel="x", ylabel="v")
    fig.suptitle(f"{'f(x, v) - <f>_x' if perturbation else 'f(x, v)'}  {title}", fontsize=9)
    return fig


def plot_conservation(t, energy, momentum, title: str = ""):
    """Relative drift of the total energy and momentum against time: [S_all] each."""
    fig, axes = subplots(1, 2, 4.2, 3.0)
    for ax, y, name in ((axes[0, 0], energy, "total energy"), (axes[0, 1], momentum, "momentum")):
        ax.plot(as_numpy(t), as_numpy(y), color="black", lw=1.0)
        ax.set(xlabel="time t", ylabel="relative drift", title=name)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "conservation", fontsize=9)
    return fig


def plot_scan(parameter: str, values, gamma, omega, theory_x, theory_gamma, theory_omega,
              title: str = ""):
    """Fitted gamma and omega of a scan against the scanned parameter, with theory's curve.

    values, gamma, omega: [P] (NaN: a point not fitted); theory_*: [Q], a finer grid.
    """
    fig, axes = subplots(1, 2, 4.2, 3.2)
    for ax, fitted, theory, name in ((axes[0, 0], gamma, theory_gamma, "gamma"),
                                     (axes[0, 1], omega, theory_omega, "omega")):
        ax.plot(as_numpy(theory_x), as_numpy(theory), "-", color="tab:red", lw=1.2,
                label="linear theory")
        ax.plot(as_numpy(values), as_numpy(fitted), "o", color="black", ms=5, label="PIC fit")
        ax.set(xlabel=parameter, ylabel=name, title=f"{name} against {parameter}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or f"scan of {parameter}", fontsize=9)
    return fig
