"""Scoring a surrogate of a plasma problem (``fastvp.problems``) the way a physicist reads it.

On examples of a problem dataset's test split (their initial particles and PIC's final
state), for each model:

- the mode-1 field amplitude |E_1|(t) of PIC (every step) and of the surrogate's samples at
  `times` intermediate times (never supervised), and the rate fitted to each
  (``problems.fit_rate``; a growing mode on its ``growth_window``, the 3 e-folds before it
  nears its peak) against PIC's and linear theory's;
- W1 at T of positions and velocities against PIC, as % of the identity W1;
- the NLL of PIC's final state under the model against the truth's (the NLL of the true
  initial particles under f0): the likelihood's gap;
- the time to sample T against PIC's time on the same examples;

with figures (mode amplitude over time; f(x, v) of PIC and the surrogate side by side) and
``report.md`` + ``results.json`` in `out`.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import load_dataset
from ..files import atomic_write_text
from ..metrics import wasserstein_1d
from ..pic.diagnostics import diagnostics_of_states
from ..pic.simulate import simulate
from ..plots import save_figure
from ..problems.figures import plot_phase_space_density
from ..problems.fit import FitWarning, fit_rate, growth_window
from ..problems.registry import PROBLEMS
from ..surrogate.baseline import Baseline
from ..surrogate.model import Surrogate
from .figures import plot_problem_modes


def _rate(diag, example: int, growing: bool = False, window: list | None = None) -> dict:
    """The mode-1 rate of one example on `window` (t_min, t_max) if given, else a growing
    mode (theory's gamma > 0) on its ``growth_window`` (3 e-folds before it nears its
    peak), else on ``fit_rate``'s window."""
    if window is not None:
        window = dict(zip(("t_min", "t_max"), window))
    elif growing:
        try:
            window = dict(zip(("t_min", "t_max"), growth_window(diag, 1, example=example)))
        except ValueError:
            window = {}  # too little growth for that window: fit_rate's own, flagged if poor
    else:
        window = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        fit = fit_rate(diag, mode=1, example=example, **window)
    return {"gamma": float(fit.gamma), "omega": float(fit.omega),
            "reliable": bool(getattr(fit, "reliable", not caught)),
            "window": [float(x) for x in fit.window],
            "warnings": [str(w.message) for w in caught]}


def _errors(rates: list[dict], ref: list[dict], scale: float, key: str) -> float:
    """Mean |rate - ref| / scale over the examples, in % (scale: theory's |rate|)."""
    return float(np.mean([abs(r[key] - s[key]) for r, s in zip(rates, ref)]) / scale * 100)


def quiet_examples(problem, examples: int, seed: int = 0, dtype=torch.float64):
    """Quiet-start particles of the problem's f0 (evenly spaced quantiles), each example
    shifted by its own random offset in [0, L): particles a model trained on random draws
    never saw. Returns (q0, p0) [B, N]."""
    batch = problem.initial_conditions(examples, quiet=True, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    length = problem.config.box_length
    offset = length * torch.rand((examples, 1), generator=gen, dtype=torch.float64).to(dtype)
    return torch.remainder(batch.q + offset, length), batch.p


def evaluate_problem_models(models, data, out, examples: int = 8, times: int = 60,
                            dtype: torch.dtype = torch.float64, quiet: bool = True,
                            baseline=None) -> dict:
    """Score surrogates of one problem on its dataset's test split; write out/report.md.

    Args:
        models: Surrogates or their names / files (``Surrogate.load``), all of the
            dataset's problem.
        data: a problem dataset folder (``fastvp simulate --problem``) or a Dataset.
        out: the report folder.
        examples: test examples scored (the first ones).
        times: about this many intermediate times at which the surrogates are sampled, on
            PIC's step grid (every round(T / (times dt)) steps, T included); the models'
            rates are fitted on those times in the window PIC's fit takes there, and compared
            with PIC's (PIC's own, against theory, on every step).
        quiet: score quiet starts shifted by random offsets (``quiet_examples``: the mode
            stands far above the particle noise, so rates can be fitted); False: the test
            split's own (random) examples.
        baseline: the paper's baseline (a model file or a Baseline) trained on the problem:
            its W1 at T and time beside the surrogates' (it predicts T only: no rates).

    Returns:
        The results (also written to out/results.json).
    """
    ds = load_dataset(data) if isinstance(data, (str, os.PathLike)) else data
    test = ds.split("test")
    problem = test.problem_object()
    config = problem.config
    n = examples if quiet else min(examples, len(test))
    T = config.final_time
    if quiet:
        problem = _shared(problem, n)
        q0, p0 = quiet_examples(problem, n, dtype=dtype)
    else:
        q0 = torch.as_tensor(np.array(test.q(test.steps[0])[:n]), dtype=dtype)
        p0 = torch.as_tensor(np.array(test.p(test.steps[0])[:n]), dtype=dtype)
    t0 = time.perf_counter()
    pic = simulate((q0, p0), config, diagnostics=True)
    pic_seconds = time.perf_counter() - t0
    theory = problem.theory()
    gamma_th = float(np.mean(theory.gamma))
    omega_th = float(np.mean(theory.omega))
    f0 = problem.distribution(n) if quiet else test.distribution().subset(np.arange(n))
    truth = float(-f0.log_prob(q0, p0).mean())
    identity = (wasserstein_1d(q0, pic.q[-1]).mean().item(), wasserstein_1d(p0, pic.p[-1]).mean().item())
    growing = gamma_th > 0
    pic_rates = [_rate(pic.diagnostics, i, growing) for i in range(n)]
    results = {"problem": {"name": problem.name, "params": _plain(problem.params)},
               "data": str(ds.path), "examples": n, "quiet": quiet, "T": T,
               "theory": {"gamma": gamma_th, "omega": omega_th},
               "pic": {"rates": pic_rates, "seconds": pic_seconds,
                       "gamma_error_pct": _rate_error(pic_rates, gamma_th, omega_th, "gamma"),
                       "omega_error_pct": _rate_error(pic_rates, gamma_th, omega_th, "omega")},
               "truth_nll": truth, "identity_w1": list(identity), "models": {}}
    if baseline is not None:
        results["baseline"] = _score_baseline(baseline, q0, p0, pic, identity)
    index = _grid_steps(config.steps, T / times / config.dt)
    grid = [config.dt * i for i in index]
    pic_on_grid = type(pic.diagnostics)(**{k: v[index] for k, v in pic.diagnostics.as_dict().items()})
    grid_rates = [_rate(pic_on_grid, i, growing) for i in range(n)]
    results["pic"]["rates_on_model_times"] = grid_rates
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in models:
        model = spec if isinstance(spec, Surrogate) else Surrogate.load(spec)
        name = spec if isinstance(spec, str) else getattr(model, "name", "model")
        results["models"][str(name)] = _score(model.to(dtype=dtype), q0, p0, pic, f0, grid, config,
                                              identity, truth, grid_rates, gamma_th, omega_th)
        _figures(out, str(name), model, q0, p0, pic, grid, config, gamma_th)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    atomic_write_text(out / "report.md", problem_report(results))
    return results


def _grid_steps(steps: int, stride: float) -> list[int]:
    """Step indices 0, s, 2 s, ... and the last, s = round(stride) >= 1."""
    s = max(1, round(stride))
    index = list(range(0, steps + 1, s))
    return index if index[-1] == steps else index + [steps]


def _shared(problem, n: int):
    """The problem with its first example's parameters shared by all n examples."""
    return PROBLEMS[problem.name](**problem.example_params(0)) if problem.examples else problem


def _plain(params: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()}


def _rate_error(rates: list[dict], gamma: float, omega: float, key: str) -> float:
    ref = gamma if key == "gamma" else omega
    scale = abs(ref) if ref else 1.0
    return float(np.mean([abs(r[key] - ref) for r in rates]) / scale * 100)


def _score(model: Surrogate, q0, p0, pic, f0, grid, config, identity, truth, pic_grid_rates,
           gamma_th: float, omega_th: float) -> dict:
    """One model's figures of merit on the examples (see the module docstring)."""
    t0 = time.perf_counter()
    qT, pT = model.sample(config.final_time, (q0, p0))
    seconds = time.perf_counter() - t0
    traj = model.sample(grid, (q0, p0))
    diag = diagnostics_of_states(traj.t, traj.q, traj.p, config)
    rates = [_rate(diag, i, window=pic_grid_rates[i]["window"]) for i in range(q0.shape[0])]
    with torch.no_grad():
        nll = float(-model.log_prob(pic.q[-1], pic.p[-1], f0, t=config.final_time).mean())
    w1 = (wasserstein_1d(qT, pic.q[-1]).mean().item(), wasserstein_1d(pT, pic.p[-1]).mean().item())
    return {
        "w1": list(w1), "w1_pct_identity": [100 * w1[0] / identity[0], 100 * w1[1] / identity[1]],
        "rates": rates,
        "gamma_error_vs_theory_pct": _rate_error(rates, gamma_th, omega_th, "gamma"),
        "omega_error_vs_theory_pct": _rate_error(rates, gamma_th, omega_th, "omega"),
        "gamma_error_vs_pic_pct": _errors(rates, pic_grid_rates, abs(gamma_th) or 1.0, "gamma"),
        "omega_error_vs_pic_pct": _errors(rates, pic_grid_rates, abs(omega_th) or 1.0, "omega"),
        "nll": nll, "nll_gap": nll - truth, "a": model.a.item(), "sample_seconds": seconds,
        "training": getattr(model, "training_info", None),
    }


def _score_baseline(baseline, q0, p0, pic, identity) -> dict:
    """W1 at T of the baseline's sorted prediction against PIC, and its time."""
    model = baseline if isinstance(baseline, Baseline) else Baseline.load(baseline)
    t0 = time.perf_counter()
    qT, pT = model.predict((q0, p0))
    seconds = time.perf_counter() - t0
    w1 = (wasserstein_1d(qT.to(q0), pic.q[-1]).mean().item(),
          wasserstein_1d(pT.to(p0), pic.p[-1]).mean().item())
    return {"w1": list(w1), "w1_pct_identity": [100 * w1[0] / identity[0], 100 * w1[1] / identity[1]],
            "sample_seconds": seconds, "training": getattr(model, "training_info", None)}


def _figures(out: Path, name: str, model, q0, p0, pic, grid, config, gamma_th: float) -> None:
    traj = model.sample(grid, (q0[:1], p0[:1]))
    diag = diagnostics_of_states(traj.t, traj.q, traj.p, config)
    fig = plot_problem_modes(pic.diagnostics.t, pic.diagnostics.modes[:, 0, 1], traj.t,
                             diag.modes[:, 0, 1], gamma_th, title=f"{name}: |E_1|, example 0")
    save_figure(fig, out / f"{_slug(name)}_modes.png")
    picks = [len(grid) // 3, 2 * len(grid) // 3, len(grid) - 1]
    snaps_t = [grid[i] for i in picks]
    step = [int(round(t / config.dt)) for t in snaps_t]
    pic_full = simulate((q0[:1], p0[:1]), config.replace(save_every=1))
    for who, pairs in (("pic", [(pic_full.q[s, 0], pic_full.p[s, 0]) for s in step]),
                       ("model", [(traj.q[i, 0], traj.p[i, 0]) for i in picks])):
        fig = plot_phase_space_density(snaps_t, pairs, config.box_length, perturbation=True, bins=64,
                                       title=f"{'PIC' if who == 'pic' else name}: f - <f>_x")
        save_figure(fig, out / f"{_slug(name)}_phase_space_{who}.png")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem)


def problem_report(results: dict) -> str:
    """report.md of ``evaluate_problem_models``' results."""
    th, pic = results["theory"], results["pic"]
    lines = [f"# {results['problem']['name']}: surrogates against PIC and linear theory", "",
             f"Data: `{results['data']}`, {results['examples']} "
             f"{'quiet-start examples (random offsets)' if results.get('quiet') else 'test examples'}, "
             f"T = {results['T']:g}. "
             f"Theory: gamma = {th['gamma']:.4f}, omega = {th['omega']:.4f}. PIC's own fits (every step): "
             f"gamma {pic['gamma_error_pct']:.1f} %, omega {pic['omega_error_pct']:.1f} % from theory "
             f"({pic['seconds']:.2f} s for the examples). Truth NLL {results['truth_nll']:.2f}. "
             + ("Rates of the growing mode over its 3 e-folds before |E_1| comes within a factor e "
                "of its peak (`growth_window`), for PIC and each model's samples alike"
                if th["gamma"] > 0 else "Rates on `fit_rate`'s window")
             + "; a model's against PIC's fitted on the same sampled times, in PIC's window.", "",
             "| model | W1 q / v at T, % of identity | gamma err vs PIC / theory % | omega err vs PIC / "
             "theory % | NLL gap | a | sample T, s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in results["models"].items():
        lines.append(f"| {name} | {m['w1_pct_identity'][0]:.2f} / {m['w1_pct_identity'][1]:.2f} | "
                     f"{m['gamma_error_vs_pic_pct']:.1f} / {m['gamma_error_vs_theory_pct']:.1f} | "
                     f"{m['omega_error_vs_pic_pct']:.1f} / {m['omega_error_vs_theory_pct']:.1f} | "
                     f"{m['nll_gap']:.2f} | {m['a']:.4f} | {m['sample_seconds']:.3f} |")
    if "baseline" in results:
        b = results["baseline"]
        lines.append(f"| the paper's baseline (T only) | {b['w1_pct_identity'][0]:.2f} / "
                     f"{b['w1_pct_identity'][1]:.2f} | - | - | - | - | {b['sample_seconds']:.3f} |")
    lines.append("| identity (t = 0 against T) | 100 / 100 | - | - | - | - | 0 |")
    for name in results["models"]:
        slug = _slug(name)
        lines += ["", f"![{name} modes]({slug}_modes.png)", "",
                  f"![PIC phase space]({slug}_phase_space_pic.png) "
                  f"![{name} phase space]({slug}_phase_space_model.png)", ""]
    return "\n".join(lines) + "\n"
