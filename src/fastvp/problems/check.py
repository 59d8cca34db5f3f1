"""The physics check: every standard problem at its default size against linear theory.

For each problem: the quiet start, ``simulate(..., diagnostics=True)``, ``fit_rate`` of
mode 1 against ``theory()`` with the tolerance of issue 15 (Landau damping: gamma 3 %,
omega 1 %; cold two-stream 3 %; bump-on-tail and Jeans 5 %; the cold plasma oscillation:
omega 1 %), and the drift of the total energy and momentum over the run:

    energy drift   = max_t |H(t) - H(0)| / max_t (K(t) + |W(t)|)
    momentum drift = max_t |P(t) - P(0)| / max_t sqrt(2 M K(t))     (M: total mass)
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..arguments import boolean
from ..files import atomic_write_text
from ..pic.simulate import simulate
from ..plots import save_figure
from .base import Problem
from .figures import plot_conservation, plot_mode_amplitude, plot_phase_space_density
from .fit import fit_rate, fit_window
from .registry import PROBLEMS

#: problem -> {quantity: relative tolerance} (gamma = 0 exactly: absolute, in omega_p)
TOLERANCES = {
    "landau": {"gamma": 0.03, "omega": 0.01},
    "two_stream": {"gamma": 0.03},
    "bump_on_tail": {"gamma": 0.05},
    "jeans": {"gamma": 0.05},
    "plasma_oscillation": {"omega": 0.01, "gamma": 0.01},
}

#: problems whose phase-space figure shows f - <f>_x (a small perturbation)
PERTURBATIONS = ("landau", "plasma_oscillation")


def _error(measured: float, theory: float) -> float:
    """Relative error, or the absolute one where the theory is 0."""
    return abs(measured - theory) / abs(theory) if theory != 0 else abs(measured)


def _drifts(traj, prob: Problem) -> dict:
    d = traj.diagnostics
    energy, kinetic = d.total_energy[:, 0], d.kinetic_energy[:, 0]
    scale_e = (kinetic + d.field_energy[:, 0].abs()).max()
    mass = prob.config.charge / prob.config.charge_over_mass * prob.config.n_particles
    scale_p = torch.sqrt(2 * mass * kinetic.max())
    e_rel = (energy - energy[0]) / scale_e
    p_rel = (d.momentum[:, 0] - d.momentum[0, 0]) / scale_p
    return {"energy_drift": float(e_rel.abs().max()), "momentum_drift": float(p_rel.abs().max()),
            "energy_series": e_rel.cpu().numpy(), "momentum_series": p_rel.cpu().numpy()}


def run_problem(name: str, prob: Problem, device=None,
                dtype: torch.dtype = torch.float64) -> tuple[dict, object]:
    """Simulate one problem's quiet start; its measured rates against theory: (result, traj)."""
    batch = prob.initial_conditions(quiet=True, device=device, dtype=dtype)
    start = time.perf_counter()
    traj = simulate(batch, prob.config, diagnostics=True)
    seconds = time.perf_counter() - start
    theory, fit = prob.theory(), fit_rate(traj)
    result = {"problem": name, "params": repr(prob), "seconds": seconds,
              "theory_gamma": theory.gamma, "theory_omega": theory.omega,
              "gamma": fit.gamma, "omega": fit.omega, "window": fit_window(traj)}
    tolerances = TOLERANCES.get(name, {})
    errors = {q: _error(getattr(fit, q), getattr(theory, q)) for q in ("gamma", "omega")}
    result.update({f"{q}_error": e for q, e in errors.items()}, tolerances=tolerances,
                  passed=all(errors[q] <= tol for q, tol in tolerances.items()))
    result.update(_drifts(traj, prob))
    return result, traj


def _figures(name: str, prob: Problem, result: dict, traj, out: Path) -> list[str]:
    d = traj.diagnostics
    title = result["params"]
    shown = sorted({0, *range(max(1, len(traj) - 3), len(traj))})  # the start and the end
    figs = {
        f"{name}_mode.png": plot_mode_amplitude(
            d.t, d.modes[:, 0, 1], result["theory_gamma"], result["window"], result["gamma"], title),
        f"{name}_phase_space.png": plot_phase_space_density(
            [float(traj.t[i]) for i in shown], [(traj.q[i, 0], traj.p[i, 0]) for i in shown],
            prob.config.box_length, perturbation=name in PERTURBATIONS, title=title),
        f"{name}_conservation.png": plot_conservation(
            d.t, result["energy_series"], result["momentum_series"], title),
    }
    for file, fig in figs.items():
        save_figure(fig, out / file)
    return list(figs)


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def report_markdown(results: dict, figures: dict | None = None) -> str:
    """report.md: one table row per problem, then its figures."""
    lines = ["# fastvp physics check", "",
             "Each problem at its default size, quiet start, mode 1 fitted on its linear stage "
             "(``fastvp.problems.fit_rate``) against linear theory; drifts relative to the "
             "run's energy and momentum scales.", "",
             "| problem | gamma (theory) | gamma (PIC) | error | omega (theory) | omega (PIC) | error "
             "| tolerance | energy drift | momentum drift | seconds | passed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        tol = ", ".join(f"{q} {v:.0%}" for q, v in r["tolerances"].items())
        lines.append(f"| {name} | {_fmt(r['theory_gamma'])} | {_fmt(r['gamma'])} | "
                     f"{r['gamma_error']:.2%} | {_fmt(r['theory_omega'])} | {_fmt(r['omega'])} | "
                     f"{r['omega_error']:.2%} | {tol} | {r['energy_drift']:.1e} | "
                     f"{r['momentum_drift']:.1e} | {r['seconds']:.1f} | {'yes' if r['passed'] else 'NO'} |")
    lines.append("")
    for name, r in results.items():
        lines += [f"## {name}", "", f"`{r['params']}`, fit window t = {r['window'][0]:g} .. "
                  f"{r['window'][1]:g}.", ""]
        lines += [f"![{f}]({f})" for f in (figures or {}).get(name, [])] + [""]
    return "\n".join(lines)


def check_physics(out=None, progress: bool = True, problems=None, device=None,
                  dtype: torch.dtype = torch.float64) -> dict:
    """Run every problem with a linear theory at its default size and compare with theory.

    Args:
        out: a folder for report.md and the figures (mode amplitude with the theory slope,
            phase-space density, energy and momentum drift), or None for no files.
        progress: show a progress bar.
        problems: names to run (default: all of ``TOLERANCES``).
        device, dtype: where and in what precision the particles are simulated (default:
            ``backend.resolve_device(None)``, float64).
    Returns:
        {problem: {"gamma", "omega", "theory_gamma", "theory_omega", "gamma_error",
        "omega_error", "tolerances", "passed", "energy_drift", "momentum_drift",
        "seconds", "window", "params", ...}}.
    Raises:
        ValueError: for an unknown problem name or a bad progress flag.

    Example:
        >>> from fastvp.problems.check import check_physics
        >>> r = check_physics(problems=["plasma_oscillation"], progress=False)
        >>> r["plasma_oscillation"]["passed"]
        True
    """
    boolean("progress", progress)
    names = list(TOLERANCES) if problems is None else list(problems)
    for name in names:
        if name not in TOLERANCES:
            raise ValueError(f"problems must name problems among {sorted(TOLERANCES)}, got {name!r}")
    from tqdm import tqdm

    results, figures = {}, {}
    for name in tqdm(names, desc="check-physics", disable=not progress):
        prob = PROBLEMS[name]()
        result, traj = run_problem(name, prob, device, dtype)
        if out is not None:
            figures[name] = _figures(name, prob, result, traj, Path(out))
        results[name] = result
    if out is not None:
        atomic_write_text(Path(out) / "report.md", report_markdown(results, figures))
    return results
