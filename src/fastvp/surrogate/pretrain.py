"""Force matching: a physics-informed warm start of the Deep Set potential from PIC states.

The flow integrates H = a^2 |p|^2 / 2 + V(q) with the same kick-drift-kick leapfrog as the
PIC solver. With a = 1 it reproduces PIC exactly when -dV/dq equals the PIC acceleration
s (q/m) E(q_i) of every particle, so the potential can first be fitted to the forces
of the states stored in a dataset (every snapshot, not only t = 0 and T):

    loss = mean_i |dV/dq_i(q) + a_PIC(q)_i|^2 / mean_i |a_PIC(q)_i|^2

This is cheap (one closed-form gradient per state, no unrolled flow) and lands the
potential close to the physics; maximum-likelihood training (``fastvp.train``) then
fine-tunes V and a on the (initial, final) pairs as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import arguments
from ..backend import resolve_device, resolve_dtype
from ..config import PICConfig
from ..pic.field import acceleration


@dataclass(frozen=True)
class PretrainConfig:
    """Force-matching settings: Adam with a cosine-decayed learning rate."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 5e-4
    seed: int = 0
    dtype: torch.dtype = torch.float32
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            arguments.integer(name, getattr(self, name), 1)
        arguments.positive("lr", self.lr)
        resolve_dtype(self.dtype)


def pic_acceleration(q: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """s (q/m) E(q_i) of the PIC solver at positions q: [B, N] -> [B, N] (``pic.field``)."""
    return acceleration(q, config, "torch")


def force_loss(net, q: torch.Tensor, accel: torch.Tensor) -> torch.Tensor:
    """Relative squared error of -dV/dq against the PIC acceleration (a scalar)."""
    return ((net.grad(q) + accel) ** 2).mean() / (accel**2).mean().clamp_min(1e-30)


def _states(dataset, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.stack([dataset.q(s) for s in dataset.steps]), dtype=dtype)


def pretrain_forces(model, dataset, config: PretrainConfig | None = None, progress: bool = True) -> dict:
    """Fit model.V_net to the PIC forces of every snapshot of ``dataset.split("train")``.

    Sets model.a to 1 (the true inverse mass) and returns {"train_loss": [...],
    "val_loss": float} with the relative force errors.
    """
    config = config or PretrainConfig()
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype)
    pic = dataset.config
    train = _states(dataset.split("train"), torch.float64)          # [S, n, N]
    val = _states(dataset.split("val"), torch.float64)
    val = val.reshape(-1, val.shape[-1])[: 4 * config.batch_size]
    net = model.V_net
    net.to(device=device, dtype=dtype)
    with torch.no_grad():
        model.a.fill_(1.0)
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    S, n, _ = train.shape
    losses = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="force matching", leave=False)
    for _ in range(config.steps):
        q = train[torch.randint(0, S, (config.batch_size,), generator=gen),
                  torch.randint(0, n, (config.batch_size,), generator=gen)]
        accel = pic_acceleration(q, pic)
        loss = force_loss(net, q.to(device, dtype), accel.to(device, dtype))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.2e}")
    if bar is not None:
        bar.close()
    with torch.no_grad():
        val_loss = force_loss(net, val.to(device, dtype), pic_acceleration(val, pic).to(device, dtype))
    return {"train_loss": losses, "val_loss": float(val_loss)}


def refine_forces_lbfgs(model, dataset, per_snapshot: int = 200, iterations: int = 300, seed: int = 0,
                        dtype: torch.dtype = torch.float32, verbose: bool = True) -> dict:
    """Full-batch L-BFGS on the force-matching loss over a fixed set of training states.

    ``per_snapshot`` examples of the train split are drawn (seeded) at every snapshot;
    the loss is smooth and deterministic there, where Adam's noisy steps stall around a
    relative error of 1e-2. Returns {"loss": final training loss, "evaluations": n}.
    """
    arguments.integer("per_snapshot", per_snapshot, 1)
    arguments.integer("iterations", iterations, 1)
    train = dataset.split("train")
    rng = np.random.default_rng(seed)
    per_snapshot = min(per_snapshot, len(train))
    q = torch.as_tensor(np.concatenate(
        [train.q(s)[rng.choice(len(train), per_snapshot, replace=False)] for s in train.steps]))
    accel = pic_acceleration(q, dataset.config).to(dtype)
    q = q.to(dtype)
    net = model.V_net.to(dtype=dtype)
    opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=iterations, history_size=50,
                            line_search_fn="strong_wolfe")
    count = [0]

    def closure():
        opt.zero_grad()
        loss = force_loss(net, q, accel)
        loss.backward()
        count[0] += 1
        if verbose and count[0] % 20 == 0:
            print(f"L-BFGS evaluation {count[0]}: relative force error {loss.item():.4g}", flush=True)
        return loss

    opt.step(closure)
    with torch.no_grad():
        final = force_loss(net, q, accel).item()
    return {"loss": final, "evaluations": count[0]}
