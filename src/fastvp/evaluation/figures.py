"""Figures of the evaluation report (the paper's Fig. 2 and companions) and of ``fastvp demo``.

Every ``plot_*`` function builds a ``matplotlib.figure.Figure`` (``fastvp.plots``: no pyplot,
matplotlib imported when a figure is made); ``write_figures`` draws the report's figures
from the results and the figure samples and writes them. Arrays are numpy or CPU tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..plots import as_numpy, save_figure, subplots
from .inputs import Split
from .sampling import FIGURE_EXAMPLES

#: One colour per source, the same in every figure.
COLORS = {"PIC": "black", "PDE-NHF": "tab:blue", "baseline": "tab:orange",
          "initial": "0.6", "identity": "0.5"}
STYLES = {"PIC": "-", "PDE-NHF": "--", "baseline": ":", "initial": "-"}


def _ecdf(ax, x, label: str, **kw) -> None:
    x = np.sort(as_numpy(x))
    y = np.arange(1, x.size + 1) / x.size
    ax.step(x, y, where="post", label=label, color=COLORS.get(label), ls=STYLES.get(label, "-"),
            lw=1.6 if label != "initial" else 1.0, **kw)


def plot_cdfs(samples: Sequence[Mapping[str, tuple]], examples: Sequence[int], t: float):
    """Empirical CDFs (cumulative histograms) of positions (top) and momenta (bottom).

    samples[j]: {source name: (q [N], p [N])} for test example `examples[j]`, e.g. sources
    "initial", "PIC", "PDE-NHF", "baseline"; one column per example.
    """
    fig, axes = subplots(2, len(samples), 3.6, 2.9)
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
    fig, axes = subplots(2, len(times), 2.7, 2.5)
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
    fig, axes = subplots(1, len(pic), 3.8, 3.4)
    for j, ex in enumerate(examples):
        ax = axes[0, j]
        if initial is not None:
            ax.scatter(as_numpy(initial[j][0]), as_numpy(initial[j][1]), s=4,
                       color=COLORS["initial"], alpha=0.5, label="initial (t = 0)")
        ax.scatter(as_numpy(pic[j][0]), as_numpy(pic[j][1]), s=7, color=COLORS["PIC"], label="PIC")
        ax.scatter(as_numpy(model[j][0]), as_numpy(model[j][1]), s=7, facecolors="none",
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
    fig, axes = subplots(1, 2, 4.4, 3.3)
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
    fig, axes = subplots(1, 2, 4.2, 3.2)
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
    fig, axes = subplots(1, 3, 4.0, 3.4)
    ax_q, ax_p, ax_ph = axes[0]
    for name, sample in (("initial", initial), ("PIC", pic), ("PDE-NHF", model)):
        if sample is not None:
            _ecdf(ax_q, sample[0], name)
            _ecdf(ax_p, sample[1], name)
    ax_ph.scatter(as_numpy(initial[0]), as_numpy(initial[1]), s=4, color=COLORS["initial"],
                  label="initial (t = 0)")
    ax_ph.scatter(as_numpy(pic[0]), as_numpy(pic[1]), s=7, color=COLORS["PIC"], label="PIC")
    if model is not None:
        ax_ph.scatter(as_numpy(model[0]), as_numpy(model[1]), s=7, facecolors="none",
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


# ------------------------------------------------------------------ the report's figures


def write_figures(out: Path, results: dict, split: Split, fig_model: dict, fig_base) -> list[str]:
    """The report's figures (the first model against PIC), written into `out`; returns their
    file names. fig_model: {step: (q, p) [FIGURE_EXAMPLES, N]} of the first model, or None
    (a baseline alone: its cumulative histograms only); fig_base: the baseline's (q, p) at
    T, or None."""
    keep = min(FIGURE_EXAMPLES, split.n)
    s0, sT, T, ex = split.s0, split.sT, split.times[-1], list(range(keep))
    samples = []
    for j in ex:
        d = {"initial": (split.q[s0][j], split.p[s0][j]), "PIC": (split.q[sT][j], split.p[sT][j])}
        if fig_model is not None:
            d["PDE-NHF"] = (fig_model[sT][0][j], fig_model[sT][1][j])
        if fig_base is not None:
            d["baseline"] = (fig_base[0][j], fig_base[1][j])
        samples.append(d)
    later = split.steps[1:]
    if fig_model is None:
        save_figure(plot_cdfs(samples, ex, T), out / "cdf_final.png")
        return ["cdf_final.png"]
    figs = {
        "cdf_final.png": plot_cdfs(samples, ex, T),
        "cdf_over_time.png": plot_cdfs_over_time(
            split.times[1:], [(split.q[s][0], split.p[s][0]) for s in later],
            [(fig_model[s][0][0], fig_model[s][1][0]) for s in later], 0,
            initial=(split.q[s0][0], split.p[s0][0])),
        "phase_space.png": plot_phase_space(
            [(split.q[sT][j], split.p[sT][j]) for j in ex],
            [(fig_model[sT][0][j], fig_model[sT][1][j]) for j in ex], ex, T,
            initial=[(split.q[s0][j], split.p[s0][j]) for j in ex]),
        "w1_vs_time.png": plot_w1_vs_time(*_w1_curves(results, T)),
        "w1_vs_steps.png": plot_w1_vs_steps(*_k_curves(results)),
    }
    for name, fig in figs.items():
        save_figure(fig, out / name)
    return list(figs)


def _w1_curves(results: dict, T: float):
    """(times, {source: {"q": (mean, sem), "p": (mean, sem)}}) for every model and the identity."""
    times = [r["t"] for r in results["table2"]] + [T]
    curves = {}
    for m in results["models"]:
        curves[m["name"]] = {v: ([r["pde_nhf"][v]["mean"] for r in m["table2"]]
                                 + [m["table1"][v]["mean"]],
                                 [r["pde_nhf"][v]["sem"] for r in m["table2"]]
                                 + [m["table1"][v]["sem"]]) for v in ("q", "p")}
    ident = results["table1"]["identity"]
    curves["identity"] = {v: ([r["identity"][v]["mean"] for r in results["table2"]]
                              + [ident[v]["mean"]],
                              [r["identity"][v]["sem"] for r in results["table2"]]
                              + [ident[v]["sem"]]) for v in ("q", "p")}
    return times, curves


def _k_curves(results: dict):
    """(K, W1 of q, W1 of p, ms per example, identity's (W1 q, W1 p)) of Table 3."""
    t3, ident = results["table3"], results["table1"]["identity"]
    return ([r["K"] for r in t3], [r["q"]["mean"] for r in t3], [r["p"]["mean"] for r in t3],
            [r["ms_per_example"] for r in t3], (ident["q"]["mean"], ident["p"]["mean"]))


def plot_problem_modes(t_pic, amp_pic, t_model, amp_model, theory_gamma: float, title: str = ""):
    """|E_1(t)| of PIC (every step, a line) and of a surrogate's samples (markers) on a log
    scale, with linear theory's slope exp(gamma t) drawn through PIC's first maximum.

    t_pic, amp_pic: [S_all]; t_model, amp_model: [S]."""
    t, a = as_numpy(t_pic), as_numpy(amp_pic)
    fig, axes = subplots(1, 1, 6.0, 3.6)
    ax = axes[0, 0]
    ax.semilogy(t, a, color="black", lw=1.2, label="PIC")
    ax.semilogy(as_numpy(t_model), as_numpy(amp_model), "o", ms=3.5, color="tab:red",
                label="PDE-NHF samples (never supervised)")
    i0 = int(np.argmax(a[: max(2, len(a) // 4)]))
    ax.semilogy(t, a[i0] * np.exp(theory_gamma * (t - t[i0])), "--", color="tab:blue",
                label=f"theory exp({theory_gamma:.3f} t)")
    ax.set_ylim(max(a.min(), 1e-8) * 0.5, a.max() * 3)
    ax.set_xlabel("t (1 / omega_p)")
    ax.set_ylabel("|E_1|")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig
