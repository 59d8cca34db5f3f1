"""One training loop for PDE-NHF and the baseline: schedule, DDP, NaN guard, resume, history.

A trainer (``train.NHFTrainer``, ``baseline.BaselineTrainer``) gives its model, its loss on
a batch of example indices and its validation; ``fit`` does the rest, the same way for both:

* shuffled minibatches: epoch e (1-based) visits the train split in the order of
  ``randperm(n, seed * 1_000_003 + e - 1)``; under DDP every global batch is cut into W
  contiguous parts, rank r's loss weighted by W / (global batch), so DDP's mean gradient is
  the single-process one;
* Adam, the learning rate scaled by ``lr_factor`` (linear warm-up over `warmup` steps, then
  constant or a cosine decay to ``min_lr_ratio``), gradients clipped to norm `clip`;
* a step whose loss or gradient is not finite is skipped; `max_bad_steps` in a row stop
  the run with FloatingPointError, the last checkpoint kept;
* after each epoch the validation (loss and W1 at T on a fixed subset of the validation
  split); the epoch of the lowest validation W1 (mean of positions and momenta, as % of
  the identity) is kept as ``out/model.safetensors`` and returned; without W1, the lowest
  validation loss;
* ``out/history.json``: one row per epoch, ``epoch`` (from 1), ``train_loss``, ``val_loss``,
  ``val_w1_q``, ``val_w1_p`` (+ ``_pct`` of the identity), ``seconds`` (this epoch),
  ``elapsed`` (the run so far), ``lr`` and the trainer's own columns;
* ``out/checkpoint.pt`` (atomic, each epoch and every `checkpoint_every` steps) holds
  everything to continue bit-exactly: model, optimiser, scheduler, RNG, epoch, position,
  losses of the epoch so far, the best epoch's weights, history, settings, and the
  fingerprint of the dataset (``data.dataset_fingerprint``: a resume on other data is refused).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .. import arguments
from .. import distributed as dist
from ..backend import resolve_device, resolve_dtype
from .checkpoint import (
    CHECKPOINT,
    MODEL,
    NonFiniteGuard,
    atomic_save,
    check_finite,
    check_same_data,
    load_checkpoint,
    write_history,
)


class Trainer(Protocol):
    """What ``fit`` needs of a model family."""

    model: torch.nn.Module
    n_train: int
    format: str                      # checkpoint format, e.g. "fastvp-train/2"
    settings: dict                   # the run's settings, checked on resume
    data: dict | None                # data.dataset_fingerprint of the data, checked on resume
    resumable: tuple[str, ...]       # settings that may change on resume

    def objective(self) -> torch.nn.Module:
        """A module whose forward(idx, scale) is scale * the loss summed over examples idx."""

    def param_groups(self) -> list[dict]: ...

    def before_step(self, step: int, total: int) -> None:
        """Called before optimiser step `step` (0-based) of `total` (e.g. a K curriculum)."""

    def validate(self, parallel: bool) -> dict:
        """val_loss and, where known, val_w1_q, val_w1_p (+ _pct) and extra columns."""

    def save(self, path: Path, state: dict, history: list[dict]) -> None:
        """Write the model holding `state` to `path`."""

    def postfix(self) -> dict: ...


SCHEDULES = ("constant", "cosine")


@dataclass
class LoopConfig:
    """The settings every trainer shares (``TrainConfig`` and ``BaselineConfig`` extend it).

    Each field's help is its ``metadata["help"]``; None turns `clip` off and leaves the
    checkpoints to the epochs' ends (`checkpoint_every`).
    """

    epochs: int = field(default=200, metadata={"help": "passes over the training split"})
    batch_size: int = field(default=128, metadata={
        "help": "examples per optimiser step; under torchrun the global batch"})
    lr: float = field(default=3e-4, metadata={"help": "Adam's (peak) learning rate"})
    dtype: torch.dtype | str = field(default=torch.float32, metadata={
        "help": "floating-point precision of the model and the data"})
    device: str | torch.device | None = field(default=None, metadata={
        "help": "cpu or cuda (None: cuda if available)"})
    seed: int = field(default=0, metadata={"help": "random seed of the initialisation and shuffling"})
    warmup: int = field(default=0, metadata={
        "help": "optimiser steps of linear learning-rate warm-up"})
    schedule: str = field(default="constant", metadata={
        "help": "learning-rate schedule after the warm-up"})
    min_lr_ratio: float = field(default=0.0, metadata={
        "help": "final learning rate of the cosine schedule, as a fraction of lr"})
    clip: float | None = field(default=None, metadata={
        "help": "clip the gradient norm to this value"})
    checkpoint_every: int | None = field(default=None, metadata={
        "help": "also checkpoint every this many optimiser steps"})
    max_bad_steps: int = field(default=10, metadata={
        "help": "consecutive non-finite steps tolerated (each skipped)"})
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads (None: backend.default_threads())"})

    def __post_init__(self) -> None:

        for name in ("epochs", "batch_size", "max_bad_steps"):
            arguments.integer(name, getattr(self, name), 1)
        arguments.integer("seed", self.seed, 0)
        arguments.integer("warmup", self.warmup, 0)
        for name in ("checkpoint_every", "threads"):
            arguments.optional(arguments.integer, name, getattr(self, name), 1)
        arguments.positive("lr", self.lr)
        arguments.optional(arguments.positive, "clip", self.clip)
        arguments.number("min_lr_ratio", self.min_lr_ratio, 0, 1)
        arguments.choice("schedule", self.schedule, SCHEDULES)
        self.dtype = resolve_dtype(self.dtype)
        if self.device is not None:
            resolve_device(self.device)  # fail early on an unknown device

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dtype"] = str(self.dtype).removeprefix("torch.")
        d["device"] = None if self.device is None else str(self.device)
        return d


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Learning-rate multiplier at optimiser step `step` of `total`.

    Linear warm-up (step + 1) / warmup over the first `warmup` steps, then 1 ("constant") or
    min_ratio + (1 - min_ratio) (1 + cos(pi x)) / 2 with x the fraction of the rest done.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    x = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * x))


def score(row: dict) -> float:
    """What the kept epoch minimises: the mean validation W1 % of the identity, else val loss."""
    if "val_w1_q_pct" in row:
        return 0.5 * (row["val_w1_q_pct"] + row["val_w1_p_pct"])
    return row.get("val_loss", math.inf)


@dataclass
class _State:
    epoch: int = 0                   # epochs completed
    position: int = 0                # batches done in the current epoch
    history: list = field(default_factory=list)
    losses: list = field(default_factory=list)      # the current epoch's step losses
    best_score: float = math.inf
    best_epoch: int | None = None
    best_state: dict | None = None
    elapsed: float = 0.0             # seconds of the run before this process
    bad_steps: int = 0
    bad_in_a_row: int = 0


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class _Run:
    """One ``fit``: the optimiser, the state and the files of a run."""

    def __init__(self, trainer: Trainer, sched: LoopConfig, out: Path | None, parallel: bool):
        self.t, self.s, self.out, self.parallel = trainer, sched, out, parallel
        self.world = dist.world_size() if parallel else 1
        self.main = dist.is_main() if parallel else True
        self.per_epoch = math.ceil(trainer.n_train / sched.batch_size)
        self.total = self.per_epoch * sched.epochs
        self.params = [p for g in trainer.param_groups() for p in g["params"]]
        self.opt = torch.optim.Adam(trainer.param_groups(), lr=sched.lr)
        self.lr_sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda k: lr_factor(
            k, self.total, sched.warmup, sched.schedule, sched.min_lr_ratio))
        self.state = _State()
        self.guard = NonFiniteGuard(sched.max_bad_steps)
        self.start = time.perf_counter()

    # ------------------------------------------------------------------ checkpoints

    def restore(self, ck: dict) -> None:
        t, st = self.t, self.state
        t.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        if ck["scheduler"] is not None:
            self.lr_sched.load_state_dict(ck["scheduler"])
        else:  # a migrated checkpoint of a run without a scheduler: constant lr so far
            self.lr_sched.last_epoch = ck["epoch"] * self.per_epoch + ck["position"]
        torch.set_rng_state(ck["torch_rng"])
        for name in ("epoch", "position", "history", "losses", "best_score", "best_epoch",
                     "best_state", "elapsed", "bad_steps", "bad_in_a_row"):
            setattr(st, name, ck[name])
        self.guard = NonFiniteGuard(self.s.max_bad_steps, st.bad_steps, st.bad_in_a_row)

    def checkpoint(self, files: bool = False) -> None:
        """Rank 0 writes (with files: the kept model and history.json, then) checkpoint.pt."""
        if self.out is None:
            return
        check_finite(self.t.model, self.out)
        st = self.state
        st.bad_steps, st.bad_in_a_row = self.guard.total, self.guard.bad
        ck = {"format": self.t.format, "config": self.t.settings, "data": getattr(self.t, "data", None),
              "model": _cpu_state(self.t.model), "optimizer": self.opt.state_dict(),
              "scheduler": self.lr_sched.state_dict(), "torch_rng": torch.get_rng_state(),
              **{k: getattr(st, k) for k in _State.__dataclass_fields__}}
        ck["elapsed"] = self.elapsed()

        def save() -> None:
            if files:  # before the checkpoint: it never says more than the files hold
                kept = st.best_state if st.best_state is not None else ck["model"]
                self.t.save(self.out / MODEL, kept, st.history)
                write_history(self.out, st.history)
            atomic_save(ck, self.out / CHECKPOINT)

        dist.on_main(save) if self.parallel else save()

    def elapsed(self) -> float:
        return self.state.elapsed + time.perf_counter() - self.start

    # ------------------------------------------------------------------ the loop

    def step(self, idx: torch.Tensor, net, where: str, write) -> None:
        mine = idx[dist.shard(len(idx))] if self.parallel else idx
        self.opt.zero_grad(set_to_none=True)
        loss = net(mine, self.world / len(idx))
        loss_all = dist.all_reduce_mean(loss) if self.parallel else loss.detach()
        if self.guard.backward(loss, loss_all, self.params, self.parallel):
            self.guard.taken()
            if self.s.clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.s.clip)
            self.opt.step()
            self.state.losses.append(loss_all.item())
        else:  # reported; FloatingPointError after max_bad_steps in a row
            self.guard.skip(where, loss_all.item(), write)
            self.opt.zero_grad(set_to_none=True)
        self.lr_sched.step()

    def epoch(self, net, bar) -> None:
        st, s = self.state, self.s
        e = st.epoch + 1
        gen = torch.Generator().manual_seed(s.seed * 1_000_003 + st.epoch)
        device = next(self.t.model.parameters()).device
        order = torch.randperm(self.t.n_train, generator=gen).to(device)
        t0 = time.perf_counter()
        self.t.model.train()
        write = bar.write if bar is not None else None
        for b in range(st.position, self.per_epoch):
            self.t.before_step(st.epoch * self.per_epoch + b, self.total)
            self.step(order[b * s.batch_size:(b + 1) * s.batch_size], net, f"epoch {e}, batch {b}",
                      write)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=e, loss=f"{st.losses[-1]:.2f}" if st.losses else "nan",
                                **self.t.postfix())
            if s.checkpoint_every and (b + 1) % s.checkpoint_every == 0 and b + 1 < self.per_epoch:
                st.position = b + 1
                self.checkpoint()
        self.end_epoch(e, time.perf_counter() - t0, bar)

    def end_epoch(self, e: int, seconds: float, bar) -> None:
        st = self.state
        self.t.model.eval()
        row = {"epoch": e, "train_loss": float(np.mean(st.losses)) if st.losses else math.nan}
        row.update(self.t.validate(self.parallel))
        row.update(seconds=seconds, elapsed=self.elapsed(), lr=self.opt.param_groups[-1]["lr"])
        if score(row) < st.best_score:
            st.best_score, st.best_epoch = score(row), e
            st.best_state = _cpu_state(self.t.model)
        row["kept"] = st.best_epoch
        st.history.append(row)
        if bar is not None:
            bar.write(describe(row))
        st.epoch, st.position, st.losses = e, 0, []
        self.checkpoint(files=True)


def describe(row: dict) -> str:
    """One progress line of an epoch's history row."""
    text = f"epoch {row['epoch']}: train {row['train_loss']:.4g}  val {row.get('val_loss', math.nan):.4g}"
    if "val_w1_q_pct" in row:
        text += f"  W1 at T q {row['val_w1_q_pct']:.2f} % p {row['val_w1_p_pct']:.2f} % of identity"
    if "a" in row:
        text += f"  a {row['a']:.4f}"
    return text + f"  (kept: epoch {row['kept']})"


def fit(trainer: Trainer, sched: LoopConfig, out: Path | None, resume: bool, progress: bool,
        parallel: bool, migrate=None) -> tuple[dict | None, list[dict], int | None]:
    """Train `trainer.model` in place; returns (best state, history, best epoch).

    resume: continue out/checkpoint.pt (its settings must match `trainer.settings` outside
    `trainer.resumable`, its dataset fingerprint `trainer.data`). migrate: optional
    function turning an older checkpoint format into this one (None for an unknown format).
    """
    run = _Run(trainer, sched, out, parallel)
    if resume:
        ck = load_checkpoint(out / CHECKPOINT, trainer.format, trainer.settings,
                             trainer.resumable, migrate)
        check_same_data(ck.get("data"), getattr(trainer, "data", None), out / CHECKPOINT)
        run.restore(ck)
    net = trainer.objective()
    if parallel:
        net = dist.wrap_ddp(net)
    bar = None
    if progress and run.main:
        from tqdm.auto import tqdm

        st = run.state
        bar = tqdm(total=run.total, initial=st.epoch * run.per_epoch + st.position, unit="batch",
                   desc="train" if run.world == 1 else f"train ({run.world} ranks)",
                   dynamic_ncols=True)
    try:
        while run.state.epoch < sched.epochs:
            run.epoch(net, bar)
    finally:
        if bar is not None:
            bar.close()
    st = run.state
    return st.best_state, st.history, st.best_epoch


def frozen(params) -> Any:
    """Context: `params` do not require grad inside (e.g. V's offset, which no loss sees)."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        changed = [p for p in params if p.requires_grad]
        for p in changed:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in changed:
                p.requires_grad_(True)

    return ctx()


def sharded_sums(fn, n: int, k: int, parallel: bool, chunk: int) -> list[float]:
    """The k sums over examples 0..n-1 of fn(slice) -> k per-example tensors.

    Each rank of a DDP run computes its contiguous part, in chunks of `chunk` examples;
    the sums are all-reduced (every rank returns the same). Without gradients.
    """
    part = dist.shard(n) if parallel else slice(0, n)
    sums = torch.zeros(k, dtype=torch.float64)
    with torch.no_grad():
        for lo in range(part.start, part.stop, chunk):
            vals = fn(slice(lo, min(part.stop, lo + chunk)))
            sums += torch.stack([v.double().sum() for v in vals]).cpu()
    if parallel:
        sums = dist.all_reduce_sum(sums)
    return sums.tolist()


def w1_columns(w1_q: float, w1_p: float, ident_q: float, ident_p: float) -> dict:
    """History columns of a validation W1 at T: absolute and as % of the identity's W1."""
    return {"val_w1_q": w1_q, "val_w1_p": w1_p, "val_w1_q_pct": 100 * w1_q / ident_q,
            "val_w1_p_pct": 100 * w1_p / ident_p}
