"""``fastvp evaluate``: the paper's Tables 1-3 and figures of a surrogate on a test split;
any model file (PDE-NHF or the baseline, as the file says) is scored."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..backend import resolve_dtype
from ..data import load_dataset
from ..evaluation import evaluate_models
from ..evaluation.problem import evaluate_problem_models
from ..surrogate.loading import model_kind
from ..surrogate.model import Surrogate
from ._common import add_common, check_out


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", help="W1 tables and figures of a surrogate on a dataset's test split",
        description="Evaluate PDE-NHF models and/or the baseline against PIC on the test "
                    "split: writes report.md, results.json and PNG figures (the paper's "
                    "Tables 1-3, Fig. 2). Any model file is scored: a PDE-NHF model or a "
                    "baseline, told apart by what the file says it is.")
    p.add_argument("--model", default=None, action="append",
                   help="a model: bundled name (paper-1d, field-energy-1d, ...), a fastvp "
                   ".safetensors file (PDE-NHF or baseline) or the authors' torch checkpoint "
                   "(read by its format); repeat to compare several models in one report "
                   "(at most one baseline)")
    p.add_argument("--data", required=True, help="dataset folder (fastvp or official layout)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--baseline", default=None,
                   help="baseline .safetensors file (optional; the same as --model FILE)")
    p.add_argument("--examples", type=int, default=None,
                   help="evaluate the first N test examples (default: the whole test split)")
    p.add_argument("--steps", type=int, nargs="+", default=[25, 10, 5, 2, 1],
                   help="leapfrog steps K of Table 3; the first is used for Tables 1-2 "
                        "(default 25 10 5 2 1)")
    p.add_argument("--chunk", type=int, default=512, help="examples sampled at once (default 512)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="evaluate even if the data's physics differs from a model's training data")
    add_common(p, dtype="float32", dtype_help=": the models'; W1 is computed in float64")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if not args.model and args.baseline is None:
        raise ValueError("--model or --baseline is needed: the model(s) to evaluate")
    check_out(args.out)  # before any model is sampled
    torch.manual_seed(0 if args.seed is None else args.seed)
    problem = load_dataset(args.data).problem
    nhf = [m for m in args.model or [] if model_kind(m) == "pde-nhf"]
    if problem is not None and problem["name"] != "paper" and nhf and all(
            Surrogate.load(m).problem_entry for m in nhf):
        baselines = [m for m in args.model if m not in nhf] + ([args.baseline] if args.baseline else [])
        if len(baselines) > 1:
            raise ValueError(f"at most one baseline can be evaluated, got {baselines}")
        return _run_problem(args, problem["name"], nhf, baselines[0] if baselines else None)
    t0 = time.perf_counter()
    r = evaluate_models(args.model, args.data, args.out, baseline=args.baseline,
                        steps_list=args.steps, n_examples=args.examples, device=args.device,
                        dtype=resolve_dtype(args.dtype), progress=not args.quiet,
                        chunk_size=args.chunk, allow_mismatch=args.allow_mismatch)
    t1 = r["table1"]
    print(f"evaluated {r['data']['n_examples']} test examples in {time.perf_counter() - t0:.1f} s")
    rows = [(m["name"], m["table1"]) for m in r["models"]]
    rows += [(key, t1[key]) for key in ("baseline", "identity") if key in t1]
    for name, e in rows:
        pct = e.get("percent_of_identity")
        tail = f" ({pct['q']:.2f} % / {pct['p']:.2f} % of identity)" if pct else ""
        print(f"  W1 at T, {name}: positions {e['q']['mean']:.4f} ± {e['q']['sem']:.4f}, "
              f"momenta {e['p']['mean']:.4f} ± {e['p']['sem']:.4f}{tail}")
    for m in r["models"]:
        print(f"  {m['name']}: a = {m['a']:.4f}")
    print(f"report: {args.out}/report.md")
    return 0


def _run_problem(args: argparse.Namespace, name: str, specs: list[str], baseline) -> int:
    """Surrogates of a plasma problem: rates, W1, NLL gap and figures on quiet starts."""
    models = [Surrogate.load(m) for m in specs]
    for spec, model in zip(specs, models):
        if model.problem.name != name:
            raise ValueError(f"--model {spec} stands for the {model.problem.name!r} problem, the "
                             f"data for {name!r}")
        model.name = Path(spec).stem if Path(spec).exists() else spec
    t0 = time.perf_counter()
    r = evaluate_problem_models(models, args.data, args.out, examples=args.examples or 8,
                                baseline=baseline)
    print(f"evaluated {r['examples']} quiet-start examples of {name} in {time.perf_counter() - t0:.1f} s "
          f"(theory gamma {r['theory']['gamma']:.4f}, omega {r['theory']['omega']:.4f})")
    for spec, m in r["models"].items():
        print(f"  {spec}: gamma {m['gamma_error_vs_pic_pct']:.1f} % from PIC's, omega "
              f"{m['omega_error_vs_pic_pct']:.1f} %; W1 at T {m['w1_pct_identity'][0]:.2f} % / "
              f"{m['w1_pct_identity'][1]:.2f} % of identity; NLL gap {m['nll_gap']:.2f}")
    if "baseline" in r:
        b = r["baseline"]["w1_pct_identity"]
        print(f"  the paper's baseline: W1 at T {b[0]:.2f} % / {b[1]:.2f} % of identity")
    print(f"report: {args.out}/report.md")
    return 0
