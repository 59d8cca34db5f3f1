"""The physics check: every standard problem at its default size against linear theory.

For each problem: the quiet start, ``simulate(..., diagnostics=True)``, ``fit_rate`` of
mode 1 against ``theory()`` with the tolerance of issue 15 (Landau damping: gamma 3 %,
omega 1 %; cold two-stream 3 %; bump-on-tail and Jeans 5 %; the cold plasma oscillation:
omega 1 %), and the drift of the total energy and momentum over the run:

    energy drift   = max_t |H(t) - H(0)| / max_t (K(t) + |W(t)|)
    momentum drift = max_t |P(t) - P(0)| / max_t sqrt(2 M K(t))     (M: total mass)

A problem's own parameters (``check_physics(problems=[name], params=...)``): a parameter
given a list of values is a scan, one run per value, with a figure of the fitted gamma and
omega against it beside theory's curve. The run's length follows the parameters
(``planned_steps``: as many e-folds of the mode as at the problem's defaults) unless
``steps`` is given; a point that cannot be fitted (a run over MAX_STEPS, or a fit that is
not reliable: ``fit_rate``'s reason) fails, saying why.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..arguments import boolean
from ..files import atomic_write_text
from ..pic.simulate import simulate
from ..plots import save_figure
from .base import Problem
from .figures import plot_conservation, plot_mode_amplitude, plot_phase_space_density, plot_scan
from .fit import FitWarning, fit_rate
from .registry import PARAMETERS, PROBLEMS

#: problem -> {quantity: relative tolerance} (gamma = 0 exactly: absolute, in omega_p)
TOLERANCES = {
    "landau": {"gamma": 0.03, "omega": 0.01},
    "two_stream": {"gamma": 0.03},
    "bump_on_tail": {"gamma": 0.05},
    "jeans": {"gamma": 0.05},
    "plasma_oscillation": {"omega": 0.01, "gamma": 0.01},
}

#: the longest run ``planned_steps`` plans by itself (steps given: any)
MAX_STEPS = 20000
#: the fewest periods of a damped (or steady) oscillation a planned run holds
MIN_PERIODS = 3

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


def run_problem(name: str, prob: Problem, device=None, dtype: torch.dtype = torch.float64,
                quiet: bool = True, seed: int = 0) -> tuple[dict, object]:
    """Simulate one problem (quiet start, or random from `seed`); its measured rates against
    theory, the fit's reliability and the drifts: (result, traj)."""
    batch = prob.initial_conditions(quiet=quiet, seed=seed, device=device, dtype=dtype)
    start = time.perf_counter()
    traj = simulate(batch, prob.config, diagnostics=True)
    seconds = time.perf_counter() - start
    with warnings.catch_warnings():  # the result says why instead
        warnings.simplefilter("ignore", FitWarning)
        fit = fit_rate(traj)
    theory = prob.theory()
    result = {"problem": name, "params": repr(prob), "seconds": seconds,
              "theory_gamma": theory.gamma, "theory_omega": theory.omega,
              "gamma": fit.gamma, "omega": fit.omega, "window": fit.window,
              "reliable": fit.reliable, "reason": fit.reason}
    tolerances = TOLERANCES.get(name, {})
    errors = {q: _error(getattr(fit, q), getattr(theory, q)) for q in ("gamma", "omega")}
    result.update({f"{q}_error": e for q, e in errors.items()}, tolerances=tolerances,
                  passed=fit.reliable and all(errors[q] <= tol for q, tol in tolerances.items()))
    result.update(_drifts(traj, prob))
    return result, traj


def planned_steps(name: str, values: dict) -> int:
    """The steps of a run of problem `name` with `values` (its parameters but steps): as
    many e-folds of the driven mode (periods, for a steady one) as its defaults run, at
    least MIN_PERIODS periods of a damped oscillation; a multiple of save_every.

    Raises:
        ValueError: when that is over MAX_STEPS, saying why (give steps to run it).
    """
    default, prob = PROBLEMS[name](), PROBLEMS[name](**values)
    th0, th = default.theory(), prob.theory()
    length = default.config.dt * default.config.steps
    if th.gamma != 0 and th0.gamma != 0:
        length *= abs(th0.gamma / th.gamma)
    elif th.omega != 0 and th0.omega != 0:
        length *= abs(th0.omega / th.omega)
    if th.gamma <= 0 and th.omega != 0:
        length = max(length, MIN_PERIODS * 2 * math.pi / abs(th.omega))
    every = prob.config.save_every
    steps = every * math.ceil(length / prob.config.dt / every - 1e-9)
    if steps > MAX_STEPS:
        raise ValueError(f"gamma = {th.gamma:.3g} needs t = {length:.3g} ({steps} steps of dt "
                         f"{prob.config.dt:g}) for the mode to change as much as at the defaults, "
                         f"over {MAX_STEPS} steps: give steps (--steps) to run it anyway")
    return steps


def _figures(name: str, prob: Problem, result: dict, traj, out: Path, full: bool = True,
             stem: str | None = None) -> list[str]:
    """The figures of one run, files named after `stem` (default: the problem): the mode
    amplitude, and if `full` the phase-space density and the drifts."""
    d = traj.diagnostics
    title, stem = result["params"], stem or name
    figs = {f"{stem}_mode.png": plot_mode_amplitude(
        d.t, d.modes[:, 0, 1], result["theory_gamma"], result["window"], result["gamma"], title)}
    if full:
        shown = sorted({0, *range(max(1, len(traj) - 3), len(traj))})  # the start and the end
        figs[f"{stem}_phase_space.png"] = plot_phase_space_density(
            [float(traj.t[i]) for i in shown], [(traj.q[i, 0], traj.p[i, 0]) for i in shown],
            prob.config.box_length, perturbation=name in PERTURBATIONS, title=title)
        figs[f"{stem}_conservation.png"] = plot_conservation(
            d.t, result["energy_series"], result["momentum_series"], title)
    for file, fig in figs.items():
        save_figure(fig, out / file)
    return list(figs)


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _row(name: str, r: dict) -> str:
    tol = ", ".join(f"{q} {v:.0%}" for q, v in r["tolerances"].items())
    verdict = "yes" if r["passed"] else ("NO (unreliable fit)" if not r["reliable"] else "NO")
    if r.get("skipped"):
        return f"| {name} | | | | | | | {tol} | | | | {verdict} |"
    return (f"| {name} | {_fmt(r['theory_gamma'])} | {_fmt(r['gamma'])} | {r['gamma_error']:.2%} | "
            f"{_fmt(r['theory_omega'])} | {_fmt(r['omega'])} | {r['omega_error']:.2%} | {tol} | "
            f"{r['energy_drift']:.1e} | {r['momentum_drift']:.1e} | {r['seconds']:.1f} | {verdict} |")


def report_markdown(results: dict, figures: dict | None = None, scans: dict | None = None) -> str:
    """report.md: one table row per run (a problem, or a scan's point), a scan's figure,
    then each run's figures and the reason of a fit that is not reliable."""
    lines = ["# fastvp physics check", "",
             "Each run from its quiet start (unless asked otherwise), mode 1 fitted on its "
             "linear stage (``fastvp.problems.fit_rate``) against linear theory; drifts "
             "relative to the run's energy and momentum scales.", "",
             "| run | gamma (theory) | gamma (PIC) | error | omega (theory) | omega (PIC) | error "
             "| tolerance | energy drift | momentum drift | seconds | passed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [_row(name, r) for name, r in results.items()] + [""]
    for file, key in (scans or {}).items():
        lines += [f"## scan of {key}", "", f"![{file}]({file})", ""]
    for name, r in results.items():
        lines += [f"## {name}", "", f"`{r['params']}`" + (
            f", fit window t = {r['window'][0]:g} .. {r['window'][1]:g}." if "window" in r else ".")]
        if r["reason"]:
            lines += ["", f"Not fitted reliably: {r['reason']}."]
        lines += [""] + [f"![{f}]({f})" for f in (figures or {}).get(name, [])] + [""]
    return "\n".join(lines)


def _points(name: str, params: dict) -> tuple[str | None, list[tuple[str, dict]]]:
    """The runs of `params` ({parameter: value or list of values}): (the scanned parameter
    or None, [(label, values), ...]).

    Raises:
        ValueError: for several scanned parameters, or one the problem does not take.
    """
    table = {p.name for p in PARAMETERS[name]}
    for key in params:
        if key not in table:
            raise ValueError(f"{key} is not a parameter of problem {name!r} (its parameters: "
                             f"{', '.join(sorted(table))})")
    lists = {k: list(v) for k, v in params.items() if isinstance(v, (list, tuple, np.ndarray))}
    scanned = [k for k, v in lists.items() if len(v) > 1]
    if len(scanned) > 1:
        raise ValueError(f"a scan takes one parameter at a time, got several values for "
                         f"{' and '.join(scanned)}")
    fixed = {k: (v[0] if k in lists else v) for k, v in params.items() if k not in scanned}
    if not scanned:
        return None, [(" ".join([name, *(f"{k}={v:g}" for k, v in fixed.items())]), fixed)]
    key = scanned[0]
    return key, [(f"{name} {key}={v:g}", {**fixed, key: v}) for v in lists[key]]


def _run_point(name: str, label: str, values: dict, out, device, dtype, quiet: bool, seed: int,
               full_figures: bool) -> tuple[dict, list[str]]:
    """One run of a check: (result, its figures); a point that cannot be run is a failed
    result with its reason."""
    try:
        if "steps" not in values:
            values = {**values, "steps": planned_steps(name, values)}
        prob = PROBLEMS[name](**values)
    except ValueError as exc:
        if "steps" in str(exc) and "give steps" in str(exc):
            return {"problem": name, "params": f"{name}({values})", "passed": False,
                    "reliable": False, "reason": f"cannot be fitted: {exc}", "skipped": True,
                    "tolerances": TOLERANCES.get(name, {})}, []
        raise
    result, traj = run_problem(name, prob, device, dtype, quiet, seed)
    result["values"] = values
    figures = []
    if out is not None:
        figures = _figures(name, prob, result, traj, Path(out), full_figures,
                           label.replace(" ", "_"))
    return result, figures


def check_physics(out=None, progress: bool = True, problems=None, device=None,
                  dtype: torch.dtype = torch.float64, params: dict | None = None,
                  quiet: bool = True, seed: int = 0) -> dict:
    """Run every problem with a linear theory and compare with theory: at its defaults, or
    one problem at its parameters `params`, a list of values being a scan.

    Args:
        out: a folder for report.md and the figures (mode amplitude with the theory slope,
            phase-space density, energy and momentum drift; a scan's gamma and omega against
            its parameter), or None for no files.
        progress: show a progress bar.
        problems: names to run (default: all of ``TOLERANCES``); one with `params`.
        device, dtype: where and in what precision the particles are simulated (default:
            ``backend.resolve_device(None)``, float64).
        params: {parameter: value or list of values} of the one problem named: several
            values of one parameter are a scan (one run each); steps not given follow the
            parameters (``planned_steps``).
        quiet: quiet starts (True) or random ones drawn from `seed`.
    Returns:
        {label: {"gamma", "omega", "theory_gamma", "theory_omega", "gamma_error",
        "omega_error", "tolerances", "passed", "reliable", "reason", "energy_drift",
        "momentum_drift", "seconds", "window", "params", ...}}; label: the problem's name,
        or "name parameter=value" for a scan's point. A point that cannot be fitted has
        passed False and its reason.
    Raises:
        ValueError: for an unknown problem name, params with several problems or a
            parameter the problem does not take, or a bad progress flag.

    Example:
        >>> from fastvp.problems.check import check_physics
        >>> r = check_physics(problems=["plasma_oscillation"], progress=False)
        >>> r["plasma_oscillation"]["passed"]
        True
    """
    boolean("progress", progress)
    boolean("quiet", quiet)
    names = list(TOLERANCES) if problems is None else list(problems)
    for name in names:
        if name not in TOLERANCES:
            raise ValueError(f"problems must name problems among {sorted(TOLERANCES)}, got {name!r}")
    runs = [(None, [(name, {})]) for name in names]
    if params:
        if len(names) != 1:
            raise ValueError(f"params need one problem, got problems {names}")
        runs = [_points(names[0], dict(params))]
    from tqdm import tqdm

    results, figures = {}, {}
    points = [(names[i], key, label, values) for i, (key, pts) in enumerate(runs)
              for label, values in pts]
    for name, key, label, values in tqdm(points, desc="check-physics", disable=not progress):
        result, figs = _run_point(name, label, values, out, device, dtype, quiet, seed, key is None)
        results[label], figures[label] = {**result, "label": label, "scanned": key}, figs
    scans = _scan_figures(results, out) if out is not None else {}
    if out is not None:
        atomic_write_text(Path(out) / "report.md", report_markdown(results, figures, scans))
    return results


def _scan_figures(results: dict, out) -> dict:
    """The figure of a scan: {file: scanned parameter} (none for a single run)."""
    scanned = {r["scanned"] for r in results.values()} - {None}
    if not scanned:
        return {}
    key = scanned.pop()
    first = next(iter(results.values()))
    name = first["problem"]
    xs = [r["label"].split("=", 1)[1] for r in results.values()]
    xs = np.array([float(x) for x in xs])
    fitted = {q: np.array([r.get(q, math.nan) for r in results.values()]) for q in ("gamma", "omega")}
    grid = np.linspace(xs.min(), xs.max(), 41) if xs.max() > xs.min() else xs
    base = {k: v for k, v in first.get("values", {}).items() if k != key}
    theory = [PROBLEMS[name](**{**base, key: float(x)}).theory() for x in grid]
    fig = plot_scan(key, xs, fitted["gamma"], fitted["omega"], grid,
                    [r.gamma for r in theory], [r.omega for r in theory], f"{name}: scan of {key}")
    file = f"{name}_scan_{key}.png"
    save_figure(fig, Path(out) / file)
    return {file: key}
