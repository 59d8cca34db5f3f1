"""The field-energy Deep Set: a physics-built starting point for PDE-NHF's potential.

The PIC solver's particles feel the field of their own charge. In the frame of the
example's centre of mass (y_i = q_i - mean q), that field on a grid x_k of G = H / 2
points spanning [-R, R] (spacing h = 2R / G) is, up to a constant,

    E_k = c sum_i S(x_k - y_i) - N c / 2 - n0 x_k,      n0 = N c / L (the background)
    S(u) = [softplus(w u + beta / 2) - softplus(w u - beta / 2)] / beta

with c the charge per particle and S a smoothed ramp from 0 to 1 of width beta / w (the
PIC cell dx by default, as a CIC particle). Its energy

    V(q) = s_f (q/m) h / (2 c) sum_k E_k^2        (s_f = +1 electrostatic, -1 gravitational)

is a Deep Set of the paper's shape: phi's first layer holds the 2G ramp halves
(w1 = -w, b1 = w x_k +- beta / 2), its second layer sums each pair into E_k (b2 adds the
background), and rho's softplus pairs w4 [softplus(e E) + softplus(-e E)] =
w4 [2 log 2 + e^2 E^2 / 4 + O(e^4 E^4)] make the square (e small). Its force
-dV/dq_i = (q/m) s_f sum_k h E_k S'(x_k - y_i) is the field at particle i seen through
the ramp: the PIC acceleration averaged over the grid's phase (the phase itself, the
particles' position relative to the cells, is what a translation-invariant potential
cannot see). On the paper preset it matches the PIC forces to a
relative squared error of about 3e-4 (the phase variance of the PIC force itself is
2.5e-4), ten times closer than force matching from a random start reaches.

``build_field_energy_model`` is the whole recipe of the bundled model field-energy-1d
(``scripts/train_field_energy_1d.py``) and of ``fastvp train --init field-energy``: this
Deep Set, then every weight of V fitted to the PIC forces by L-BFGS (``pretrain``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .. import arguments
from ..config import PICConfig
from .model import Surrogate
from .pretrain import refine_forces_lbfgs

#: Default sharpness of the ramp, w * dx (its corners are rounded over about dx / w).
SHARPNESS = 6.0
#: Largest |e E_k| over the window: bounds the quartic error of rho's square (e^2 E^2 / 12).
SQUARE_RANGE = 0.05
#: The force fit of the bundled field-energy-1d: train examples drawn at every snapshot,
#: L-BFGS iterations, and the seed of the draw.
PER_SNAPSHOT, ITERATIONS, SEED = 100, 60, 0


def window_from_data(q: np.ndarray | torch.Tensor, margin: float = 1.3) -> float:
    """Half-width R of the grid: margin * the largest |q_i - mean q| of states q [B, N]."""
    q = torch.as_tensor(q, dtype=torch.float64)
    if q.ndim != 2 or q.numel() == 0:
        raise ValueError(f"q must be a non-empty [B, N] array of positions, got shape {tuple(q.shape)}")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 1):
        raise ValueError(f"margin must be a finite number >= 1, got {margin!r}")
    return float(margin * (q - q.mean(dim=1, keepdim=True)).abs().max())


@torch.no_grad()
def field_energy_init(model, config: PICConfig, window: float, sharpness: float = SHARPNESS,
                      ramp: float | None = None) -> None:
    """Set model.V_net (width H, even) to the field-energy Deep Set above, and a = 1.

    window: R, half-width of the grid in the centred frame (cover every particle, e.g.
    ``window_from_data``); sharpness: w * ramp; ramp: beta / w, the ramp's width
    (None: config.dx). The grid spacing 2R / (H / 2) must not exceed the ramp width.
    """
    if not isinstance(config, PICConfig):
        raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
    ramp = config.dx if ramp is None else ramp
    for name, value in (("window", window), ("sharpness", sharpness), ("ramp", ramp)):
        arguments.positive(name, value)
    net = model.V_net
    H = net.hidden
    if H < 2 or H % 2:
        raise ValueError(f"the field-energy Deep Set needs an even width >= 2, got hidden={H}")
    G = H // 2
    h = 2 * window / G
    if h > ramp:
        raise ValueError(f"window={window!r} is too wide for width {H}: grid spacing {h:.3g} "
                         f"exceeds the ramp width {ramp:.3g} (use a smaller window or a wider net)")
    f64 = torch.float64
    xk = -window + (torch.arange(G, dtype=f64) + 0.5) * h
    c, N = config.charge, config.n_particles
    n0 = N * c / config.box_length
    w = sharpness / ramp
    beta = sharpness
    emax = N * c / 2 + n0 * window
    e = SQUARE_RANGE / emax
    k = torch.arange(G)

    W2 = torch.zeros(H, H, dtype=f64)
    W2[k, k], W2[k, k + G] = c / beta, -c / beta
    b2 = torch.zeros(H, dtype=f64)
    b2[:G] = (-N * c / 2 - n0 * xk) / N
    W3 = torch.zeros(H, H, dtype=f64)
    W3[k, k], W3[k + G, k] = e, -e
    scale = config.force_sign * config.charge_over_mass * h / (2 * c)
    w4 = torch.full((H,), 4 * scale / e**2, dtype=f64)

    def put(param, value):
        param.copy_(value.to(dtype=param.dtype, device=param.device).reshape(param.shape))

    put(net.phi[0].weight, torch.full((H,), -w, dtype=f64))
    put(net.phi[0].bias, torch.cat([w * xk + beta / 2, w * xk - beta / 2]))
    put(net.phi[2].weight, W2)
    put(net.phi[2].bias, b2)
    put(net.rho[0].weight, W3)
    put(net.rho[0].bias, torch.zeros(H, dtype=f64))
    put(net.rho[2].weight, w4)
    model.a.fill_(1.0)
    zero_field_offset(net)


@torch.no_grad()
def zero_field_offset(net) -> None:
    """Set rho's last bias so that rho(s = 0) = 0: b4 = -sum_k w4_k softplus(b3_k).

    Only V's offset changes (never its gradient): the constant H w4 log 2 of the softplus
    pairs (about 1e8 on the paper preset) would otherwise swamp V's variations in float32.
    """
    b3, w4 = net.rho[0].bias.double(), net.rho[2].weight[0].double()
    net.rho[2].bias.fill_(-float((w4 * torch.nn.functional.softplus(b3)).sum()))


def build_field_energy_model(dataset, steps: int = 25, hidden: int = 256, per_snapshot: int = PER_SNAPSHOT,
                             iterations: int = ITERATIONS, seed: int = SEED, margin: float = 1.3,
                             after_stage: Callable[[str, Surrogate], None] | None = None,
                             verbose: bool = True) -> tuple[Surrogate, dict]:
    """The field-energy model of ``dataset`` (a fastvp dataset; only its train split is read).

    Stage 1: a float64 ``Surrogate(dataset.config, steps, hidden)`` set to the field-energy
    Deep Set (``field_energy_init``), its window ``window_from_data`` of the train split's
    positions at every snapshot, a = 1. Stage 2: every weight of V fitted to the PIC forces
    in float64 (``refine_forces_lbfgs(per_snapshot, iterations, seed)``), then V's constant
    reset (``zero_field_offset``; the flow is unchanged). ``after_stage("field-energy" or
    "lbfgs", model)`` is called after each stage (the model must be left unchanged).
    Returns (model, {"window": R, "lbfgs": {"loss", "evaluations"}}).
    """
    train = dataset.split("train")
    window = window_from_data(np.concatenate([np.asarray(train.q(s)) for s in train.steps]), margin)
    model = Surrogate(dataset.config, steps=steps, hidden=hidden).to(dtype=torch.float64)
    field_energy_init(model, dataset.config, window)
    if after_stage is not None:
        after_stage("field-energy", model)
    fit = refine_forces_lbfgs(model, dataset, per_snapshot, iterations, seed, dtype=torch.float64,
                              verbose=verbose)
    model = model.to(dtype=torch.float64)
    if after_stage is not None:
        after_stage("lbfgs", model)
    zero_field_offset(model.V_net)
    return model, {"window": window, "lbfgs": fit}
