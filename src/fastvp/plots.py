"""Figures of the evaluation report (the paper's Fig. 2 and companions).

Every function builds a ``matplotlib.figure.Figure`` without pyplot (no global state, no
display needed) and writes it with ``save_figure``: the PNG appears complete or not at all.
Arrays are numpy or CPU tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .files import atomic_write

#: One colour per source, the same in every figure.
COLORS = {"PIC": "black", "PDE-NHF": "tab:blue", "baseline": "tab:orange",
          "initial": "0.6", "identity": "0.5"}
STYLES = {"PIC": "-", "PDE-NHF": "--", "baseline": ":", "initial": "-"}


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _figure(nrows: int, ncols: int, width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path) -> Path:
    """Write `fig` as a PNG at `path` atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def _ecdf(ax, x, label: str, **kw) -> None:
    x = np.sort(_np(x))
    y = np.arange(1, x.size + 1) / x.size
    ax.step(x, y, where="post", label=label, color=COLORS.get(label), ls=STYLES.get(label, "-"),
            lw=1.6 if label != "initial" else 1.0, **kw)


def plot_cdfs(samples: Sequence[Mapping[str, tuple]], examples: Sequence[int], t: float):
    """Empirical CDFs (cumulative histograms) of positions (top) and momenta (bottom).

    samples[j]: {source name: (q [N], p [N])} for test example `examples[j]`, e.g. sources
    "initial", "PIC", "PDE-NHF", "baseline"; one column per example.
    """
    fig, axes = _figure(2, len(samples), 3.6, 2.9)
    for j, (srcs, ex) in enumerate(zip(samples, examples, strict=True)):
        for name, (q, p) in srcs.items():
            _ecdf(axes[0, j], q, name)
            _ecdf(axes[1, j], p, name)
        axes[0, j].set(title=f"test example {ex}, t = {t:g}", xlabel="position q",
                       ylabel="cumulative fraction")
        axes[1, j].set(title=f"test example {ex}, t = {t:g}", xlabel="momentum p",
                       ylabel="cumulative fraction")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Cumulative histograms at t = {t:g}: PIC vs surrogates "
                 "(fed PIC's initial particles)")
    return fig


def plot_cdfs_over_time(times: Sequence[float], pic: Sequence[tuple], model: Sequence[tuple],
                        example: int, initial: tuple | None = None):
    """ECDFs of one example at several times, PIC vs PDE-NHF: positions (top), momenta (bottom).

    pic[k], model[k]: (q [N], p [N]) at times[k]; initial: (q0, p0), drawn in grey.
    """
    fig, axes = _figure(2, len(times), 2.7, 2.5)
    for k, t in enumerate(times):
        for i, var in enumerate(("position q", "momentum p")):
            ax = axes[i, k]
            if initial is not None:
                _ecdf(ax, initial[i], "initial")
            _ecdf(ax, pic[k][i], "PIC")
            _ecdf(ax, model[k][i], "PDE-NHF")
            ax.set(title=f"t = {t:g}", xlabel=var)
            ax.grid(alpha=0.3)
        axes[0, k].sharex(axes[0, 0])
        axes[1, k].sharex(axes[1, 0])
    axes[0, 0].set_ylabel("cumulative fraction")
    axes[1, 0].set_ylabel("cumulative fraction")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Test example {example} over time: PIC vs PDE-NHF "
                 f"(only t = {times[-1]:g} was trained)")
    return fig


def plot_phase_space(pic: Sequence[tuple], model: Sequence[tuple], examples: Sequence[int],
                     t: float, initial: Sequence[tuple] | None = None):
    """Phase-space scatter (q, p) of PIC and PDE-NHF at time t, one panel per example."""
    fig, axes = _figure(1, len(pic), 3.8, 3.4)
    for j, ex in enumerate(examples):
        ax = axes[0, j]
        if initial is not None:
            ax.scatter(_np(initial[j][0]), _np(initial[j][1]), s=4, color=COLORS["initial"],
                       alpha=0.5, label="initial (t = 0)")
        ax.scatter(_np(pic[j][0]), _np(pic[j][1]), s=7, color=COLORS["PIC"], label="PIC")
        ax.scatter(_np(model[j][0]), _np(model[j][1]), s=7, facecolors="none",
                   edgecolors=COLORS["PDE-NHF"], lw=0.8, label="PDE-NHF")
        ax.set(title=f"test example {ex}, t = {t:g}", xlabel="position q", ylabel="momentum p")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left", markerscale=2)
    fig.suptitle(f"Phase space at t = {t:g}, same initial particles")
    return fig


def _log_or_linear(ax, values) -> None:
    """Log y axis when the values span a decade or more, else linear (readable ticks)."""
    v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values])
    v = v[v > 0]
    if v.size and v.max() / v.min() >= 10:
        ax.set_yscale("log")


def plot_w1_vs_time(times: Sequence[float], curves: Mapping[str, Mapping[str, tuple]]):
    """Mean W1 (with standard-error bars) against time, positions (left) and momenta (right).

    curves: {source name: {"q": (mean [T], sem [T]), "p": (mean [T], sem [T])}}.
    """
    fig, axes = _figure(1, 2, 4.4, 3.3)
    for i, (var, label) in enumerate((("q", "positions"), ("p", "momenta"))):
        ax = axes[0, i]
        for j, (name, c) in enumerate(curves.items()):
            mean, sem = (np.asarray(v, dtype=float) for v in c[var])
            ax.errorbar(times, mean, yerr=sem, marker="o", ms=4, capsize=3, label=name,
                        color=COLORS.get(name, f"C{j}"))
        _log_or_linear(ax, [c[var][0] for c in curves.values()])
        ax.set(xlabel="time t", ylabel=f"mean W1 of {label}",
               title=f"W1 to PIC, {label}")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Wasserstein-1 distance to PIC over time (test split; only t = T was trained)")
    return fig


def plot_w1_vs_steps(steps: Sequence[int], w1_q, w1_p, ms_per_example,
                     identity: tuple | None = None):
    """W1 at T (left) and sampling time per example (right) against the leapfrog steps K.

    identity: (W1 of positions, of momenta) of the identity prediction, drawn as levels.
    """
    fig, axes = _figure(1, 2, 4.2, 3.2)
    ax = axes[0, 0]
    ax.plot(steps, w1_q, "o-", color="tab:blue", label="PDE-NHF positions")
    ax.plot(steps, w1_p, "s-", color="tab:red", label="PDE-NHF momenta")
    values = [w1_q, w1_p]
    if identity is not None:
        ax.axhline(identity[0], color="tab:blue", ls=":", lw=1, label="identity positions")
        ax.axhline(identity[1], color="tab:red", ls=":", lw=1, label="identity momenta")
        values.append(identity)
    _log_or_linear(ax, values)
    ax.set(xscale="log", xlabel="leapfrog steps K (dt = T/K)", ylabel="mean W1 at T",
           title="Accuracy vs K")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.plot(steps, ms_per_example, "o-", color="tab:green")
    _log_or_linear(ax, ms_per_example)
    ax.set(xscale="log", xlabel="leapfrog steps K", ylabel="wall time per example (ms)",
           title="Sampling time")
    for ax in axes[0]:
        ax.grid(alpha=0.3, which="both")
        ax.set_xticks(list(steps), [str(k) for k in steps])
        ax.set_xticks([], minor=True)
    fig.suptitle("PDE-NHF with fewer leapfrog steps")
    return fig


def plot_demo(initial: tuple, pic: tuple, model: tuple | None, steps: int, t: float,
              n_examples: int):
    """``fastvp demo``'s figure: ECDFs of positions and momenta and the phase space of one
    example at time t, PIC against the surrogate (when `model` is given), all (q [N], p [N])."""
    fig, axes = _figure(1, 3, 4.0, 3.4)
    ax_q, ax_p, ax_ph = axes[0]
    for name, sample in (("initial", initial), ("PIC", pic), ("PDE-NHF", model)):
        if sample is not None:
            _ecdf(ax_q, sample[0], name)
            _ecdf(ax_p, sample[1], name)
    ax_ph.scatter(_np(initial[0]), _np(initial[1]), s=4, color=COLORS["initial"],
                  label="initial (t = 0)")
    ax_ph.scatter(_np(pic[0]), _np(pic[1]), s=7, color=COLORS["PIC"], label="PIC")
    if model is not None:
        ax_ph.scatter(_np(model[0]), _np(model[1]), s=7, facecolors="none",
                      edgecolors=COLORS["PDE-NHF"], lw=0.8, label=f"PDE-NHF (K = {steps})")
    ax_q.set(xlabel="position q", ylabel="cumulative fraction", title=f"positions, t = {t:g}")
    ax_p.set(xlabel="momentum p", ylabel="cumulative fraction", title=f"momenta, t = {t:g}")
    ax_ph.set(xlabel="position q", ylabel="momentum p", title=f"phase space, t = {t:g}")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    who = "PIC vs PDE-NHF" if model is not None else "PIC only (no surrogate weights)"
    fig.suptitle(f"fastvp demo, example 0 of {n_examples}: {who}, same initial particles")
    return fig


def plot_mode_amplitude(t, amplitude, theory_gamma: float, window: tuple[float, float],
                        fit_gamma: float | None = None, title: str = ""):
    """|E_1(t)| on a log scale with the linear-theory slope exp(gamma t) drawn through the
    fit window's first sample, and the window shaded.

    t, amplitude: [S_all]; window: (t_start, t_end) of the fit.
    """
    t, a = _np(t), _np(amplitude)
    fig, axes = _figure(1, 1, 6.0, 3.6)
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
    vs = np.concatenate([_np(v).ravel() for _, v in snapshots])
    lo, hi = np.percentile(vs, [0.05, 99.95])
    pad = 0.05 * (hi - lo) + 1e-12
    fig, axes = _figure(1, len(times), 3.4, 3.0)
    for ax, time, (x, v) in zip(axes[0], times, snapshots):
        f, _, _ = np.histogram2d(_np(x).ravel(), _np(v).ravel(), bins=bins,
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
    fig, axes = _figure(1, 2, 4.2, 3.0)
    for ax, y, name in ((axes[0, 0], energy, "total energy"), (axes[0, 1], momentum, "momentum")):
        ax.plot(_np(t), _np(y), color="black", lw=1.0)
        ax.set(xlabel="time t", ylabel="relative drift", title=name)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "conservation", fontsize=9)
    return fig


def plot_learning_curves(runs: Mapping[str, Sequence[Mapping]]):
    """Validation W1 at T (% of the identity) of training runs against wall time (left)
    and epochs (right); runs: {label: history rows with "epoch", "elapsed",
    "val_w1_q_pct", "val_w1_p_pct"}. Positions solid, momenta dashed."""
    fig, axes = _figure(1, 2, 4.6, 3.4)
    for j, (label, rows) in enumerate(runs.items()):
        rows = [r for r in rows if "val_w1_q_pct" in r]
        hours = [r["elapsed"] / 3600 for r in rows]
        epochs = [r["epoch"] for r in rows]
        for ax, x in ((axes[0, 0], hours), (axes[0, 1], epochs)):
            ax.plot(x, [r["val_w1_q_pct"] for r in rows], "-", color=f"C{j}", label=f"{label}, q")
            ax.plot(x, [r["val_w1_p_pct"] for r in rows], "--", color=f"C{j}", label=f"{label}, p")
    for ax, xlabel in ((axes[0, 0], "wall time (hours)"), (axes[0, 1], "epoch")):
        ax.set(xlabel=xlabel, ylabel="validation W1 at T, % of identity", yscale="log")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Likelihood training from a random start: validation W1 at T")
    return fig
