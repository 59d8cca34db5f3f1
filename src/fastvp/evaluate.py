"""One-command evaluation of PDE-NHF models against PIC: the paper's Tables 1-3 and Fig. 2.

``evaluate(models, data, out)`` feeds every model each test example's actual initial
particles (snapshot 0 of the dataset), so a perfect model reaches W1 = 0, and compares its
samples with the PIC snapshots by the 1D Wasserstein-1 distance (``fastvp.wasserstein_1d``):

* Table 1: W1 at T of each model (K = first of `steps_list`), the baseline and the identity
  (the initial particles taken as the prediction), mean and standard error over the test
  examples, and as a percentage of the identity's W1;
* Table 2: W1 at the intermediate snapshot times, reached by continuing the flow from one
  snapshot to the next with the step dt = T / K (whether a model saw them in training is
  said from its "training" record);
* Table 3: W1 at T and wall time of sampling with K = `steps_list`;
* each model's a (learned or not), the drift of its flow Hamiltonian H = a^2 |p|^2 / 2 + V(q)
  along a sample (and of PIC's energy, for scale), and figures.

The sampling is ``_sample_model``, the tables ``_tables``, the report ``fastvp.report``.
``demo`` is the quick look of ``fastvp demo``: PIC and a surrogate on one batch.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import validation as check
from .backend import resolve_device, resolve_dtype
from .files import atomic_write_text
from .metrics import total_energy, wasserstein_1d

#: Examples sampled at once: bounds memory, and a progress bar ticks per chunk.
CHUNK = 512
#: Test examples shown in the figures (the first ones of the split).
FIGURE_EXAMPLES = 3
#: Examples whose flow Hamiltonian is followed step by step.
ENERGY_EXAMPLES = 64
#: The physics a model and the data must share (PICConfig fields), and T.
PHYSICS = ("interaction", "scheme", "charge", "charge_over_mass", "box_length", "cells",
           "n_particles", "dt", "steps")


# ------------------------------------------------------------------ inputs


def _load_model(model, name: str | None = None):
    """(display name, Surrogate) from a Surrogate, a bundled name or a model file."""
    from .surrogate.model import Surrogate

    if isinstance(model, (str, os.PathLike)):
        text = str(model)
        label = Path(text).name.removesuffix(".safetensors") if ("/" in text or os.sep in text
                                                                 or Path(text).suffix) else text
        return name or label, Surrogate.load(model)
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "sample"):
        raise ValueError("model must be a fastvp.Surrogate or a model name / file, got "
                         f"{type(model).__name__}")
    return name or "PDE-NHF", model


def _load_models(models) -> list[tuple[str, object]]:
    items = list(models) if isinstance(models, (list, tuple)) else [models]
    if not items:
        raise ValueError("model must name at least one model, got an empty list")
    loaded = [_load_model(m) for m in items]
    names = [n for n, _ in loaded]
    return [(n if names.count(n) == 1 else f"{n} ({i + 1})", m) for i, (n, m) in enumerate(loaded)]


def _load_baseline(baseline):
    from .surrogate.baseline import Baseline

    if baseline is None or isinstance(baseline, Baseline):
        return baseline
    if isinstance(baseline, (str, os.PathLike)):
        return Baseline.load(baseline)
    raise ValueError(f"baseline must be a fastvp Baseline or a file, got {type(baseline).__name__}")


def _steps_list(steps_list) -> list[int]:
    msg = f"steps_list must be a non-empty sequence of integers >= 1, got {steps_list!r}"
    try:
        ks = [int(k) for k in steps_list]
    except (TypeError, ValueError) as exc:
        raise ValueError(msg) from exc
    pairs = zip(ks, steps_list, strict=True)
    if not ks or any(k < 1 or k != s or isinstance(s, bool) for k, s in pairs):
        raise ValueError(msg)
    return ks


def physics_mismatch(model_config, data_config) -> list[str]:
    """The physics on which a model's training data and the evaluated data differ:
    ["interaction: model electrostatic, data gravitational", ...] (empty when they agree)."""
    out = []
    for name in PHYSICS:
        a, b = getattr(model_config, name), getattr(data_config, name)
        if a != b:
            out.append(f"{name}: model {a}, data {b}")
    return out


def _check_physics(models, data_config, allow: bool, problem: dict | None = None) -> dict:
    """Raise ValueError on a physics mismatch unless `allow`; returns {model name: mismatches}.

    problem: the data's ``Dataset.problem``; one whose initial conditions are not Gaussian
    (a ``fastvp.problems`` dataset other than the paper's) is a mismatch of its own, told first.
    """
    found = {name: physics_mismatch(m.config, data_config) for name, m in models}
    if problem is not None and not problem.get("gaussian"):
        told = (f"initial conditions: model the paper's Gaussians, data the {problem['name']!r} "
                "problem of fastvp.problems")
        found = {name: [told, *diffs] for name, diffs in found.items()}
    bad = {n: d for n, d in found.items() if d}
    if bad and not allow:
        name, diffs = next(iter(bad.items()))
        raise ValueError(f"model {name!r} was made for other physics than the data: "
                         f"{'; '.join(diffs)} (pass allow_mismatch=True to evaluate anyway)")
    return bad


def _a(model) -> float:
    return float(torch.as_tensor(model.a).detach().reshape(-1)[0])


def _stats(x: np.ndarray) -> dict:
    """Mean and standard error of per-example values."""
    n = x.size
    sem = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(x.mean()), "sem": sem}


def _w1(x: torch.Tensor, ref: np.ndarray) -> np.ndarray:
    """Per-example W1 [B] between a model output and PIC data, in float64 on the CPU."""
    return wasserstein_1d(x.detach().to("cpu", torch.float64), torch.from_numpy(ref)).numpy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, f, *args, **kw):
    _sync(device)
    t0 = time.perf_counter()
    r = f(*args, **kw)
    _sync(device)
    return r, time.perf_counter() - t0


# ------------------------------------------------------------------ sampling


@dataclass
class _Split:
    """The test examples evaluated: snapshots {step: [n, N]} and their times."""

    q: dict
    p: dict
    steps: list
    times: list
    n: int

    @property
    def s0(self) -> int:
        return self.steps[0]

    @property
    def sT(self) -> int:
        return self.steps[-1]

    def initial(self, lo: int, hi: int, device, dtype):
        kw = dict(device=device, dtype=dtype)
        return (torch.as_tensor(self.q[self.s0][lo:hi], **kw),
                torch.as_tensor(self.p[self.s0][lo:hi], **kw))


@dataclass
class _Samples:
    """What sampling one model gave: per-example W1, wall times, figure samples."""

    ks: list
    n: int
    inner: list
    w_final: dict = field(default_factory=dict)     # K -> {"q": [n], "p": [n]}
    w_inner: dict = field(default_factory=dict)     # step -> {"q": [n], "p": [n]}
    wall: dict = field(default_factory=dict)        # K -> seconds (first chunk)
    figures: dict = field(default_factory=dict)     # step -> (q, p) of the first examples
    chain_diff: float | None = None

    def __post_init__(self):
        self.w_final = {k: {"q": np.empty(self.n), "p": np.empty(self.n)} for k in self.ks}
        self.w_inner = {s: {"q": np.empty(self.n), "p": np.empty(self.n)} for s in self.inner}

    def record(self, store: dict, key, lo: int, hi: int, q, p, split: _Split, step: int) -> None:
        store[key]["q"][lo:hi] = _w1(q, split.q[step][lo:hi])
        store[key]["p"][lo:hi] = _w1(p, split.p[step][lo:hi])


def _hops(split: _Split, k_main: int) -> tuple[list[int], bool]:
    """Leapfrog steps of the main K between consecutive snapshots (dt = T / K), and whether
    they are whole: then the chain through the snapshots also gives Table 1's sample."""
    T = split.times[-1]
    exact = [k_main * (split.times[i + 1] - split.times[i]) / T for i in range(len(split.steps) - 1)]
    hops = [max(1, round(x)) for x in exact]
    return hops, all(abs(x - h) < 1e-9 for x, h in zip(exact, hops, strict=True))


def _sample_chunk(model, split: _Split, res: _Samples, lo: int, hi: int, device, dtype) -> None:
    """Tables 1-3 of examples lo..hi of one model (wall times on the first chunk)."""
    q0, p0 = split.initial(lo, hi, device, dtype)
    T, k_main, keep = split.times[-1], res.ks[0], min(FIGURE_EXAMPLES, split.n)
    hops, chained = _hops(split, k_main)
    final = {}
    if lo == 0:  # Table 3's wall times: straight to T in K steps
        for k in res.ks:
            final[k], res.wall[k] = _timed(device, model.sample, T, (q0, p0), steps=k)
    q, p = q0, p0  # Table 2: the flow continued from snapshot to snapshot
    for i, s in enumerate(split.steps[1:] if chained else res.inner):
        q, p = model.sample(split.times[i + 1] - split.times[i], (q, p), steps=hops[i])
        if s != split.sT:
            res.record(res.w_inner, s, lo, hi, q, p, split, s)
            if lo == 0:
                res.figures[s] = (q[:keep].cpu(), p[:keep].cpu())
    if chained:
        if lo == 0:
            res.chain_diff = max(float((q - final[k_main][0]).abs().max()),
                                 float((p - final[k_main][1]).abs().max()))
        final[k_main] = (q, p)
    for k in res.ks:  # Tables 1 and 3: W1 at T
        if k not in final:
            final[k] = model.sample(T, (q0, p0), steps=k)
        res.record(res.w_final, k, lo, hi, *final[k], split, split.sT)
    if lo == 0:
        res.figures[split.sT] = (final[k_main][0][:keep].cpu(), final[k_main][1][:keep].cpu())


def _sample_model(model, split: _Split, ks: list[int], chunk: int, device, dtype, bar) -> _Samples:
    """Sample one model on every test example, chunk by chunk."""
    res = _Samples(ks=ks, n=split.n, inner=split.steps[1:-1])
    for lo in range(0, split.n, chunk):
        hi = min(split.n, lo + chunk)
        _sample_chunk(model, split, res, lo, hi, device, dtype)
        if bar is not None:
            bar.update(hi - lo)
    return res


def _sample_baseline(baseline, split: _Split, chunk: int, device, dtype):
    """(W1 {"q", "p"} [n], wall seconds, figure samples) of the baseline."""
    w = {"q": np.empty(split.n), "p": np.empty(split.n)}
    wall, fig = 0.0, None
    for lo in range(0, split.n, chunk):
        hi = min(split.n, lo + chunk)
        (qb, pb), dt = _timed(device, baseline.predict, split.initial(lo, hi, device, dtype))
        wall += dt
        w["q"][lo:hi] = _w1(qb, split.q[split.sT][lo:hi])
        w["p"][lo:hi] = _w1(pb, split.p[split.sT][lo:hi])
        if lo == 0:
            keep = min(FIGURE_EXAMPLES, split.n)
            fig = (qb[:keep].cpu(), pb[:keep].cpu())
    return w, wall, fig


# ------------------------------------------------------------------ tables


def _entry(w: dict, ident: dict | None = None) -> dict:
    e = {v: _stats(w[v]) for v in ("q", "p")}
    if ident is not None:
        e["percent_of_identity"] = {v: 100 * e[v]["mean"] / ident[v]["mean"] for v in ("q", "p")}
    return e


def _identity(split: _Split, s: int) -> dict:
    return {v: wasserstein_1d(torch.from_numpy(x[split.s0]), torch.from_numpy(x[s])).numpy()
            for v, x in (("q", split.q), ("p", split.p))}


def _tables(res: _Samples, split: _Split, timed: int) -> dict:
    """Tables 1-3 of one model: {"table1": entry, "table2": [rows], "table3": [rows]}."""
    ident_T = _entry(_identity(split, split.sT))
    T, k_main = split.times[-1], res.ks[0]
    hops, _ = _hops(split, k_main)
    table2 = [{"t": split.times[i + 1], "step": s, "leapfrog_steps": sum(hops[: i + 1]),
               "pde_nhf": _entry(res.w_inner[s]), "identity": _entry(_identity(split, s))}
              for i, s in enumerate(res.inner)]
    table3 = [{"K": k, "dt": T / k, "q": _stats(res.w_final[k]["q"]),
               "p": _stats(res.w_final[k]["p"]), "wall_s": res.wall[k], "timed_examples": timed,
               "ms_per_example": 1e3 * res.wall[k] / timed,
               "split_s_estimate": res.wall[k] * split.n / timed, "gradient_evaluations": k + 1}
              for k in res.ks]
    return {"table1": _entry(res.w_final[k_main], ident_T), "table2": table2, "table3": table3}


def _model_info(name: str, model, res: _Samples, dtype, device, mismatch) -> dict:
    training = getattr(model, "training_info", None) or {}
    return {"name": name, "a": _a(model), "dtype": str(dtype).removeprefix("torch."),
            "device": str(device), "K": res.ks[0], "train_K": getattr(model, "steps", None),
            "chained_to_T": res.chain_diff is not None,
            "chain_vs_direct_max_abs_diff": res.chain_diff,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "training": training, "physics_mismatch": mismatch}


# ------------------------------------------------------------------ evaluation


def evaluate(
    model,
    data,
    out,
    baseline=None,
    steps_list=(25, 10, 5, 2, 1),
    n_examples: int | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    chunk_size: int = CHUNK,
    allow_mismatch: bool = False,
) -> dict:
    """Evaluate PDE-NHF models (and the baseline) on the test split of `data`; write a report.

    Args:
        model: a fastvp.Surrogate, a bundled name or a model file, or a list of them
            (compared in one report).
        data: a fastvp.Dataset or a dataset folder.
        out: the report folder (report.md, results.json, *.png).
        baseline: a fastvp Baseline or its file (optional).
        steps_list: the K of Table 3; the first is the K of Tables 1 and 2.
        n_examples: the first n examples of the test split (default all).
        device, dtype: where and in what precision the models run (W1 is float64).
        allow_mismatch: evaluate a model on data of other physics (interaction, scheme,
            charge, q/m, box, grid, N, dt, steps) than its training data.

    Returns:
        The numbers of results.json: ``models`` (one entry per model with its tables),
        and, for the first model, ``table1``, ``table2``, ``table3``, ``model``, ``energy``.

    Raises:
        ValueError: bad arguments, an empty test split, or a physics mismatch.
        FileNotFoundError: a missing dataset or model file.

    Example::

        r = fastvp.evaluate.evaluate(["paper-1d", "field-energy-1d"], "data/eval", "reports/x")
    """
    from .data import Dataset, load_dataset

    ks = _steps_list(steps_list)
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    check.integer("chunk_size", chunk_size, 1)
    check.boolean("allow_mismatch", allow_mismatch)
    models = [(n, copy.deepcopy(m).to(device=device, dtype=dtype).eval())
              for n, m in _load_models(model)]
    baseline = _load_baseline(baseline)
    ds = data if isinstance(data, Dataset) else load_dataset(data)
    mismatch = _check_physics(models, ds.config, allow_mismatch, ds.problem)
    split = _test_split(ds, n_examples, models, baseline)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=split.n * len(models), unit="ex", desc="evaluate", leave=False)
    try:
        samples = [_sample_model(m, split, ks, chunk_size, device, dtype, bar) for _, m in models]
    finally:
        if bar is not None:
            bar.close()
    base = _sample_baseline(baseline, split, chunk_size, device, dtype) if baseline else None
    results = _results(ds, split, models, samples, baseline, base, mismatch,
                       min(split.n, chunk_size), device, dtype)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results["figures"] = _figures(out, results, split, samples[0].figures,
                                  base[2] if base else None)
    from .report import report_markdown

    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "report.md", report_markdown(results))
    return results


def _test_split(ds, n_examples, models, baseline) -> _Split:
    """The first n examples of the test split, checked against the models."""
    from .data import require_finite

    test = ds.split("test")
    if len(test) == 0:
        raise ValueError(f"data {str(ds.path)!r} has an empty test split ({len(ds)} examples; "
                         "the test split is the last 19.5 %)")
    n = len(test) if n_examples is None else n_examples
    try:
        n = check.integer("n_examples", n, 1, len(test))
    except ValueError as exc:
        raise ValueError(f"{exc} (the test split of {str(ds.path)!r})") from None
    if len(test.steps) < 2:
        raise ValueError(f"data must hold an initial and a final snapshot, got steps {test.steps}")
    require_finite(test, test.steps, n)
    T = test.times[-1]
    for name, m in models:
        if not math.isclose(getattr(m, "final_time", T), T, rel_tol=1e-9):
            raise ValueError(f"data reaches T = {T:g} but model {name!r} was made for "
                             f"T = {m.final_time:g}")
    if baseline is not None and baseline.n_particles != test.n_particles:
        raise ValueError(f"baseline expects N = {baseline.n_particles} particles, the data has "
                         f"{test.n_particles}")
    return _Split(q={s: np.array(test.q(s)[:n]) for s in test.steps},
                  p={s: np.array(test.p(s)[:n]) for s in test.steps},
                  steps=list(test.steps), times=list(test.times), n=n)


def _results(ds, split: _Split, models, samples, baseline, base, mismatch, timed, device,
             dtype) -> dict:
    from ._version import __version__

    test = ds.split("test")
    entries = []
    for (name, m), res in zip(models, samples, strict=True):
        e = {**_model_info(name, m, res, dtype, device, mismatch.get(name, [])),
             **_tables(res, split, timed)}
        e["energy"] = _energy(m, split, res.ks[0], device, dtype)
        entries.append(e)
    first = entries[0]
    ident_T = _entry(_identity(split, split.sT))
    results = {
        "fastvp_version": __version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": _machine(device),
        "data": {"path": str(ds.path), "config": test.config.to_dict(), "split": "test",
                 "n_examples": split.n, "n_test": len(test), "times": split.times,
                 "steps": split.steps, "layout": "fastvp" if ds.metadata else "authors"},
        "models": entries,
        "model": {k: v for k, v in first.items() if k not in ("table1", "table2", "table3", "energy")},
        "table1": {"pde_nhf": first["table1"], "identity": ident_T},
        "table2": first["table2"], "table3": first["table3"],
        "pic": _pic_timing(test, split, timed, device),
        "energy": {**first["energy"], "pic": _pic_energy(test.config, split)},
    }
    if baseline is not None:
        w, wall, _ = base
        results["table1"]["baseline"] = _entry(w, ident_T)
        results["baseline"] = {"n_parameters": baseline.n_parameters, "hidden": baseline.hidden,
                               "wall_s": wall, "ms_per_example": 1e3 * wall / split.n}
    return results


def _machine(device: torch.device) -> dict:
    d = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
         "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
         "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    return d


def _pic_timing(test, split: _Split, m: int, device: torch.device) -> dict:
    """Time PIC (float64, the dataset's config) on the first m test examples; check it
    reproduces their stored final snapshot."""
    from .pic.simulate import simulate

    q0, p0 = split.initial(0, m, device, torch.float64)
    simulate((q0[:2], p0[:2]), test.config)  # warm-up
    traj, wall = _timed(device, simulate, (q0, p0), test.config)
    diff = max(float(np.abs(traj.q[-1].cpu().numpy() - split.q[split.sT][:m]).max()),
               float(np.abs(traj.p[-1].cpu().numpy() - split.p[split.sT][:m]).max()))
    return {"n_examples": m, "dtype": "float64", "wall_s": wall, "ms_per_example": 1e3 * wall / m,
            "scheme": test.config.scheme, "max_abs_diff_to_data": diff}


def _energy(model, split: _Split, k: int, device, dtype) -> dict:
    """H = a^2 |p|^2 / 2 + V(q) after each of K leapfrog steps of dt = T / K.

    Leapfrog conserves a nearby ("shadow") Hamiltonian, so H oscillates without drifting;
    reported relative to the initial kinetic energy a^2 |p0|^2 / 2 (V has an arbitrary
    offset, so H itself sets no scale) and to |H_0|.
    """
    q, p = split.initial(0, ENERGY_EXAMPLES, device, dtype)
    p0 = p.detach().to("cpu", torch.float64)
    T, a2 = split.times[-1], _a(model) ** 2
    exact = copy.deepcopy(model).to(dtype=torch.float64)  # V in float64 whatever the run's dtype

    def hamiltonian(q, p):
        with torch.no_grad():
            return (0.5 * a2 * (p.double() ** 2).sum(dim=1) + exact.potential(q.double())).cpu()

    H = [hamiltonian(q, p)]
    for _ in range(k):
        q, p = model.sample(T / k, (q, p), steps=1)
        H.append(hamiltonian(q, p))
    H = torch.stack(H)                                   # [K + 1, B]
    kin0 = 0.5 * a2 * (p0 ** 2).sum(dim=1)
    dev = (H - H[0]).abs()
    return {"n_examples": int(q.shape[0]), "K": k,
            "max_rel_to_kinetic": float((dev.max(dim=0).values / kin0).mean()),
            "final_rel_to_kinetic": float((dev[-1] / kin0).mean()),
            "max_rel_to_H0": float((dev.max(dim=0).values / H[0].abs()).mean()),
            "H_mean_over_time": H.mean(dim=1).tolist()}


def _pic_energy(config, split: _Split) -> dict:
    """Relative change of PIC's total (kinetic + field) energy from t = 0 to T, for scale."""
    q0, qT = (torch.from_numpy(np.ascontiguousarray(split.q[s])) for s in (split.s0, split.sT))
    p0, pT = (torch.from_numpy(np.ascontiguousarray(split.p[s])) for s in (split.s0, split.sT))
    e0, eT = total_energy(q0, p0, config), total_energy(qT, pT, config)
    return {"rel_change_mean": float(((eT - e0).abs() / e0.abs()).mean())}


# ------------------------------------------------------------------ figures


def _figures(out: Path, results: dict, split: _Split, fig_model: dict, fig_base) -> list[str]:
    """The report's figures (the first model against PIC); returns their file names."""
    from . import plots

    keep = min(FIGURE_EXAMPLES, split.n)
    s0, sT, T, ex = split.s0, split.sT, split.times[-1], list(range(keep))
    samples = []
    for j in ex:
        d = {"initial": (split.q[s0][j], split.p[s0][j]), "PIC": (split.q[sT][j], split.p[sT][j]),
             "PDE-NHF": (fig_model[sT][0][j], fig_model[sT][1][j])}
        if fig_base is not None:
            d["baseline"] = (fig_base[0][j], fig_base[1][j])
        samples.append(d)
    later = split.steps[1:]
    figs = {
        "cdf_final.png": plots.plot_cdfs(samples, ex, T),
        "cdf_over_time.png": plots.plot_cdfs_over_time(
            split.times[1:], [(split.q[s][0], split.p[s][0]) for s in later],
            [(fig_model[s][0][0], fig_model[s][1][0]) for s in later], 0,
            initial=(split.q[s0][0], split.p[s0][0])),
        "phase_space.png": plots.plot_phase_space(
            [(split.q[sT][j], split.p[sT][j]) for j in ex],
            [(fig_model[sT][0][j], fig_model[sT][1][j]) for j in ex], ex, T,
            initial=[(split.q[s0][j], split.p[s0][j]) for j in ex]),
        "w1_vs_time.png": plots.plot_w1_vs_time(*_w1_curves(results, T)),
        "w1_vs_steps.png": plots.plot_w1_vs_steps(*_k_curves(results)),
    }
    for name, fig in figs.items():
        plots.save_figure(fig, out / name)
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
    t3, ident = results["table3"], results["table1"]["identity"]
    return ([r["K"] for r in t3], [r["q"]["mean"] for r in t3], [r["p"]["mean"] for r in t3],
            [r["ms_per_example"] for r in t3], (ident["q"]["mean"], ident["p"]["mean"]))


# ------------------------------------------------------------------ demo


def demo(out_dir, n_examples: int = 128, model="paper-1d", seed: int = 0, device="cpu",
         dtype: torch.dtype = torch.float32, steps=(25, 5), verbose: bool = True) -> dict:
    """PIC and the surrogate on the same paper-preset batch: W1, timings, speed-up, a figure.

    Draws `n_examples` initial conditions, simulates them with PIC (float64), samples the
    surrogate `model` (a bundled name or a file, in `dtype`) from the same initial particles
    with K = each of `steps`, prints W1 at T, wall times and the speed-up of each K over
    PIC, and writes ``demo.png`` into `out_dir`. Without the model (e.g. the bundled weights
    are not there yet) it says so and shows PIC alone. Returns the numbers printed.
    """
    from . import plots
    from .config import PICConfig
    from .initial import initial_conditions
    from .pic.simulate import simulate

    say = print if verbose else (lambda *a, **k: None)
    device, dtype, ks = resolve_device(device), resolve_dtype(dtype), _steps_list(steps)
    surrogate, reason = None, None
    try:
        surrogate = copy.deepcopy(_load_model(model)[1]).to(device=device, dtype=dtype)
    except (FileNotFoundError, ValueError) as exc:
        reason = str(exc)
        say(f"surrogate {str(model)!r} unavailable, showing PIC only: {reason}\n"
            "  (train one with `fastvp train`, then pass `--model FILE`)")
    cfg = getattr(surrogate, "config", None) or PICConfig()
    batch = initial_conditions(n_examples, cfg, seed=seed, device=device)
    simulate(batch[:2], cfg)  # warm-up
    traj, pic_s = _timed(device, simulate, batch, cfg)
    qT, pT = traj.q[-1].cpu(), traj.p[-1].cpu()
    result = {
        "n_examples": n_examples, "n_particles": cfg.n_particles, "T": cfg.final_time,
        "device": str(device), "reason": reason,
        "pic": {"wall_s": pic_s, "ms_per_example": 1e3 * pic_s / n_examples, "dtype": "float64",
                "scheme": cfg.scheme},
        "identity": {"w1_q": float(wasserstein_1d(batch.q.cpu(), qT).mean()),
                     "w1_p": float(wasserstein_1d(batch.p.cpu(), pT).mean())},
        "surrogate": None if surrogate is None else {"a": _a(surrogate), "dtype": str(dtype)},
    }
    say(f"PIC ({cfg.scheme}, float64, {device}): {n_examples} examples x {cfg.n_particles} "
        f"particles to T = {cfg.final_time:g} in {pic_s:.3f} s "
        f"({result['pic']['ms_per_example']:.2f} ms per example)")
    say(f"identity (initial particles as prediction): W1 positions {result['identity']['w1_q']:.4f}, "
        f"momenta {result['identity']['w1_p']:.4f}")
    samples = {}
    if surrogate is not None:
        from .report import describe_training

        made = describe_training(getattr(surrogate, "training_info", None))
        result["surrogate"]["made_by"] = made
        say(f"surrogate {str(model)!r}: {made}")
        result["surrogate"]["runs"] = _demo_runs(surrogate, batch, (qT, pT), ks, pic_s, device,
                                                 samples, say)
    sample = samples.get(ks[0])
    fig = plots.plot_demo((batch.q[0].cpu(), batch.p[0].cpu()), (qT[0], pT[0]),
                          None if sample is None else (sample[0][0], sample[1][0]), ks[0],
                          cfg.final_time, n_examples)
    result["figure"] = str(plots.save_figure(fig, Path(out_dir) / "demo.png"))
    say(f"figure: {result['figure']}")
    return result


def _demo_runs(surrogate, batch, final, ks, pic_s: float, device, samples: dict, say) -> list:
    """Sample the surrogate with each K, timed against PIC; fills samples {K: (q, p)}."""
    qT, pT = final
    T, n = surrogate.final_time, len(batch)
    surrogate.sample(T, batch[:2], steps=ks[0])  # warm-up
    rows = []
    for k in ks:
        (q, p), wall = _timed(device, surrogate.sample, T, batch, steps=k)
        samples[k] = (q.cpu(), p.cpu())
        row = {"K": k, "wall_s": wall, "ms_per_example": 1e3 * wall / n,
               "speedup_vs_pic": pic_s / wall, "w1_q": float(_w1(q, qT.numpy()).mean()),
               "w1_p": float(_w1(p, pT.numpy()).mean())}
        rows.append(row)
        say(f"PDE-NHF K = {k:2d} ({str(surrogate.dtype).removeprefix('torch.')}): W1 positions "
            f"{row['w1_q']:.4f}, momenta {row['w1_p']:.4f}; {wall:.3f} s "
            f"({row['ms_per_example']:.2f} ms per example), {row['speedup_vs_pic']:.2f}x PIC's speed")
    return rows
