"""The baseline of the paper (Table 1): two MLPs between quantile functions.

Each example's initial particles, sorted in ascending order, are the input; one MLP maps
them to the sorted final positions, the other to the sorted final momenta:

    x   = [ (sort(q0) - mean q0) / s_q0 ,  (sort(p0) - mean p0) / s_p0 ]        [B, 2N]
    q_T = mean q0 + s_qT * MLP_q(x),   p_T = mean p0 + s_pT * MLP_p(x)          [B, N]
    MLP = Linear(2N, H) -> Softplus -> Linear(H, H) -> Softplus -> Linear(H, N)

Sorted samples are the empirical quantile functions, so the two MLPs map the initial
quantile functions in phase space to the final marginal quantile functions (the
predictions are sorted once more, so they always are valid quantile functions). Centring
on the example's own initial means makes the maps translation-free (the centre of the
box does not have to be learnt); s_q0, s_p0, s_qT, s_pT are four scalars fitted on the
training split (root mean square of the centred values), so inputs and targets are of
unit scale. The loss is the mean squared error of the normalised targets.

Width: the paper gives two hidden layers per MLP and a total parameter count comparable to
PDE-NHF's; its exact number was lost from the text we have. We take H = 80, which gives
2 (2N H + H + H^2 + H + H N + N) = 136,512 parameters for N = 256, beside PDE-NHF's
132,354. Softplus is the activation of PDE-NHF's networks; the paper does not name one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..backend import resolve_device, resolve_dtype
from ..files import model_path, read_model_file, save_model_file
from ..initial import as_particles
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

FORMAT = "fastvp-baseline/1"
#: Hidden width of both MLPs (module docstring).
HIDDEN = 80


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.Softplus(),
        nn.Linear(hidden, hidden), nn.Softplus(),
        nn.Linear(hidden, n_out),
    )


class Baseline(nn.Module):
    """Two MLPs from sorted initial particles to sorted final positions and momenta.

    n_particles: N; hidden: H, the width of the two hidden layers; final_time: the time T
    of the targets (the only time the baseline predicts). ``predict(batch)`` gives
    (q_T, p_T) [B, N], sorted. See the module docstring for the normalisation.
    """

    def __init__(self, n_particles: int = 256, hidden: int = HIDDEN, final_time: float = 1.0):
        super().__init__()
        for name, v in (("n_particles", n_particles), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if (isinstance(final_time, bool) or not isinstance(final_time, (int, float))
                or not math.isfinite(final_time) or final_time <= 0):
            raise ValueError(f"final_time must be a finite number > 0, got {final_time!r}")
        self.n_particles = int(n_particles)
        self.hidden = int(hidden)
        self.final_time = float(final_time)
        n = self.n_particles
        self.mlp_q = _mlp(2 * n, self.hidden, n)
        self.mlp_p = _mlp(2 * n, self.hidden, n)
        # (s_q0, s_p0, s_qT, s_pT): fitted on the training data by ``fit_scales``
        self.register_buffer("scales", torch.ones(4))

    # -------------------------------------------------------------- the maps

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        w = self.mlp_q[0].weight
        return w.device, w.dtype

    def _check(self, q: torch.Tensor) -> None:
        if q.shape[1] != self.n_particles:
            raise ValueError(f"batch must hold N = {self.n_particles} particles per example, "
                             f"got shape {tuple(q.shape)}")

    def features(self, q0: torch.Tensor, p0: torch.Tensor):
        """Normalised input x [B, 2N] and the centres (mean q0, mean p0) [B, 1] each."""
        sq0, sp0 = self.scales[0], self.scales[1]
        mq, mp = q0.mean(dim=1, keepdim=True), p0.mean(dim=1, keepdim=True)
        x = torch.cat(((torch.sort(q0, dim=1).values - mq) / sq0,
                       (torch.sort(p0, dim=1).values - mp) / sp0), dim=1)
        return x, mq, mp

    def targets(self, q0, p0, qT, pT) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised targets (sort qT - mean q0) / s_qT and (sort pT - mean p0) / s_pT: [B, N]."""
        mq, mp = q0.mean(dim=1, keepdim=True), p0.mean(dim=1, keepdim=True)
        return ((torch.sort(qT, dim=1).values - mq) / self.scales[2],
                (torch.sort(pT, dim=1).values - mp) / self.scales[3])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised outputs (MLP_q(x), MLP_p(x)): [B, 2N] -> [B, N], [B, N]."""
        return self.mlp_q(x), self.mlp_p(x)

    def predict(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted final positions and momenta (q_T, p_T) [B, N] of the examples of `batch`.

        batch: a fastvp.Batch or a (q0, p0) pair of [B, N] tensors / arrays. Computed in the
        model's dtype, on its device; no gradient is kept.
        """
        q0, p0 = as_particles(batch)
        self._check(q0)
        device, dtype = self._device_dtype()
        q0, p0 = q0.to(device=device, dtype=dtype), p0.to(device=device, dtype=dtype)
        with torch.no_grad():
            x, mq, mp = self.features(q0, p0)
            yq, yp = self(x)
            qT = mq + self.scales[2] * yq
            pT = mp + self.scales[3] * yp
        return torch.sort(qT, dim=1).values, torch.sort(pT, dim=1).values

    def fit_scales(self, q0, p0, qT, pT) -> None:
        """Set (s_q0, s_p0, s_qT, s_pT) to the RMS of the centred training values [n, N]."""
        mq, mp = q0.mean(dim=1, keepdim=True), p0.mean(dim=1, keepdim=True)
        rms = [((x - m) ** 2).mean().sqrt() for x, m in ((q0, mq), (p0, mp), (qT, mq), (pT, mp))]
        s = torch.stack(rms).to(self.scales)
        self.scales.copy_(torch.where(s > 0, s, torch.ones_like(s)))

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -------------------------------------------------------------- files

    def _meta(self) -> dict:
        return {"format": FORMAT, "n_particles": self.n_particles, "hidden": self.hidden,
                "final_time": self.final_time, "n_parameters": self.n_parameters,
                "history": getattr(self, "history", []),
                "train_config": getattr(self, "train_config", None)}

    def save(self, path) -> Path:
        """Write `path` (.safetensors appended if missing) and a .json beside it; atomic.

        The safetensors file is self-contained (its metadata holds the configuration); the
        JSON copy is for people. Returns the .safetensors path.
        """
        return save_model_file(path, self.state_dict(), self._meta())

    @classmethod
    def load(cls, path, device=None, dtype=None) -> Baseline:
        """A Baseline from a file written by ``save`` (the .json beside it is not needed)."""
        path = Path(path)
        if not path.exists() and model_path(path).exists():
            path = model_path(path)
        if not path.is_file():
            raise FileNotFoundError(f"baseline file {str(path)!r} does not exist")
        try:
            tensors, meta = read_model_file(path)
        except ValueError as exc:
            raise ValueError(f"path {str(path)!r} is not a fastvp baseline file: {exc}") from exc
        if (meta or {}).get("format") != FORMAT:
            raise ValueError(f"path {str(path)!r} is not a fastvp baseline file "
                             f"(format {(meta or {}).get('format')!r}, expected {FORMAT!r})")
        try:
            model = cls(meta["n_particles"], meta["hidden"], meta["final_time"])
            model.to(dtype=tensors["mlp_q.0.weight"].dtype)  # the dtype it was saved in
            model.load_state_dict(tensors)
        except (KeyError, RuntimeError) as exc:
            raise ValueError(f"baseline file {str(path)!r} is damaged: {exc}") from exc
        model.history = meta.get("history", [])
        model.train_config = meta.get("train_config")
        if device is not None or dtype is not None:
            model.to(device=resolve_device(device) if device is not None else None,
                     dtype=resolve_dtype(dtype) if dtype is not None else None)
        return model


# ------------------------------------------------------------------ training

#: Format of the training checkpoint (out/checkpoint.pt) of ``train_baseline``.
TRAIN_FORMAT = "fastvp-baseline-train/1"
#: Settings that may change when a run is resumed (the others must match the checkpoint).
RESUMABLE = ("epochs", "device", "max_bad_steps", "checkpoint_every")


@dataclass
class BaselineConfig:
    """Training of the baseline: PDE-NHF's optimiser, batch and learning rate (Adam, 128, 3e-4).

    hidden: the MLPs' width H; epochs: passes over the training split; the weights kept are
    those of the epoch with the lowest validation loss (the last epoch's without a
    validation split). batch_size: examples per optimiser step (under DDP the global batch).
    checkpoint_every: also checkpoint every this many optimiser steps (None: per epoch).
    max_bad_steps: consecutive non-finite losses or gradients tolerated (each skipped).
    """

    epochs: int = 200
    batch_size: int = 128
    lr: float = 3e-4
    hidden: int = HIDDEN
    dtype: torch.dtype = torch.float32
    device: str | None = None
    seed: int = 0
    checkpoint_every: int | None = None
    max_bad_steps: int = 10

    def __post_init__(self) -> None:
        names = ["epochs", "batch_size", "hidden", "max_bad_steps", "seed"]
        if self.checkpoint_every is not None:
            names.append("checkpoint_every")
        for name in names:
            v, low = getattr(self, name), 0 if name == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) \
                or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        self.dtype = resolve_dtype(self.dtype)
        if self.device is not None:
            resolve_device(self.device)  # fail early on an unknown device

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dtype"] = str(self.dtype).removeprefix("torch.")
        d["device"] = None if self.device is None else str(self.device)
        return d


def _arrays(ds, device, dtype) -> tuple[torch.Tensor, ...]:
    first, last = ds.steps[0], ds.steps[-1]
    return tuple(torch.as_tensor(np.array(a), device=device, dtype=dtype)
                 for a in (ds.q(first), ds.p(first), ds.q(last), ds.p(last)))


def _loss(model: Baseline, x, yq, yp, scale: float | None = None) -> torch.Tensor:
    """Half the mean squared error of both outputs (x [b, 2N], yq, yp [b, N]): a scalar.

    scale: instead scale * the sum over the b examples of their mean over N (a rank's
    part of the mean of a larger batch, see ``train_baseline``).
    """
    oq, op = model(x)
    if scale is None:
        return 0.5 * (((oq - yq) ** 2).mean() + ((op - yp) ** 2).mean())
    n = yq.shape[1]
    return 0.5 * (((oq - yq) ** 2).sum() + ((op - yp) ** 2).sum()) / n * scale


def _evaluate(model: Baseline, arrays, batch_size: int = 4096) -> tuple[float, float, float]:
    """(validation loss, mean W1 of positions at T, of momenta) over `arrays`."""
    from ..metrics import wasserstein_1d

    q0, p0, qT, pT = arrays
    n = q0.shape[0]
    loss = wq = wp = 0.0
    with torch.no_grad():
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            x, _, _ = model.features(q0[sl], p0[sl])
            yq, yp = model.targets(q0[sl], p0[sl], qT[sl], pT[sl])
            m = q0[sl].shape[0]
            loss += _loss(model, x, yq, yp).item() * m
            pq, pp = model.predict((q0[sl], p0[sl]))
            wq += wasserstein_1d(pq, qT[sl]).sum().item()
            wp += wasserstein_1d(pp, pT[sl]).sum().item()
    return loss / n, wq / n, wp / n


def train_baseline(dataset, config: BaselineConfig | None = None, out=None,
                   progress: bool = True, *, resume: bool = False,
                   distributed: bool | None = None) -> Baseline:
    """Train the baseline on the "train" split of `dataset` (a Dataset or a folder).

    Targets are the final snapshot (t = T). Adam with `config.lr`, shuffled minibatches of
    `config.batch_size`; after each epoch the validation loss and the validation W1 at T
    are appended to ``model.history``. Returns the model of the best validation epoch, on
    `config.device` in `config.dtype`.

    out: a folder (as for ``fastvp.train``) for checkpoint.pt (model with its fitted
    scales, optimiser, RNG states, epoch and position in the epoch, the best epoch's model,
    history; written atomically each epoch and every `checkpoint_every` steps),
    model.safetensors (+ .json; the best model so far, as ``Baseline.load`` reads it) and
    history.json. An `out` holding a checkpoint is refused unless resume=True, which
    continues it bit-exactly (settings other than ``RESUMABLE`` must match). A step whose
    loss or gradient is not finite is skipped (and reported on the progress bar); after
    `max_bad_steps` in a row training stops with FloatingPointError, the last checkpoint
    untouched.

    distributed: data-parallel over the ranks of torch.distributed, as ``fastvp.train``
    does (None: whenever a process group exists or WORLD_SIZE > 1): each global batch is
    cut into contiguous parts, one per rank, weighted so that DDP's mean gradient is the
    single-process one; every rank scores the whole validation split and skips the same
    non-finite steps; rank 0 alone writes `out`, every rank reads the checkpoint on resume.
    """
    from .. import distributed as dist
    from ..data import Dataset, load_dataset

    config = config or BaselineConfig()
    if not isinstance(config, BaselineConfig):
        raise ValueError(f"config must be a fastvp BaselineConfig, got {type(config).__name__}")
    dist.check_distributed(distributed)  # before the dataset is read
    if out is not None:
        if not isinstance(out, (str, os.PathLike)):
            raise ValueError(f"out must be a folder path, got {out!r}")
        out = Path(out)
        if out.suffix == ".safetensors":
            raise ValueError(f"out must be a folder (the model is written to "
                             f"out/{MODEL}), got {str(out)!r}")
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}")
    if resume and out is None:
        raise ValueError("resume=True needs out, the folder holding the checkpoint")
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    if len(dataset.steps) < 2:
        raise ValueError("dataset must hold an initial and a final snapshot, got steps "
                         f"{dataset.steps}")
    train, val = dataset.split("train"), dataset.split("val")
    if len(train) == 0:
        raise ValueError(f"dataset {str(dataset.path)!r} has an empty training split "
                         f"({len(dataset)} examples)")
    with dist.data_parallel(distributed, config.device) as (parallel, device):
        world = dist.world_size() if parallel else 1
        if config.batch_size < world:
            raise ValueError(f"batch_size ({config.batch_size}) is the global batch, split over "
                             f"the {world} ranks: it must be at least the number of ranks")
        has_checkpoint = False
        if out is not None:  # rank 0 looks, all follow (and raise its error)
            has_checkpoint = dist.on_main(lambda: prepare_out(out, resume)) if parallel \
                else prepare_out(out, resume)
        return _train_baseline(train, val, dataset, config, out, resume and has_checkpoint,
                               progress, device, parallel)


def _copy(model: Baseline, state: dict, history: list[dict], config: BaselineConfig) -> Baseline:
    """A CPU Baseline shaped as `model` holding `state`, `history` and `config` (to save)."""
    dtype = model.mlp_q[0].weight.dtype
    kept = Baseline(model.n_particles, model.hidden, model.final_time).to(dtype=dtype)
    kept.load_state_dict(state)
    kept.history, kept.train_config = list(history), config.to_dict()
    return kept


def _train_baseline(train, val, dataset, config: BaselineConfig, out: Path | None, resume: bool,
                    progress: bool, device: torch.device, parallel: bool) -> Baseline:
    """``train_baseline`` once the device, the process group and the run folder are known;
    resume: continue out/checkpoint.pt."""
    from .. import distributed as dist

    dtype = config.dtype
    world = dist.world_size() if parallel else 1

    def on_main(fn):
        return dist.on_main(fn) if parallel else fn()

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)  # the shuffles, epoch after epoch

    tr = _arrays(train, device, dtype)
    va = _arrays(val, device, dtype) if len(val) else None
    model = Baseline(dataset.n_particles, config.hidden, dataset.times[-1] - dataset.times[0])
    model.to(device=device, dtype=dtype)
    model.fit_scales(*tr)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = tr[0].shape[0]
    per_epoch = math.ceil(n / config.batch_size)
    epoch, position, history = 0, 0, []
    guard = NonFiniteGuard(config.max_bad_steps)
    best, best_state = math.inf, None
    # the epoch so far: sum of (batch loss x batch size) over its steps taken, and their examples
    epoch_loss, epoch_examples, seconds = 0.0, 0, 0.0
    if resume:
        ck = load_checkpoint(out / CHECKPOINT, TRAIN_FORMAT, config.to_dict(), RESUMABLE)
        model.load_state_dict(ck["model"])  # with the fitted scales
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        gen.set_state(ck["shuffle_rng"])
        epoch, position, history = int(ck["epoch"]), int(ck["position"]), list(ck["history"])
        best, best_state = float(ck["best_loss"]), ck["best_model"]
        epoch_loss, epoch_examples = float(ck["epoch_loss"]), int(ck["epoch_examples"])
        seconds = float(ck["seconds"])
        guard = NonFiniteGuard(config.max_bad_steps, ck["bad_steps"], ck["bad_in_a_row"])
    # features and targets are fixed: computed once, not per epoch
    with torch.no_grad():
        x_tr, _, _ = model.features(tr[0], tr[1])
        yq_tr, yp_tr = model.targets(*tr)
    net = dist.wrap_ddp(model) if parallel else model
    t0 = time.perf_counter() - seconds

    def checkpoint(epoch: int, position: int, shuffle_rng: torch.Tensor,
                   files: bool = False) -> None:
        """Rank 0 writes (with files: model.safetensors, history.json, then) checkpoint.pt."""
        if out is None:
            return
        check_finite(model, out)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        ck = {"format": TRAIN_FORMAT, "config": config.to_dict(), "epoch": epoch,
              "position": position, "history": history, "model": state,
              "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
              "shuffle_rng": shuffle_rng, "best_loss": best,
              "best_model": None if best_state is None
              else {k: v.detach().cpu() for k, v in best_state.items()},
              "epoch_loss": epoch_loss, "epoch_examples": epoch_examples,
              "seconds": time.perf_counter() - t0, "bad_steps": guard.total,
              "bad_in_a_row": guard.bad}

        def save() -> None:
            if files:  # before the checkpoint: it never says more than the files hold
                _copy(model, state if best_state is None else best_state, history,
                      config).save(out / MODEL)
                write_history(out, history)
            atomic_save(ck, out / CHECKPOINT)

        on_main(save)  # the other ranks wait (and raise rank 0's error, if any)

    bar = None
    if progress and (not parallel or dist.is_main()):
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=epoch, unit="epoch", desc="baseline", leave=False)
    try:
        while epoch < config.epochs:
            shuffle_rng = gen.get_state()  # this epoch's order, as a checkpoint re-draws it
            perm = torch.randperm(n, generator=gen).to(device)
            model.train()
            for b in range(position, per_epoch):
                idx = perm[b * config.batch_size:(b + 1) * config.batch_size]  # the global batch
                mine = idx[dist.shard(len(idx))] if parallel else idx
                opt.zero_grad(set_to_none=True)
                loss = _loss(net, x_tr[mine], yq_tr[mine], yp_tr[mine], scale=world / len(idx))
                # the global batch's mean loss, on every rank: one verdict for all
                loss_all = dist.all_reduce_mean(loss) if parallel else loss.detach()
                if guard.backward(loss, loss_all, model.parameters(), parallel):
                    guard.taken()
                    opt.step()
                    epoch_loss += loss_all.item() * len(idx)
                    epoch_examples += len(idx)
                else:  # reported on the bar; FloatingPointError after max_bad_steps in a row
                    guard.skip(f"epoch {epoch + 1}, batch {b}", loss_all.item(),
                               bar.write if bar is not None else None)
                    opt.zero_grad(set_to_none=True)
                if config.checkpoint_every and (b + 1) % config.checkpoint_every == 0 \
                        and b + 1 < per_epoch:
                    checkpoint(epoch, b + 1, shuffle_rng)
            model.eval()
            row = {"epoch": epoch + 1, "train_loss": epoch_loss / epoch_examples
                   if epoch_examples else float("nan"), "time_s": time.perf_counter() - t0}
            if va is not None:  # on every rank: their parameters are the same
                row["val_loss"], row["val_w1_q"], row["val_w1_p"] = _evaluate(model, va)
                if row["val_loss"] < best:
                    best = row["val_loss"]
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.append(row)
            epoch, position, epoch_loss, epoch_examples = epoch + 1, 0, 0.0, 0
            checkpoint(epoch, 0, gen.get_state(), files=True)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k.endswith("loss")})
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.history = history
    model.train_config = config.to_dict()
    return model
