"""What an evaluation reads: the models, the baseline, the K list and the test split, each
checked (a model and the data must share their physics and T; the baseline, N)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import arguments
from ..data import require_finite
from ..surrogate.baseline import Baseline
from ..surrogate.loading import read_model

#: The physics a model and the data must share (PICConfig fields), and T.
PHYSICS = ("interaction", "scheme", "charge", "charge_over_mass", "box_length", "cells",
           "n_particles", "dt", "steps")


# ------------------------------------------------------------------ models


def load_model(model, name: str | None = None):
    """(display name, Surrogate or Baseline) from a model, a bundled name or a model file
    (PDE-NHF or baseline, as the file says: ``surrogate.loading.read_model``)."""
    if isinstance(model, (str, os.PathLike)):
        text = str(model)
        label = Path(text).name.removesuffix(".safetensors") if ("/" in text or os.sep in text
                                                                 or Path(text).suffix) else text
        return name or label, read_model(model)
    if isinstance(model, Baseline):
        return name or "baseline", model
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "sample"):
        raise ValueError("model must be a fastvp.Surrogate, a Baseline or a model name / file, "
                         f"got {type(model).__name__}")
    return name or "PDE-NHF", model


def load_models(models, baseline=None) -> tuple[list[tuple[str, object]], Baseline | None]:
    """([(display name, Surrogate)], the baseline) of one model or a list of them (repeated
    names numbered) and `baseline` (None, a Baseline or its file). A baseline among the
    models is the baseline; there is at most one, and a PDE-NHF model or a baseline at least.
    """
    items = [] if models is None else list(models) if isinstance(models, (list, tuple)) \
        else [models]
    loaded = [load_model(m) for m in items]
    found = [m for _, m in loaded if isinstance(m, Baseline)]
    if baseline is not None:
        found.append(load_baseline(baseline))
    if len(found) > 1:
        raise ValueError(f"model and baseline name {len(found)} baselines; an evaluation takes "
                         "one")
    loaded = [(n, m) for n, m in loaded if not isinstance(m, Baseline)]
    if not loaded and not found:
        raise ValueError("model must name at least one model, got an empty list")
    names = [n for n, _ in loaded]
    return ([(n if names.count(n) == 1 else f"{n} ({i + 1})", m) for i, (n, m) in enumerate(loaded)],
            found[0] if found else None)


def load_baseline(baseline):
    """The baseline: None, a Baseline, or read from its file."""
    if baseline is None or isinstance(baseline, Baseline):
        return baseline
    if isinstance(baseline, (str, os.PathLike)):
        return Baseline.load(baseline)
    raise ValueError(f"baseline must be a fastvp Baseline or a file, got {type(baseline).__name__}")


def model_a(model) -> float:
    """The model's momentum scale a (its inverse mass is a^2), as a float."""
    return float(torch.as_tensor(model.a).detach().reshape(-1)[0])


def parse_steps_list(steps_list) -> list[int]:
    """The leapfrog step counts K, checked: a non-empty sequence of integers >= 1."""
    msg = f"steps_list must be a non-empty sequence of integers >= 1, got {steps_list!r}"
    try:
        ks = [int(k) for k in steps_list]
    except (TypeError, ValueError) as exc:
        raise ValueError(msg) from exc
    pairs = zip(ks, steps_list, strict=True)
    if not ks or any(k < 1 or k != s or isinstance(s, bool) for k, s in pairs):
        raise ValueError(msg)
    return ks


# ------------------------------------------------------------------ physics


def physics_mismatch(model_config, data_config) -> list[str]:
    """The physics on which a model's training data and the evaluated data differ:
    ["interaction: model electrostatic, data gravitational", ...] (empty when they agree)."""
    out = []
    for name in PHYSICS:
        a, b = getattr(model_config, name), getattr(data_config, name)
        if a != b:
            out.append(f"{name}: model {a}, data {b}")
    return out


def check_physics(models, data_config, allow: bool, problem: dict | None = None) -> dict:
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


# ------------------------------------------------------------------ the test split


@dataclass
class Split:
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
        """The initial particles (q, p) [hi - lo, N] of examples lo..hi."""
        kw = dict(device=device, dtype=dtype)
        return (torch.as_tensor(self.q[self.s0][lo:hi], **kw),
                torch.as_tensor(self.p[self.s0][lo:hi], **kw))


def read_test_split(ds, n_examples, models, baseline) -> Split:
    """The first n examples of the test split, checked against the models."""
    test = ds.split("test")
    if len(test) == 0:
        raise ValueError(f"data {str(ds.path)!r} has an empty test split ({len(ds)} examples; "
                         "the test split is the last 19.5 %)")
    n = len(test) if n_examples is None else n_examples
    try:
        n = arguments.integer("n_examples", n, 1, len(test))
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
    return Split(q={s: np.array(test.q(s)[:n]) for s in test.steps},
                 p={s: np.array(test.p(s)[:n]) for s in test.steps},
                 steps=list(test.steps), times=list(test.times), n=n)
