"""One-command evaluation of PDE-NHF models against PIC: the paper's Tables 1-3 and Fig. 2.

``evaluate_models(models, data, out)`` feeds every model each test example's actual initial
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

The inputs are read in ``inputs``, sampled in ``sampling``, tabulated here, written by
``report`` and drawn by ``figures``.
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
from tqdm.auto import tqdm

from .. import arguments
from .._version import __version__
from ..backend import resolve_device, resolve_dtype
from ..data import Dataset, load_dataset
from ..files import atomic_write_text
from ..metrics import wasserstein_1d
from ..pic.diagnostics import total_energy
from ..surrogate.baseline import Baseline
from .figures import write_figures
from .inputs import (
    Split,
    check_physics,
    load_models,
    model_a,
    parse_steps_list,
    read_test_split,
)
from .report import report_markdown
from .sampling import CHUNK, BaselineSamples, Samples, hops, sample_baseline, sample_model, time_pic

#: Examples whose flow Hamiltonian is followed step by step.
ENERGY_EXAMPLES = 64


@dataclass
class Evaluation:
    """One evaluation's state: the data and its test split, the models and the baseline,
    where they run, and what sampling them gave."""

    data: Dataset
    split: Split
    models: list                  # [(display name, Surrogate)], on `device` in `dtype`; may
                                  # be empty when a baseline is evaluated alone
    mismatch: dict                # display name -> physics mismatches (allowed ones)
    device: torch.device
    dtype: torch.dtype
    timed: int                    # examples of the first chunk, on which wall times are taken
    baseline: Baseline | None = None
    samples: list[Samples] = field(default_factory=list)  # one per model
    base: BaselineSamples | None = None


# ------------------------------------------------------------------ tables


def _stats(x: np.ndarray) -> dict:
    """Mean and standard error of per-example values."""
    n = x.size
    sem = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(x.mean()), "sem": sem}


def _entry(w: dict, ident: dict | None = None) -> dict:
    e = {v: _stats(w[v]) for v in ("q", "p")}
    if ident is not None:
        e["percent_of_identity"] = {v: 100 * e[v]["mean"] / ident[v]["mean"] for v in ("q", "p")}
    return e


def _identity(split: Split, s: int) -> dict:
    return {v: wasserstein_1d(torch.from_numpy(x[split.s0]), torch.from_numpy(x[s])).numpy()
            for v, x in (("q", split.q), ("p", split.p))}


def _tables(res: Samples, split: Split, timed: int) -> dict:
    """Tables 1-3 of one model: {"table1": entry, "table2": [rows], "table3": [rows]}."""
    ident_T = _entry(_identity(split, split.sT))
    T, k_main = split.times[-1], res.ks[0]
    between, _ = hops(split, k_main)
    table2 = [{"t": split.times[i + 1], "step": s, "leapfrog_steps": sum(between[: i + 1]),
               "pde_nhf": _entry(res.w_inner[s]), "identity": _entry(_identity(split, s))}
              for i, s in enumerate(res.inner)]
    table3 = [{"K": k, "dt": T / k, "q": _stats(res.w_final[k]["q"]),
               "p": _stats(res.w_final[k]["p"]), "wall_s": res.wall[k], "timed_examples": timed,
               "ms_per_example": 1e3 * res.wall[k] / timed,
               "split_s_estimate": res.wall[k] * split.n / timed, "gradient_evaluations": k + 1}
              for k in res.ks]
    return {"table1": _entry(res.w_final[k_main], ident_T), "table2": table2, "table3": table3}


def _model_info(name: str, model, res: Samples, dtype, device, mismatch) -> dict:
    training = getattr(model, "training_info", None) or {}
    return {"name": name, "a": model_a(model), "dtype": str(dtype).removeprefix("torch."),
            "device": str(device), "K": res.ks[0], "train_K": getattr(model, "steps", None),
            "chained_to_T": res.chain_diff is not None,
            "chain_vs_direct_max_abs_diff": res.chain_diff,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "training": training, "physics_mismatch": mismatch}


# ------------------------------------------------------------------ evaluation


def evaluate_models(
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
            (compared in one report); a baseline (a Baseline or its file, told by its
            header) among them is the baseline. None or []: the baseline alone.
        data: a fastvp.Dataset or a dataset folder.
        out: the report folder (report.md, results.json, *.png).
        baseline: a fastvp Baseline or its file (optional; one baseline in all).
        steps_list: the K of Table 3; the first is the K of Tables 1 and 2.
        n_examples: the first n examples of the test split (default all).
        device, dtype: where and in what precision the models run (W1 is float64).
        allow_mismatch: evaluate a model on data of other physics (interaction, scheme,
            charge, q/m, box, grid, N, dt, steps) than its training data.

    Returns:
        The numbers of results.json: ``models`` (one entry per model with its tables),
        and, for the first model, ``table1``, ``table2``, ``table3``, ``model``, ``energy``
        (a baseline alone: ``table1`` of the baseline and the identity, ``model`` None).

    Raises:
        ValueError: bad arguments, an empty test split, or a physics mismatch.
        FileNotFoundError: a missing dataset or model file.

    Example::

        r = fastvp.evaluation.evaluate_models(["paper-1d", "field-energy-1d"], "data/eval",
                                              "reports/x")
    """
    ks = parse_steps_list(steps_list)
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    arguments.integer("chunk_size", chunk_size, 1)
    arguments.boolean("allow_mismatch", allow_mismatch)
    models, baseline = load_models(model, baseline)
    models = [(n, copy.deepcopy(m).to(device=device, dtype=dtype).eval()) for n, m in models]
    ds = data if isinstance(data, Dataset) else load_dataset(data)
    mismatch = check_physics(models, ds.config, allow_mismatch, ds.problem)
    split = read_test_split(ds, n_examples, models, baseline)
    ev = Evaluation(ds, split, models, mismatch, device, dtype, timed=min(split.n, chunk_size),
                    baseline=baseline)
    bar = None
    if progress:
        bar = tqdm(total=split.n * len(models), unit="ex", desc="evaluate", leave=False)
    try:
        ev.samples = [sample_model(m, split, ks, chunk_size, device, dtype, bar) for _, m in models]
    finally:
        if bar is not None:
            bar.close()
    ev.base = sample_baseline(baseline, split, chunk_size, device, dtype) if baseline else None
    results = _results(ev)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results["figures"] = write_figures(out, results, split,
                                       ev.samples[0].figures if ev.samples else None,
                                       ev.base.figures if ev.base else None)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "report.md", report_markdown(results))
    return results


def _results(ev: Evaluation) -> dict:
    """The numbers of results.json (without "figures") of a sampled evaluation."""
    split = ev.split
    test = ev.data.split("test")
    entries = []
    for (name, m), res in zip(ev.models, ev.samples, strict=True):
        e = {**_model_info(name, m, res, ev.dtype, ev.device, ev.mismatch.get(name, [])),
             **_tables(res, split, ev.timed)}
        e["energy"] = _energy(m, split, res.ks[0], ev.device, ev.dtype)
        entries.append(e)
    first = entries[0] if entries else {"table1": None, "table2": [], "table3": [], "energy": {}}
    ident_T = _entry(_identity(split, split.sT))
    results = {
        "fastvp_version": __version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": _machine(ev.device),
        "data": {"path": str(ev.data.path), "config": test.config.to_dict(), "split": "test",
                 "n_examples": split.n, "n_test": len(test), "times": split.times,
                 "steps": split.steps, "layout": "fastvp" if ev.data.metadata else "authors"},
        "models": entries,
        "model": {k: v for k, v in first.items() if k not in ("table1", "table2", "table3", "energy")}
        if entries else None,
        "table1": {"pde_nhf": first["table1"], "identity": ident_T} if entries
        else {"identity": ident_T},
        "table2": first["table2"], "table3": first["table3"],
        "pic": time_pic(test, split, ev.timed, ev.device),
        "energy": {**first["energy"], "pic": _pic_energy(test.config, split)},
    }
    if ev.baseline is not None:
        w, wall = ev.base.w1, ev.base.wall_s
        results["table1"]["baseline"] = _entry(w, ident_T)
        results["baseline"] = {"n_parameters": ev.baseline.n_parameters,
                               "hidden": ev.baseline.hidden, "wall_s": wall,
                               "ms_per_example": 1e3 * wall / split.n}
    return results


def _machine(device: torch.device) -> dict:
    d = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
         "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
         "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    return d


# ------------------------------------------------------------------ energy


def _energy(model, split: Split, k: int, device, dtype) -> dict:
    """H = a^2 |p|^2 / 2 + V(q) after each of K leapfrog steps of dt = T / K.

    Leapfrog conserves a nearby ("shadow") Hamiltonian, so H oscillates without drifting;
    reported relative to the initial kinetic energy a^2 |p0|^2 / 2 (V has an arbitrary
    offset, so H itself sets no scale) and to |H_0|.
    """
    q, p = split.initial(0, ENERGY_EXAMPLES, device, dtype)
    p0 = p.detach().to("cpu", torch.float64)
    T, a2 = split.times[-1], model_a(model) ** 2
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


def _pic_energy(config, split: Split) -> dict:
    """Relative change of PIC's total (kinetic + field) energy from t = 0 to T, for scale."""
    q0, qT = (torch.from_numpy(np.ascontiguousarray(split.q[s])) for s in (split.s0, split.sT))
    p0, pT = (torch.from_numpy(np.ascontiguousarray(split.p[s])) for s in (split.s0, split.sT))
    e0, eT = total_energy(q0, p0, config), total_energy(qT, pT, config)
    return {"rel_change_mean": float(((eT - e0).abs() / e0.abs()).mean())}
