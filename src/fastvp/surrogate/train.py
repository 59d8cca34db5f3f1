"""Training PDE-NHF by maximum likelihood of the pulled-back initial state.

Each example's final state (q_T, p_T) is pulled back with K leapfrog steps of dt = -T/K,
and the loss is the negative log-likelihood of the result under the example's initial
Gaussians (the forward KL up to a constant; exact because the flow preserves volume):

    loss = -mean_b sum_i [ log N(q0_bi; mu_q, sigma_q_b) + log N(p0_bi; mu_p, sigma_p_b) ]

in nats per example (the official run ended near 706). The gradient goes through the
hand-derived backward of ``model.deepset_grad`` (method "fast", or "compiled"); Adam.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..backend import resolve_device, resolve_dtype
from .checkpoint import (
    CHECKPOINT,
    MODEL,
    NonFiniteGuard,
    atomic_save,
    check_finite,
    load_checkpoint,
    prepare_out,
    write_history,
)
from .model import PULLBACK_METHODS, Surrogate, gaussian_log_prob

SCHEDULES = ("constant", "cosine")
FORMAT = "fastvp-train/1"
#: Settings that may change when a run is resumed (the others must match the checkpoint).
RESUMABLE = ("epochs", "device", "max_bad_steps", "checkpoint_every", "val_examples")


@dataclass
class TrainConfig:
    """Settings of ``train``; the defaults are the paper's except dtype (float32 here).

    epochs, batch_size (examples per optimiser step; under DDP the global batch, split
    over the ranks), lr (Adam), steps (K), dtype, device (None: CUDA if available),
    seed (initialisation and shuffling), hidden (Deep Set width H).
    schedule: "constant" or "cosine" (lr decays to lr * min_lr_ratio over the run).
    method: "fast" (hand-derived backward) or "compiled" (the same under torch.compile).
    val_examples: cap on the validation examples scored each epoch (None: all).
    checkpoint_every: also checkpoint every this many optimiser steps (None: per epoch).
    max_bad_steps: consecutive non-finite losses or gradients tolerated (each skipped).
    snapshots: also supervise the intermediate snapshots (each pulled back from its time).
    """

    epochs: int = 200
    batch_size: int = 128
    lr: float = 3e-4
    steps: int = 25
    dtype: torch.dtype | str = torch.float32
    device: str | torch.device | None = None
    seed: int = 0
    hidden: int = 256
    schedule: str = "constant"
    min_lr_ratio: float = 0.0
    method: str = "fast"
    val_examples: int | None = None
    checkpoint_every: int | None = None
    max_bad_steps: int = 10
    snapshots: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "steps", "hidden", "max_bad_steps"):
            _integer(name, getattr(self, name), 1)
        _integer("seed", self.seed, 0)
        for name in ("val_examples", "checkpoint_every"):
            if getattr(self, name) is not None:
                _integer(name, getattr(self, name), 1)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (
                math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if isinstance(self.min_lr_ratio, bool) or not isinstance(self.min_lr_ratio, (int, float)) \
                or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be a number in [0, 1], got {self.min_lr_ratio!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.method not in PULLBACK_METHODS or self.method == "autograd":
            raise ValueError(f"method must be 'fast' or 'compiled', got {self.method!r}")
        if not isinstance(self.snapshots, bool):
            raise ValueError(f"snapshots must be True or False, got {self.snapshots!r}")
        self.dtype = resolve_dtype(self.dtype)
        if self.device is not None:
            resolve_device(self.device)  # fail early on an unknown device

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dtype"] = str(self.dtype).removeprefix("torch.")
        d["device"] = None if self.device is None else str(self.device)
        return d


def _integer(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# ---------------------------------------------------------------------------- the loss


def nll(model: Surrogate, q: torch.Tensor, p: torch.Tensor, mu_q, sigma_q, mu_p, sigma_p,
        t: float, method: str = "fast") -> torch.Tensor:
    """-log N(Flow_{-t}(q, p); mu, sigma) per example: [B] (q, p [B, N]; mu, sigma [B])."""
    q0, p0 = model.pullback(q, p, t, method=method)
    return -(gaussian_log_prob(q0, mu_q, sigma_q) + gaussian_log_prob(p0, mu_p, sigma_p))


class _Data:
    """The snapshots a run needs, as tensors in the training dtype and device."""

    def __init__(self, ds, steps: list[int], times: list[float], dtype, device,
                 limit: int | None = None):
        n = len(ds) if limit is None else min(limit, len(ds))
        if n < 1:
            raise ValueError("dataset split holds no examples")

        def t(x):
            return torch.as_tensor(np.array(x[:n]), dtype=dtype).to(device)

        self.n = n
        self.times = times
        self.q = [t(ds.q(s)) for s in steps]
        self.p = [t(ds.p(s)) for s in steps]
        cond = t(ds.cond)
        self.sigma_q, self.sigma_p = cond[:, 0].contiguous(), cond[:, 1].contiguous()
        if not (torch.isfinite(cond).all() and (cond > 0).all()):
            raise ValueError("dataset cond (sigma_q, sigma_p) must be finite and > 0")
        for x in self.q + self.p:
            if not torch.isfinite(x).all():
                raise ValueError("dataset holds non-finite positions or momenta")
        cfg = ds.config
        self.mu_q = torch.full((n,), cfg.mu_q, dtype=dtype, device=device)
        self.mu_p = torch.full((n,), cfg.mu_p, dtype=dtype, device=device)

    def loss(self, model: Surrogate, idx, method: str, scale: float | None = None) -> torch.Tensor:
        """NLL of the examples idx [b], averaged over the supervised snapshots: a scalar.

        scale None: the mean over idx; else scale * the sum over idx (a rank's part of
        the mean of a larger batch, see ``train``).
        """
        def reduce(x: torch.Tensor) -> torch.Tensor:
            return x.mean() if scale is None else x.sum() * scale

        terms = [reduce(nll(model, q[idx], p[idx], self.mu_q[idx], self.sigma_q[idx], self.mu_p[idx],
                            self.sigma_p[idx], t, method))
                 for q, p, t in zip(self.q, self.p, self.times, strict=True)]
        return terms[0] if len(terms) == 1 else torch.stack(terms).mean()


class _Objective(torch.nn.Module):
    """``forward(idx, scale)``: scale * the NLL summed over the examples idx [b] of `data`
    (``_Data.loss``), as a module, so that DistributedDataParallel can wrap it.

    An empty idx gives 0 as a function of every trained parameter: each gets a zero
    gradient, so DDP's all-reduce runs on a rank whose part of a short batch is empty.
    """

    def __init__(self, model: Surrogate, data: _Data, method: str):
        super().__init__()
        self.model = model
        self.data = data
        self.method = method

    def forward(self, idx: torch.Tensor, scale: float) -> torch.Tensor:
        if idx.numel() == 0:
            return torch.stack([(x * 0).sum() for x in self.model.parameters()
                                if x.requires_grad]).sum()
        return self.data.loss(self.model, idx, self.method, scale)


def _dataset(dataset):
    from ..data import load_dataset

    if isinstance(dataset, (str, os.PathLike)):
        return load_dataset(dataset)
    needed = ("split", "q", "p", "cond", "steps", "times", "config")
    if not all(hasattr(dataset, k) for k in needed):
        raise ValueError(f"dataset must be a dataset folder or a fastvp dataset, got "
                         f"{type(dataset).__name__}")
    return dataset


# ---------------------------------------------------------------------------- train


def _constant_parameters(model: Surrogate) -> list[torch.nn.Parameter]:
    """Parameters the loss does not depend on: V's final bias b4 only shifts V, so dV/dq,
    the flow and the NLL ignore it. They are left out of training (no gradient, never
    updated, as before), which also keeps DDP from waiting for their gradients."""
    return [model.V_net.rho[2].bias]


def train(dataset, config: TrainConfig | None = None, out=None, *, resume: bool = False,
          progress: bool = True, model: Surrogate | None = None,
          distributed: bool | None = None) -> Surrogate:
    """Fit a Surrogate to a dataset folder (or a ``fastvp.data.Dataset``); returns it.

    Trains on ``dataset.split("train")``, scores ``split("val")`` after each epoch.
    `out`: a folder for checkpoint.pt (model, optimiser, scheduler, RNG, epoch and
    position in the epoch; written atomically each epoch and every `checkpoint_every`
    steps), model.safetensors (the latest model) and history.json. resume=True
    continues from the checkpoint in `out`. A step whose loss or gradient is not
    finite is skipped (and reported); after `max_bad_steps` in a row training stops
    with FloatingPointError, the last checkpoint untouched. `model`: start from this
    model (a copy; e.g. to fine-tune) rather than a fresh one of width config.hidden.

    distributed: data-parallel training over the ranks of torch.distributed (launched by
    torchrun), the model in DistributedDataParallel. None: whenever a process group
    exists or WORLD_SIZE > 1 (a group made here is left again at the end; its backend
    is nccl for a CUDA device, gloo for the cpu). Every optimiser step takes the same
    global batch of `config.batch_size` examples as a single process (the same seeded
    order), cut into W contiguous parts, one per rank; rank r's loss is its part's NLL sum
    times W / (global batch size), so DDP's mean of the gradients is the gradient of the
    global batch's mean NLL, also for uneven or short batches. The result is the
    single-process run up to round-off. The validation split is scored in W parts and
    summed. Rank 0 alone writes `out` (on a filesystem all ranks share) and shows the
    progress bar; a resumed run (with any number of ranks) loads the checkpoint on every
    rank. With device "cuda" (or None on a GPU machine) rank r uses cuda:LOCAL_RANK.
    """
    from .. import distributed as dist

    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a fastvp.TrainConfig, got {type(config).__name__}")
    if model is not None and not isinstance(model, Surrogate):
        raise ValueError(f"model must be a fastvp.Surrogate to start from, "
                         f"got {type(model).__name__}")
    dist.check_distributed(distributed)  # before the dataset is read
    ds = _dataset(dataset)
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise ValueError("resume=True needs out, the folder holding the checkpoint")
    with dist.data_parallel(distributed, config.device) as (parallel, device):
        return _train(ds, config, out, resume, progress, model, device, parallel)


def _train(ds, config: TrainConfig, out: Path | None, resume: bool, progress: bool,
           model: Surrogate | None, device: torch.device, parallel: bool) -> Surrogate:
    """``train`` once the device and the process group are known (parallel: world > 1)."""
    from .. import distributed as dist

    world = dist.world_size() if parallel else 1
    main = dist.is_main() if parallel else True

    def on_main(fn):
        return dist.on_main(fn) if parallel else fn()

    if config.batch_size < world:
        raise ValueError(f"batch_size ({config.batch_size}) is the global batch, split over "
                         f"the {world} ranks: it must be at least the number of ranks")

    # rank 0 looks, all follow
    has_checkpoint = on_main(lambda: prepare_out(out, resume)) if out is not None else False
    dtype = config.dtype
    steps = list(ds.steps)
    times = [float(x) for x in ds.times]
    supervised = [i for i, t in enumerate(times) if t > 0] if config.snapshots else [len(steps) - 1]
    sel_steps, sel_times = [steps[i] for i in supervised], [times[i] for i in supervised]
    train_set = _Data(ds.split("train"), sel_steps, sel_times, dtype, device)
    val_set = _Data(ds.split("val"), steps[-1:], times[-1:], dtype, device, config.val_examples)

    torch.manual_seed(config.seed)
    if model is None:
        model = Surrogate(ds.config, steps=config.steps, hidden=config.hidden)
    else:
        model = copy.deepcopy(model)
        model.steps = config.steps
    model.to(device=device, dtype=dtype)
    frozen = [x for x in _constant_parameters(model) if x.requires_grad]
    for x in frozen:
        x.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    per_epoch = math.ceil(train_set.n / config.batch_size)
    total = per_epoch * config.epochs

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        r = config.min_lr_ratio
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    epoch, position, history, guard = 0, 0, [], NonFiniteGuard(config.max_bad_steps)
    epoch_losses: list[float] = []  # losses of the steps already taken in a resumed epoch
    if resume and has_checkpoint:
        ck = load_checkpoint(out / CHECKPOINT, FORMAT, config.to_dict(), RESUMABLE)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["torch_rng"])
        epoch, position, history = int(ck["epoch"]), int(ck["position"]), list(ck["history"])
        guard = NonFiniteGuard(config.max_bad_steps, ck.get("bad_steps", 0),
                               ck.get("bad_in_a_row", 0))
        epoch_losses = [float(x) for x in ck.get("epoch_losses", [])]
    # the loss as a module; under DDP its forward all-reduces the gradients in backward
    net = _Objective(model, train_set, config.method)
    if parallel:
        net = dist.wrap_ddp(net)

    def checkpoint(epoch: int, position: int, losses: list[float], files: bool = False) -> None:
        """Rank 0 writes (with files: model.safetensors, history.json, then) checkpoint.pt."""
        if out is None:
            return
        check_finite(model, out)

        def save() -> None:
            if files:  # before the checkpoint: a resumed run rewrites what it may lack
                model.save(out / MODEL)
                write_history(out, history)
            atomic_save({
                "format": FORMAT, "config": config.to_dict(), "epoch": epoch,
                "position": position, "history": history, "bad_steps": guard.total,
                "bad_in_a_row": guard.bad, "epoch_losses": list(losses),
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
            }, out / CHECKPOINT)

        on_main(save)  # the other ranks wait (and raise rank 0's error, if any)

    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=epoch * per_epoch + position, unit="batch",
                   desc="train" if world == 1 else f"train ({world} ranks)", dynamic_ncols=True)
    try:
        while epoch < config.epochs:
            gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            order = torch.randperm(train_set.n, generator=gen).to(device)
            t0, losses, epoch_losses = time.perf_counter(), epoch_losses, []
            model.train()
            for b in range(position, per_epoch):
                idx = order[b * config.batch_size:(b + 1) * config.batch_size]  # the global batch
                mine = idx[dist.shard(len(idx))] if parallel else idx
                opt.zero_grad(set_to_none=True)
                loss = net(mine, world / len(idx))
                # the global batch's mean NLL, on every rank: one flag for all
                loss_all = dist.all_reduce_mean(loss) if parallel else loss.detach()
                if guard.backward(loss, loss_all, model.parameters(), parallel):
                    guard.taken()
                    opt.step()
                    losses.append(loss_all.item())
                else:  # reported on the bar; FloatingPointError after max_bad_steps in a row
                    guard.skip(f"epoch {epoch}, batch {b}", loss_all.item(),
                               bar.write if bar is not None else None)
                    opt.zero_grad(set_to_none=True)
                sched.step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.2f}" if losses else "nan",
                                    a=f"{model.a.item():.4f}")
                if config.checkpoint_every and (b + 1) % config.checkpoint_every == 0 \
                        and b + 1 < per_epoch:
                    checkpoint(epoch, b + 1, losses)
            val = validation_loss(model, val_set, config.batch_size, distributed=parallel)
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses
                            else float("nan"), "val_loss": val, "a": model.a.item(),
                            "lr": opt.param_groups[0]["lr"],
                            "seconds": time.perf_counter() - t0})
            if bar is not None:
                bar.write(f"epoch {epoch}: train {history[-1]['train_loss']:.3f}  val {val:.3f}  "
                          f"a {model.a.item():.4f}")
            epoch, position = epoch + 1, 0
            checkpoint(epoch, 0, [], files=True)
    finally:
        if bar is not None:
            bar.close()
        for x in frozen:
            x.requires_grad_(True)
    model.eval()
    model.history = history
    return model


def validation_loss(model: Surrogate, data: _Data, batch_size: int,
                    distributed: bool = False) -> float:
    """Mean NLL of `data`'s final snapshots (no gradients).

    distributed: each rank of torch.distributed scores its contiguous part of the
    examples and the sums are all-reduced (every rank returns the same number).
    """
    from .. import distributed as dist

    part = dist.shard(data.n) if distributed else slice(0, data.n)
    total = 0.0
    with torch.no_grad():
        for lo in range(part.start, part.stop, 4 * batch_size):
            idx = torch.arange(lo, min(part.stop, lo + 4 * batch_size), device=data.q[-1].device)
            total += nll(model, data.q[-1][idx], data.p[-1][idx], data.mu_q[idx],
                         data.sigma_q[idx], data.mu_p[idx], data.sigma_p[idx],
                         data.times[-1]).sum().item()
    if distributed:
        total = dist.all_reduce_sum(torch.tensor([total], dtype=torch.float64)).item()
    return total / data.n
