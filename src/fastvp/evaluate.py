"""One-command evaluation of PDE-NHF against PIC: the paper's Tables 1-3 and Fig. 2.

``evaluate(model, data, out)`` feeds the model each test example's actual initial
particles (snapshot 0 of the dataset), so a perfect model reaches W1 = 0, and compares its
samples with the PIC snapshots by the 1D Wasserstein-1 distance (``fastvp.wasserstein_1d``):

* Table 1: W1 at T of PDE-NHF (K = first of `steps_list`), the baseline and the identity
  (the initial particles taken as the prediction), mean and standard error over the test
  examples, and as a percentage of the identity's W1;
* Table 2: W1 at the intermediate snapshot times (never supervised in training), reached
  by continuing the flow from one snapshot to the next with the step dt = T / K;
* Table 3: W1 at T and wall time of sampling the test split with K = `steps_list`;
* the learned a, the relative drift of the flow's Hamiltonian H = a^2 |p|^2 / 2 + V(q)
  along a sample (and of PIC's energy, for scale), and figures.

It writes ``report.md``, ``results.json`` and PNG figures into `out`, each atomically.
``demo`` is the quick look of ``fastvp demo``: PIC and the bundled surrogate on one batch.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .backend import resolve_device, resolve_dtype
from .files import atomic_write_text
from .metrics import total_energy, wasserstein_1d

#: Examples sampled at once: bounds memory, and a progress bar ticks per chunk.
CHUNK = 512
#: Test examples shown in the figures (the first ones of the split).
FIGURE_EXAMPLES = 3
#: Examples whose flow Hamiltonian is followed step by step.
ENERGY_EXAMPLES = 64


# ------------------------------------------------------------------ inputs


def _load_model(model):
    from .surrogate.model import Surrogate

    if isinstance(model, (str, os.PathLike)):
        return Surrogate.load(model)
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "sample"):
        raise ValueError("model must be a fastvp.Surrogate or a model name / file, got "
                         f"{type(model).__name__}")
    return model


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
) -> dict:
    """Evaluate PDE-NHF (and the baseline) on the test split of `data`; write a report.

    model: a fastvp.Surrogate, a bundled name or a model file. data: a fastvp.Dataset or a
    dataset folder. out: the report folder (report.md, results.json, *.png). baseline: a
    fastvp Baseline or its file (optional). steps_list: the K of Table 3; the first is the K
    of Tables 1 and 2. n_examples: the first n examples of the test split (default all).
    The model is copied and run on `device` in `dtype`; W1 is computed in float64.
    Returns the numbers of results.json.
    """
    from ._version import __version__
    from .data import Dataset, load_dataset

    ks = _steps_list(steps_list)
    dtype = resolve_dtype(dtype)
    device = resolve_device(device)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    model = copy.deepcopy(_load_model(model)).to(device=device, dtype=dtype)
    model.eval()
    baseline = _load_baseline(baseline)
    if baseline is not None:
        baseline = copy.deepcopy(baseline).to(device=device, dtype=dtype)
    ds = data if isinstance(data, Dataset) else load_dataset(data)
    test = ds.split("test")
    n = len(test) if n_examples is None else n_examples
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(test):
        raise ValueError(f"n_examples must be an integer in [1, {len(test)}] (the test split of "
                         f"{str(ds.path)!r}), got {n_examples!r}")
    n = int(n)
    steps, times = test.steps, test.times
    if len(steps) < 2:
        raise ValueError(f"data must hold an initial and a final snapshot, got steps {steps}")
    T = times[-1]
    model_T = getattr(model, "final_time", T)
    if not math.isclose(model_T, T, rel_tol=1e-9):
        raise ValueError(f"data reaches T = {T:g} but the model was made for T = {model_T:g}")
    if baseline is not None and baseline.n_particles != test.n_particles:
        raise ValueError(f"baseline expects N = {baseline.n_particles} particles, the data has "
                         f"{test.n_particles}")
    q_data = {s: np.array(test.q(s)[:n]) for s in steps}
    p_data = {s: np.array(test.p(s)[:n]) for s in steps}
    s0, sT = steps[0], steps[-1]
    inner = steps[1:-1]
    k_main = ks[0]
    # leapfrog steps of the main K between consecutive snapshots (dt = T / K, as in training)
    exact = [k_main * (times[i + 1] - times[i]) / T for i in range(len(steps) - 1)]
    hops = [max(1, round(x)) for x in exact]
    # Flow_T is K steps of dt = T / K whichever way they are grouped: when the snapshots fall
    # on whole steps, the chain through them gives Table 1's sample too (no second run)
    chain_to_T = all(abs(x - h) < 1e-9 for x, h in zip(exact, hops, strict=True))
    m_time = min(n, chunk_size)

    w_model = {k: {"q": np.empty(n), "p": np.empty(n)} for k in ks}
    w_inner = {s: {"q": np.empty(n), "p": np.empty(n)} for s in inner}
    w_base = {"q": np.empty(n), "p": np.empty(n)}
    wall = dict.fromkeys(ks, 0.0)
    wall_base = 0.0
    chain_diff = None
    keep = min(FIGURE_EXAMPLES, n)
    fig_model: dict = {}
    fig_base = None

    def timed(f, *args, **kw):
        _sync(device)
        t0 = time.perf_counter()
        r = f(*args, **kw)
        _sync(device)
        return r, time.perf_counter() - t0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="ex", desc="evaluate", leave=False)
    try:
        for lo in range(0, n, chunk_size):
            hi = min(n, lo + chunk_size)
            q0 = torch.as_tensor(q_data[s0][lo:hi], device=device, dtype=dtype)
            p0 = torch.as_tensor(p_data[s0][lo:hi], device=device, dtype=dtype)
            final = {}
            if lo == 0:  # Table 3's wall times: straight to T in K steps, on the first chunk
                for k in ks:
                    final[k], wall[k] = timed(model.sample, T, (q0, p0), steps=k)
            q, p = q0, p0  # Table 2: the flow continued from snapshot to snapshot
            for i, s in enumerate(steps[1:] if chain_to_T else inner):
                q, p = model.sample(times[i + 1] - times[i], (q, p), steps=hops[i])
                if s != sT:
                    w_inner[s]["q"][lo:hi] = _w1(q, q_data[s][lo:hi])
                    w_inner[s]["p"][lo:hi] = _w1(p, p_data[s][lo:hi])
                    if lo == 0:
                        fig_model[s] = (q[:keep].cpu(), p[:keep].cpu())
            if chain_to_T:
                if lo == 0:
                    chain_diff = max(float((q - final[k_main][0]).abs().max()),
                                     float((p - final[k_main][1]).abs().max()))
                final[k_main] = (q, p)
            for k in ks:  # Tables 1 and 3: W1 at T
                if k not in final:
                    final[k] = model.sample(T, (q0, p0), steps=k)
                w_model[k]["q"][lo:hi] = _w1(final[k][0], q_data[sT][lo:hi])
                w_model[k]["p"][lo:hi] = _w1(final[k][1], p_data[sT][lo:hi])
            if lo == 0:
                fig_model[sT] = (final[k_main][0][:keep].cpu(), final[k_main][1][:keep].cpu())
            if baseline is not None:
                (qb, pb), dt_b = timed(baseline.predict, (q0, p0))
                wall_base += dt_b
                w_base["q"][lo:hi] = _w1(qb, q_data[sT][lo:hi])
                w_base["p"][lo:hi] = _w1(pb, p_data[sT][lo:hi])
                if lo == 0:
                    fig_base = (qb[:keep].cpu(), pb[:keep].cpu())
            if bar is not None:
                bar.update(hi - lo)
    finally:
        if bar is not None:
            bar.close()

    def identity(s):
        return {v: wasserstein_1d(torch.from_numpy(x[s0]), torch.from_numpy(x[s])).numpy()
                for v, x in (("q", q_data), ("p", p_data))}

    def entry(w, ident=None):
        e = {v: _stats(w[v]) for v in ("q", "p")}
        if ident is not None:
            e["percent_of_identity"] = {v: 100 * e[v]["mean"] / ident[v]["mean"]
                                        for v in ("q", "p")}
        return e

    ident_T = entry(identity(sT))
    table1 = {"pde_nhf": entry(w_model[k_main], ident_T), "identity": ident_T}
    if baseline is not None:
        table1["baseline"] = entry(w_base, ident_T)
    table2 = []
    for i, s in enumerate(inner):
        table2.append({"t": times[i + 1], "step": s, "leapfrog_steps": sum(hops[: i + 1]),
                       "pde_nhf": entry(w_inner[s]), "identity": entry(identity(s))})
    table3 = [{"K": k, "dt": T / k, "q": _stats(w_model[k]["q"]), "p": _stats(w_model[k]["p"]),
               "wall_s": wall[k], "timed_examples": m_time,
               "ms_per_example": 1e3 * wall[k] / m_time,
               "split_s_estimate": wall[k] * n / m_time,
               "gradient_evaluations": k + 1} for k in ks]

    pic = _pic_timing(test, q_data, p_data, min(n, chunk_size), device)
    energy = _energy(model, q_data[s0][:ENERGY_EXAMPLES], p_data[s0][:ENERGY_EXAMPLES], T, k_main,
                     device, dtype)
    energy["pic"] = _pic_energy(test.config, q_data, p_data, s0, sT)

    results = {
        "fastvp_version": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": _machine(device),
        "data": {"path": str(ds.path), "config": test.config.to_dict(), "split": "test",
                 "n_examples": n, "n_test": len(test), "times": times, "steps": steps},
        "model": {"a": _a(model), "dtype": str(dtype).removeprefix("torch."), "device": str(device),
                  "K": k_main, "train_K": getattr(model, "steps", None),
                  "chained_to_T": chain_to_T, "chain_vs_direct_max_abs_diff": chain_diff,
                  "n_parameters": sum(p.numel() for p in model.parameters())},
        "table1": table1,
        "table2": table2,
        "table3": table3,
        "pic": pic,
        "energy": energy,
    }
    if baseline is not None:
        results["baseline"] = {"n_parameters": baseline.n_parameters, "hidden": baseline.hidden,
                               "wall_s": wall_base, "ms_per_example": 1e3 * wall_base / n}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results["figures"] = _figures(out, results, q_data, p_data, fig_model, fig_base, keep)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "report.md", report_markdown(results))
    return results


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _machine(device: torch.device) -> dict:
    d = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
         "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
         "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    return d


def _pic_timing(test, q_data, p_data, m: int, device: torch.device) -> dict:
    """Time PIC (float64, the dataset's config) on the first m test examples; check it
    reproduces their stored final snapshot."""
    from .pic.simulate import simulate

    s0, sT = test.steps[0], test.steps[-1]
    q0 = torch.as_tensor(q_data[s0][:m], device=device, dtype=torch.float64)
    p0 = torch.as_tensor(p_data[s0][:m], device=device, dtype=torch.float64)
    simulate((q0[:2], p0[:2]), test.config)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    traj = simulate((q0, p0), test.config)
    _sync(device)
    wall = time.perf_counter() - t0
    diff = max(float(np.abs(traj.q[-1].cpu().numpy() - q_data[sT][:m]).max()),
               float(np.abs(traj.p[-1].cpu().numpy() - p_data[sT][:m]).max()))
    return {"n_examples": m, "dtype": "float64", "wall_s": wall, "ms_per_example": 1e3 * wall / m,
            "scheme": test.config.scheme, "max_abs_diff_to_data": diff}


def _energy(model, q0: np.ndarray, p0: np.ndarray, T: float, k: int, device, dtype) -> dict:
    """H = a^2 |p|^2 / 2 + V(q) after each of K leapfrog steps of dt = T / K.

    Leapfrog conserves a nearby ("shadow") Hamiltonian, so H oscillates without drifting;
    reported relative to the initial kinetic energy a^2 |p0|^2 / 2 (V has an arbitrary
    offset, so H itself sets no scale) and to |H_0|.
    """
    q = torch.as_tensor(q0, device=device, dtype=dtype)
    p = torch.as_tensor(p0, device=device, dtype=dtype)
    a2 = _a(model) ** 2
    exact = copy.deepcopy(model).to(dtype=torch.float64)  # V in float64 whatever the run's dtype

    def hamiltonian(q, p):
        with torch.no_grad():
            return (0.5 * a2 * (p.double() ** 2).sum(dim=1) + exact.potential(q.double())).cpu()

    H = [hamiltonian(q, p)]
    for _ in range(k):
        q, p = model.sample(T / k, (q, p), steps=1)
        H.append(hamiltonian(q, p))
    H = torch.stack(H)                                   # [K + 1, B]
    kin0 = 0.5 * a2 * (torch.as_tensor(p0, dtype=torch.float64) ** 2).sum(dim=1)
    dev = (H - H[0]).abs()
    return {
        "n_examples": int(q.shape[0]), "K": k,
        "max_rel_to_kinetic": float((dev.max(dim=0).values / kin0).mean()),
        "final_rel_to_kinetic": float((dev[-1] / kin0).mean()),
        "max_rel_to_H0": float((dev.max(dim=0).values / H[0].abs()).mean()),
        "H_mean_over_time": H.mean(dim=1).tolist(),
    }


def _pic_energy(config, q_data, p_data, s0: int, sT: int) -> dict:
    """Relative change of PIC's total (kinetic + field) energy from t = 0 to T, for scale."""
    q0, qT = (torch.from_numpy(np.ascontiguousarray(q_data[s])) for s in (s0, sT))
    p0, pT = (torch.from_numpy(np.ascontiguousarray(p_data[s])) for s in (s0, sT))
    e0, eT = total_energy(q0, p0, config), total_energy(qT, pT, config)
    return {"rel_change_mean": float(((eT - e0).abs() / e0.abs()).mean())}


# ------------------------------------------------------------------ figures and report


def _figures(out: Path, results: dict, q_data, p_data, fig_model, fig_base, keep: int) -> list[str]:
    from . import plots

    steps, times = results["data"]["steps"], results["data"]["times"]
    s0, sT = steps[0], steps[-1]
    T = times[-1]
    names = []
    ex = list(range(keep))
    samples = []
    for j in ex:
        d = {"initial": (q_data[s0][j], p_data[s0][j]), "PIC": (q_data[sT][j], p_data[sT][j]),
             "PDE-NHF": (fig_model[sT][0][j], fig_model[sT][1][j])}
        if fig_base is not None:
            d["baseline"] = (fig_base[0][j], fig_base[1][j])
        samples.append(d)
    figs = {
        "cdf_final.png": plots.plot_cdfs(samples, ex, T),
        "cdf_over_time.png": plots.plot_cdfs_over_time(
            times[1:], [(q_data[s][0], p_data[s][0]) for s in steps[1:]],
            [(fig_model[s][0][0], fig_model[s][1][0]) for s in steps[1:]], 0,
            initial=(q_data[s0][0], p_data[s0][0])),
        "phase_space.png": plots.plot_phase_space(
            [(q_data[sT][j], p_data[sT][j]) for j in ex],
            [(fig_model[sT][0][j], fig_model[sT][1][j]) for j in ex], ex, T,
            initial=[(q_data[s0][j], p_data[s0][j]) for j in ex]),
    }
    t1 = results["table1"]
    rows = results["table2"]
    curve_t = [r["t"] for r in rows] + [T]

    def curve(key, final):
        return {v: ([r[key][v]["mean"] for r in rows] + [final[v]["mean"]],
                    [r[key][v]["sem"] for r in rows] + [final[v]["sem"]]) for v in ("q", "p")}

    curves = {"PDE-NHF": curve("pde_nhf", t1["pde_nhf"]),
              "identity": curve("identity", t1["identity"])}
    figs["w1_vs_time.png"] = plots.plot_w1_vs_time(curve_t, curves)
    t3 = results["table3"]
    figs["w1_vs_steps.png"] = plots.plot_w1_vs_steps(
        [r["K"] for r in t3], [r["q"]["mean"] for r in t3], [r["p"]["mean"] for r in t3],
        [r["ms_per_example"] for r in t3],
        (t1["identity"]["q"]["mean"], t1["identity"]["p"]["mean"]))
    for name, fig in figs.items():
        plots.save_figure(fig, out / name)
        names.append(name)
    return names


def _pm(e: dict, digits: int = 4) -> str:
    return f"{e['mean']:.{digits}f} ± {e['sem']:.{digits}f}"


def report_markdown(r: dict) -> str:
    """The markdown report of a results dictionary (as written to results.json)."""
    d, m, t1 = r["data"], r["model"], r["table1"]
    T = d["times"][-1]
    lines = [
        "# PDE-NHF evaluation",
        "",
        f"Data: `{d['path']}` ({d['config']['scheme']} scheme), test split: {d['n_examples']} of "
        f"{d['n_test']} examples, N = {d['config']['n_particles']} particles, T = {T:g}. "
        f"Model: a = {m['a']:.4f}, {m['n_parameters']:,} parameters, run in {m['dtype']} on "
        f"{m['device']}, K = {m['K']} leapfrog steps (trained with K = {m['train_K']}).",
        f"Machine: {r['machine']['processor']}, {r['machine']['cpu_count']} CPUs"
        + (f", {r['machine']['gpu']}" if "gpu" in r["machine"] else "")
        + f"; torch {r['machine']['torch']}; fastvp {r['fastvp_version']}; {r['date']}.",
        "",
        "Every model is fed each example's actual initial particles, so a perfect model has "
        "W1 = 0. *Identity* takes the initial particles as the prediction. W1 is the 1D "
        "Wasserstein-1 distance to the PIC sample, mean ± standard error over the test examples.",
        "",
        f"## Table 1: W1 at T = {T:g}",
        "",
        "| model | positions | momenta | positions, % of identity | momenta, % of identity |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, label in (("pde_nhf", f"PDE-NHF (K = {m['K']})"), ("baseline", "baseline (2 MLPs)"),
                       ("identity", "identity")):
        if key not in t1:
            continue
        e = t1[key]
        pct = e.get("percent_of_identity", {"q": 100.0, "p": 100.0})
        lines.append(f"| {label} | {_pm(e['q'])} | {_pm(e['p'])} | {pct['q']:.2f} % | "
                     f"{pct['p']:.2f} % |")
    lines += [
        "",
        "## Table 2: W1 at intermediate times (never supervised in training)",
        "",
        f"PDE-NHF continued from snapshot to snapshot with dt = T / {m['K']} (the flow is "
        "autonomous: K steps in groups are K steps)"
        + (f"; the chain's state at T equals the direct K-step sample to "
           f"{m['chain_vs_direct_max_abs_diff']:.1e}." if m["chained_to_T"] else "."),
        "",
        "| t | leapfrog steps | PDE-NHF positions | PDE-NHF momenta | identity positions "
        "| identity momenta |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["table2"]:
        lines.append(f"| {row['t']:g} | {row['leapfrog_steps']} | {_pm(row['pde_nhf']['q'])} | "
                     f"{_pm(row['pde_nhf']['p'])} | {_pm(row['identity']['q'])} | "
                     f"{_pm(row['identity']['p'])} |")
    lines.append(f"| {T:g} (trained) | {m['K']} | {_pm(t1['pde_nhf']['q'])} | "
                 f"{_pm(t1['pde_nhf']['p'])} | {_pm(t1['identity']['q'])} | "
                 f"{_pm(t1['identity']['p'])} |")
    t3 = r["table3"]
    ref = next((row for row in t3 if row["K"] == m["K"]), t3[0])
    lines += [
        "",
        f"## Table 3: fewer leapfrog steps (t = T = {T:g}, dt = T / K)",
        "",
        f"W1 over the {d['n_examples']} test examples. Wall time of one `model.sample(T, batch, "
        f"steps=K)` call on the first {t3[0]['timed_examples']} of them ({m['dtype']}, "
        f"{m['device']}); the last column scales it to all {d['n_examples']}.",
        "",
        "| K | dt | positions | momenta | gradient evaluations | wall time (s) | ms / example "
        "| speed-up | all examples (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in t3:
        lines.append(f"| {row['K']} | {row['dt']:.4g} | {_pm(row['q'])} | {_pm(row['p'])} | "
                     f"{row['gradient_evaluations']} | {row['wall_s']:.2f} | "
                     f"{row['ms_per_example']:.3f} | "
                     f"{ref['wall_s'] / row['wall_s']:.1f}x | {row['split_s_estimate']:.1f} |")
    pic = r["pic"]
    lines += [
        "",
        f"PIC ({pic['scheme']} scheme, float64, same device) on the first {pic['n_examples']} test "
        f"examples: {pic['ms_per_example']:.3f} ms / example; it reproduces the stored final "
        f"snapshot to {pic['max_abs_diff_to_data']:.2e} (max abs difference).",
    ]
    if "baseline" in r:
        b = r["baseline"]
        lines.append(f"Baseline: {b['n_parameters']:,} parameters (hidden width {b['hidden']}), "
                     f"{b['ms_per_example']:.4f} ms / example.")
    e = r["energy"]
    lines += [
        "",
        "## Learned Hamiltonian",
        "",
        f"Learned a = {m['a']:.4f} (inverse mass a^2 = {m['a'] ** 2:.4f}; the data were made "
        "with 1).",
        "",
        f"Flow Hamiltonian H = a^2 |p|^2 / 2 + V(q) along a sample ({e['n_examples']} test "
        "examples, "
        f"K = {e['K']} single leapfrog steps to T): largest |H_k - H_0| is "
        f"{e['max_rel_to_kinetic']:.2e} of the initial kinetic energy "
        f"({e['max_rel_to_H0']:.2e} of |H_0|); at T, {e['final_rel_to_kinetic']:.2e}. "
        f"For scale, PIC's total (kinetic + field) energy changes by "
        f"{e['pic']['rel_change_mean']:.2e} (relative, mean) from 0 to T on the test examples.",
        "",
        "## Figures",
        "",
    ]
    captions = {
        "cdf_final.png": "Cumulative histograms at T (Fig. 2 style), first test examples",
        "cdf_over_time.png": "Cumulative histograms of test example 0 over time",
        "phase_space.png": "Phase space at T, PIC vs PDE-NHF",
        "w1_vs_time.png": "W1 against time",
        "w1_vs_steps.png": "W1 and wall time against K",
    }
    for name in r.get("figures", []):
        lines.append(f"![{captions.get(name, name)}]({name})")
        lines.append("")
    return "\n".join(lines)




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
    device = resolve_device(device)
    dtype = resolve_dtype(dtype)
    ks = _steps_list(steps)
    surrogate, reason = None, None
    try:
        surrogate = copy.deepcopy(_load_model(model)).to(device=device, dtype=dtype)
    except (FileNotFoundError, ValueError) as exc:
        reason = str(exc)
        say(f"surrogate {str(model)!r} unavailable, showing PIC only: {reason}\n"
            "  (train one with `fastvp train`, then pass `--model FILE`)")
    cfg = getattr(surrogate, "config", None) or PICConfig()
    batch = initial_conditions(n_examples, cfg, seed=seed, device=device)
    simulate(batch[:2], cfg)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    traj = simulate(batch, cfg)
    _sync(device)
    pic_s = time.perf_counter() - t0
    T = cfg.final_time
    qT, pT = traj.q[-1].cpu(), traj.p[-1].cpu()
    result = {
        "n_examples": n_examples, "n_particles": cfg.n_particles, "T": T, "device": str(device),
        "pic": {"wall_s": pic_s, "ms_per_example": 1e3 * pic_s / n_examples, "dtype": "float64",
                "scheme": cfg.scheme},
        "identity": {"w1_q": float(wasserstein_1d(batch.q.cpu(), qT).mean()),
                     "w1_p": float(wasserstein_1d(batch.p.cpu(), pT).mean())},
        "surrogate": None if surrogate is None else {"a": _a(surrogate), "dtype": str(dtype)},
        "reason": reason,
    }
    say(f"PIC ({cfg.scheme}, float64, {device}): {n_examples} examples x {cfg.n_particles} "
        f"particles to T = {T:g} in {pic_s:.3f} s ({result['pic']['ms_per_example']:.2f} ms "
        "per example)")
    ident = result["identity"]
    say(f"identity (initial particles as prediction): W1 positions {ident['w1_q']:.4f}, "
        f"momenta {ident['w1_p']:.4f}")
    samples = {}
    if surrogate is not None:
        surrogate.sample(T, batch[:2], steps=ks[0])  # warm-up
        rows = []
        for k in ks:
            _sync(device)
            t0 = time.perf_counter()
            q, p = surrogate.sample(T, batch, steps=k)
            _sync(device)
            wall = time.perf_counter() - t0
            samples[k] = (q.cpu(), p.cpu())
            row = {"K": k, "wall_s": wall, "ms_per_example": 1e3 * wall / n_examples,
                   "speedup_vs_pic": pic_s / wall,
                   "w1_q": float(_w1(q, qT.numpy()).mean()),
                   "w1_p": float(_w1(p, pT.numpy()).mean())}
            rows.append(row)
            say(f"PDE-NHF K = {k:2d} ({str(dtype).removeprefix('torch.')}): W1 positions "
                f"{row['w1_q']:.4f}, momenta {row['w1_p']:.4f}; {wall:.3f} s "
                f"({row['ms_per_example']:.2f} ms per example), "
                f"{row['speedup_vs_pic']:.2f}x PIC's speed")
        result["surrogate"]["runs"] = rows

    fig, axes = plots._figure(1, 3, 4.0, 3.4)
    ax_q, ax_p, ax_ph = axes[0]
    plots._ecdf(ax_q, batch.q[0].cpu(), "initial")
    plots._ecdf(ax_p, batch.p[0].cpu(), "initial")
    plots._ecdf(ax_q, qT[0], "PIC")
    plots._ecdf(ax_p, pT[0], "PIC")
    ax_ph.scatter(batch.q[0].cpu(), batch.p[0].cpu(), s=4, color=plots.COLORS["initial"],
                  label="initial (t = 0)")
    ax_ph.scatter(qT[0], pT[0], s=7, color=plots.COLORS["PIC"], label="PIC")
    if samples:
        q, p = samples[ks[0]]
        plots._ecdf(ax_q, q[0], "PDE-NHF")
        plots._ecdf(ax_p, p[0], "PDE-NHF")
        ax_ph.scatter(q[0], p[0], s=7, facecolors="none", edgecolors=plots.COLORS["PDE-NHF"],
                      lw=0.8, label=f"PDE-NHF (K = {ks[0]})")
    ax_q.set(xlabel="position q", ylabel="cumulative fraction", title=f"positions, t = {T:g}")
    ax_p.set(xlabel="momentum p", ylabel="cumulative fraction", title=f"momenta, t = {T:g}")
    ax_ph.set(xlabel="position q", ylabel="momentum p", title=f"phase space, t = {T:g}")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    who = "PIC vs PDE-NHF" if samples else "PIC only (no surrogate weights)"
    fig.suptitle(f"fastvp demo, example 0 of {n_examples}: {who}, same initial particles")
    path = plots.save_figure(fig, Path(out_dir) / "demo.png")
    result["figure"] = str(path)
    say(f"figure: {path}")
    return result
