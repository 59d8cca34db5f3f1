"""``fastvp demo``: PIC and a surrogate on one paper-preset batch, W1, timings and a figure."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..backend import resolve_device, resolve_dtype
from ..config import PICConfig
from ..initial import initial_conditions
from ..metrics import wasserstein_1d
from ..pic.simulate import simulate
from ..plots import save_figure
from .figures import plot_demo
from .inputs import load_model, model_a, parse_steps_list
from .report import describe_training
from .sampling import timed, w1


def demo(out_dir, n_examples: int = 128, model="paper-1d", seed: int = 0, device="cpu",
         dtype: torch.dtype = torch.float32, steps=(25, 5), verbose: bool = True) -> dict:
    """PIC and the surrogate on the same paper-preset batch: W1, timings, speed-up, a figure.

    Draws `n_examples` initial conditions, simulates them with PIC (float64), samples the
    surrogate `model` (a bundled name or a file, in `dtype`) from the same initial particles
    with K = each of `steps`, prints W1 at T, wall times and the speed-up of each K over
    PIC, and writes ``demo.png`` into `out_dir`. Without the model (e.g. the bundled weights
    are not there yet) it says so and shows PIC alone. Returns the numbers printed.
    """
    say = print if verbose else (lambda *a, **k: None)
    device, dtype, ks = resolve_device(device), resolve_dtype(dtype), parse_steps_list(steps)
    surrogate, reason = None, None
    try:
        loaded = load_model(model)[1]
        if not hasattr(loaded, "potential"):
            raise ValueError(f"{str(model)!r} is a baseline; the demo samples a PDE-NHF model")
        surrogate = copy.deepcopy(loaded).to(device=device, dtype=dtype)
    except (FileNotFoundError, ValueError) as exc:
        reason = str(exc)
        say(f"surrogate {str(model)!r} unavailable, showing PIC only: {reason}\n"
            "  (train one with `fastvp train`, then pass `--model FILE`)")
    cfg = getattr(surrogate, "config", None) or PICConfig()
    batch = initial_conditions(n_examples, cfg, seed=seed, device=device)
    simulate(batch[:2], cfg)  # warm-up
    traj, pic_s = timed(device, simulate, batch, cfg)
    qT, pT = traj.q[-1].cpu(), traj.p[-1].cpu()
    result = {
        "n_examples": n_examples, "n_particles": cfg.n_particles, "T": cfg.final_time,
        "device": str(device), "reason": reason,
        "pic": {"wall_s": pic_s, "ms_per_example": 1e3 * pic_s / n_examples, "dtype": "float64",
                "scheme": cfg.scheme},
        "identity": {"w1_q": float(wasserstein_1d(batch.q.cpu(), qT).mean()),
                     "w1_p": float(wasserstein_1d(batch.p.cpu(), pT).mean())},
        "surrogate": None if surrogate is None else {"a": model_a(surrogate), "dtype": str(dtype)},
    }
    say(f"PIC ({cfg.scheme}, float64, {device}): {n_examples} examples x {cfg.n_particles} "
        f"particles to T = {cfg.final_time:g} in {pic_s:.3f} s "
        f"({result['pic']['ms_per_example']:.2f} ms per example)")
    say(f"identity (initial particles as prediction): W1 positions {result['identity']['w1_q']:.4f}, "
        f"momenta {result['identity']['w1_p']:.4f}")
    samples = {}
    if surrogate is not None:
        made = describe_training(getattr(surrogate, "training_info", None))
        result["surrogate"]["made_by"] = made
        say(f"surrogate {str(model)!r}: {made}")
        result["surrogate"]["runs"] = _demo_runs(surrogate, batch, (qT, pT), ks, pic_s, device,
                                                 samples, say)
    sample = samples.get(ks[0])
    fig = plot_demo((batch.q[0].cpu(), batch.p[0].cpu()), (qT[0], pT[0]),
                    None if sample is None else (sample[0][0], sample[1][0]), ks[0],
                    cfg.final_time, n_examples)
    result["figure"] = str(save_figure(fig, Path(out_dir) / "demo.png"))
    say(f"figure: {result['figure']}")
    return result


def _demo_runs(surrogate, batch, final, ks, pic_s: float, device, samples: dict, say) -> list:
    """Sample the surrogate with each K, timed against PIC; fills samples {K: (q, p)}."""
    qT, pT = final
    T, n = surrogate.final_time, len(batch)
    surrogate.sample(T, batch[:2], steps=ks[0])  # warm-up
    rows = []
    for k in ks:
        (q, p), wall = timed(device, surrogate.sample, T, batch, steps=k)
        samples[k] = (q.cpu(), p.cpu())
        row = {"K": k, "wall_s": wall, "ms_per_example": 1e3 * wall / n,
               "speedup_vs_pic": pic_s / wall, "w1_q": float(w1(q, qT.numpy()).mean()),
               "w1_p": float(w1(p, pT.numpy()).mean())}
        rows.append(row)
        say(f"PDE-NHF K = {k:2d} ({str(surrogate.dtype).removeprefix('torch.')}): W1 positions "
            f"{row['w1_q']:.4f}, momenta {row['w1_p']:.4f}; {wall:.3f} s "
            f"({row['ms_per_example']:.2f} ms per example): {versus_pic(pic_s, wall, device)}")
    return rows


def versus_pic(pic_s: float, wall_s: float, device) -> str:
    """The surrogate's wall time against PIC's, in words: "12.3x faster than PIC on this
    GPU" or "the surrogate took 50x PIC's time on this CPU"."""
    where = "GPU" if torch.device(device).type == "cuda" else "CPU"
    if wall_s <= pic_s:
        return f"{pic_s / wall_s:.1f}x faster than PIC on this {where}"
    return f"the surrogate took {wall_s / pic_s:.1f}x PIC's time on this {where}"
