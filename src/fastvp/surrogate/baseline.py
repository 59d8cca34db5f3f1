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

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..backend import resolve_device, resolve_dtype
from ..files import atomic_write_text
from ..initial import as_particles

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
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = self._meta()
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = path.with_name(path.name + ".partial")
        save_file(tensors, str(tmp), metadata={"fastvp": json.dumps(meta)})
        os.replace(tmp, path)
        atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path, device=None, dtype=None) -> Baseline:
        """A Baseline from a file written by ``save`` (the .json beside it is not needed)."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.exists() and path.with_name(path.name + ".safetensors").exists():
            path = path.with_name(path.name + ".safetensors")
        if not path.is_file():
            raise FileNotFoundError(f"baseline file {str(path)!r} does not exist")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {}).get("fastvp", "{}"))
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"path {str(path)!r} is not a fastvp baseline file: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ValueError(f"path {str(path)!r} is not a fastvp baseline file "
                             f"(format {meta.get('format')!r}, expected {FORMAT!r})")
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


@dataclass
class BaselineConfig:
    """Training of the baseline: PDE-NHF's optimiser, batch and learning rate (Adam, 128, 3e-4).

    hidden: the MLPs' width H; epochs: passes over the training split; the weights kept are
    those of the epoch with the lowest validation loss (the last epoch's without a
    validation split).
    """

    epochs: int = 200
    batch_size: int = 128
    lr: float = 3e-4
    hidden: int = HIDDEN
    dtype: torch.dtype = torch.float32
    device: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        self.dtype = resolve_dtype(self.dtype)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dtype"] = str(self.dtype).removeprefix("torch.")
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
                   progress: bool = True, *, distributed: bool | None = None) -> Baseline:
    """Train the baseline on the "train" split of `dataset` (a Dataset or a folder).

    Targets are the final snapshot (t = T). Adam with `config.lr`, shuffled minibatches of
    `config.batch_size`; after each epoch the validation loss and the validation W1 at T
    are appended to ``model.history``. `out`: a file to save the returned model to.
    Returns the model of the best validation epoch, on `config.device` in `config.dtype`.

    distributed: data-parallel over the ranks of torch.distributed, as ``fastvp.train``
    does (None: whenever a process group exists or WORLD_SIZE > 1): each global batch is
    cut into contiguous parts, one per rank, weighted so that DDP's mean gradient is the
    single-process one; every rank scores the whole validation split; rank 0 writes `out`.
    """
    from .. import distributed as dist
    from ..data import Dataset, load_dataset

    config = config or BaselineConfig()
    if not isinstance(config, BaselineConfig):
        raise ValueError(f"config must be a fastvp BaselineConfig, got {type(config).__name__}")
    if distributed is not None and not isinstance(distributed, bool):
        raise ValueError(f"distributed must be True, False or None, got {distributed!r}")
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
        model = _train_baseline(train, val, dataset, config, progress, device, parallel)
        if out is not None:
            if parallel:
                dist.on_main(lambda: model.save(out))  # the other ranks wait
            else:
                model.save(out)
    return model


def _train_baseline(train, val, dataset, config: BaselineConfig, progress: bool,
                    device: torch.device, parallel: bool) -> Baseline:
    from .. import distributed as dist

    dtype = config.dtype
    world = dist.world_size() if parallel else 1
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)

    tr = _arrays(train, device, dtype)
    va = _arrays(val, device, dtype) if len(val) else None
    model = Baseline(dataset.n_particles, config.hidden, dataset.times[-1] - dataset.times[0])
    model.to(device=device, dtype=dtype)
    model.fit_scales(*tr)
    # features and targets are fixed: computed once, not per epoch
    with torch.no_grad():
        x_tr, _, _ = model.features(tr[0], tr[1])
        yq_tr, yp_tr = model.targets(*tr)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    net = dist.wrap_ddp(model) if parallel else model
    n = x_tr.shape[0]
    history: list[dict] = []
    best, best_state = math.inf, None

    bar = None
    if progress and (not parallel or dist.is_main()):
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, unit="epoch", desc="baseline", leave=False)
    t0 = time.perf_counter()
    try:
        for epoch in range(config.epochs):
            model.train()
            perm = torch.randperm(n, generator=gen).to(device)
            total = 0.0
            for i in range(0, n, config.batch_size):
                idx = perm[i:i + config.batch_size]  # the global batch
                mine = idx[dist.shard(len(idx))] if parallel else idx
                loss = _loss(net, x_tr[mine], yq_tr[mine], yp_tr[mine], scale=world / len(idx))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_all = dist.all_reduce_mean(loss) if parallel else loss.detach()
                total += loss_all.item() * idx.shape[0]
            model.eval()
            row = {"epoch": epoch + 1, "train_loss": total / n, "time_s": time.perf_counter() - t0}
            if va is not None:  # on every rank: their parameters are the same
                row["val_loss"], row["val_w1_q"], row["val_w1_p"] = _evaluate(model, va)
                if row["val_loss"] < best:
                    best, best_state = row["val_loss"], copy.deepcopy(model.state_dict())
            history.append(row)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k.endswith("loss")})
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.history = history
    model.train_config = config.to_dict()
    return model
