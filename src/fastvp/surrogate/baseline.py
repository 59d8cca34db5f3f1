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

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import arguments
from .. import distributed as dist
from ..backend import resolve_device, resolve_dtype, threads_context
from ..data import Dataset, dataset_fingerprint, load_dataset, require_finite
from ..files import model_path, read_model_file, save_model_file
from ..metrics import wasserstein_1d
from ..particles import as_particles
from .checkpoint import MODEL, prepare_out
from .loop import LoopConfig, fit, sharded_sums, w1_columns
from .migrate import upgrade

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
        arguments.integer("n_particles", n_particles, 1)
        arguments.integer("hidden", hidden, 1)
        arguments.positive("final_time", final_time)
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
                "train_config": getattr(self, "train_config", None),
                "training": getattr(self, "training_info", None)}

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
        model.training_info = meta.get("training")
        if device is not None or dtype is not None:
            model.to(device=resolve_device(device) if device is not None else None,
                     dtype=resolve_dtype(dtype) if dtype is not None else None)
        return model


# ------------------------------------------------------------------ training

#: Format of the training checkpoint (out/checkpoint.pt) of ``train_baseline``.
TRAIN_FORMAT = "fastvp-baseline-train/2"
#: Settings that may change when a run is resumed (the others must match the checkpoint).
RESUMABLE = ("epochs", "device", "max_bad_steps", "checkpoint_every", "threads")


@dataclass
class BaselineConfig(LoopConfig):
    """Training of the baseline: PDE-NHF's optimiser, batch and learning rate (Adam, 128, 3e-4).

    The loop's settings are ``loop.LoopConfig``'s; each field's help is its
    ``metadata["help"]``. The model kept is that of the epoch with the lowest validation W1
    at T, as for PDE-NHF.
    """

    hidden: int = field(default=HIDDEN, metadata={"help": "the MLPs' width H"})

    def __post_init__(self) -> None:
        super().__post_init__()
        arguments.integer("hidden", self.hidden, 1)


def _arrays(ds, device, dtype) -> tuple[torch.Tensor, ...]:

    first, last = ds.steps[0], ds.steps[-1]
    require_finite(ds, [first, last])
    return tuple(torch.as_tensor(np.array(a), device=device, dtype=dtype)
                 for a in (ds.q(first), ds.p(first), ds.q(last), ds.p(last)))


def _loss(model, x, yq, yp, scale: float | None = None) -> torch.Tensor:
    """Half the mean squared error of both outputs (x [b, 2N], yq, yp [b, N]): a scalar.

    scale: instead scale * the sum over the b examples of their mean over N (a rank's
    part of the mean of a larger batch, see ``loop.fit``).
    """
    oq, op = model(x)
    if scale is None:
        return 0.5 * (((oq - yq) ** 2).mean() + ((op - yp) ** 2).mean())
    n = yq.shape[1]
    return 0.5 * (((oq - yq) ** 2).sum() + ((op - yp) ** 2).sum()) / n * scale


class _Objective(torch.nn.Module):
    """forward(idx, scale): the scaled loss of the training examples idx (DDP wraps it)."""

    def __init__(self, model: Baseline, x, yq, yp):
        super().__init__()
        self.model, self.x, self.yq, self.yp = model, x, yq, yp

    def forward(self, idx: torch.Tensor, scale: float) -> torch.Tensor:
        return _loss(self.model, self.x[idx], self.yq[idx], self.yp[idx], scale=scale)


class BaselineTrainer:
    """The baseline for ``loop.fit``: the MSE of the normalised sorted targets; per epoch
    the validation loss and W1 at T."""

    format = TRAIN_FORMAT
    resumable = RESUMABLE

    def __init__(self, dataset, train, val, config: BaselineConfig, device):
        dtype = config.dtype
        self.config = config
        self.tr = _arrays(train, device, dtype)
        self.va = _arrays(val, device, dtype) if len(val) else None
        torch.manual_seed(config.seed)
        self.model = Baseline(dataset.n_particles, config.hidden, dataset.times[-1] - dataset.times[0])
        self.model.to(device=device, dtype=dtype)
        self.model.fit_scales(*self.tr)
        with torch.no_grad():  # features and targets are fixed: computed once
            self.x, _, _ = self.model.features(self.tr[0], self.tr[1])
            self.yq, self.yp = self.model.targets(*self.tr)
        self.n_train = self.tr[0].shape[0]
        self.settings = config.to_dict()

        self.data = dataset_fingerprint(dataset)  # checked on resume, kept in the model file
        self.training_info = {"data": str(dataset.path), "data_fingerprint": self.data,
                              "config": dataset.config.to_dict()}
        if self.va is not None:
            from ..metrics import wasserstein_1d

            q0, p0, qT, pT = self.va
            self.identity = (wasserstein_1d(q0, qT).mean().item(),
                             wasserstein_1d(p0, pT).mean().item())

    def objective(self) -> torch.nn.Module:
        return _Objective(self.model, self.x, self.yq, self.yp)

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.model.parameters())}]

    def before_step(self, step: int, total: int) -> None:
        pass

    def postfix(self) -> dict:
        return {}

    def validate(self, parallel: bool) -> dict:
        if self.va is None:
            return {}

        q0, p0, qT, pT = self.va
        m = self.model

        def values(sl):
            x, _, _ = m.features(q0[sl], p0[sl])
            yq, yp = m.targets(q0[sl], p0[sl], qT[sl], pT[sl])
            oq, op = m(x)
            loss = 0.5 * (((oq - yq) ** 2).mean(dim=1) + ((op - yp) ** 2).mean(dim=1))
            pq, pp = m.predict((q0[sl], p0[sl]))
            return loss, wasserstein_1d(pq, qT[sl]), wasserstein_1d(pp, pT[sl])

        n = q0.shape[0]
        loss, wq, wp = sharded_sums(values, n, 3, False, 4096)  # every rank scores all
        return {"val_loss": loss / n, **w1_columns(wq / n, wp / n, *self.identity)}

    def save(self, path: Path, state: dict, history: list[dict]) -> None:
        kept = Baseline(self.model.n_particles, self.model.hidden, self.model.final_time)
        kept.to(dtype=self.model.mlp_q[0].weight.dtype)
        kept.load_state_dict(state)
        kept.history, kept.train_config = list(history), self.config.to_dict()
        kept.training_info = self.training_info
        kept.save(path)


def migrate(ck: dict) -> dict | None:
    """A checkpoint from before 0.1.0 as a TRAIN_FORMAT one (``migrate.upgrade``), else None."""
    return upgrade(ck, TRAIN_FORMAT, BaselineConfig)


def train_baseline(dataset, config: BaselineConfig | None = None, out=None,
                   progress: bool = True, *, resume: bool = False,
                   distributed: bool | None = None) -> Baseline:
    """Train the baseline on the "train" split of `dataset` (a Dataset or a folder).

    Targets are the final snapshot (t = T). The loop is PDE-NHF's (``loop.fit``): Adam
    with `config.lr`, shuffled minibatches of `config.batch_size`, after each epoch the
    validation loss and W1 at T in ``model.history``; `out` is a run folder as for
    ``fastvp.train`` (checkpoint.pt, model.safetensors of the kept epoch, history.json),
    resume=True continues it bit-exactly, non-finite steps are skipped, DDP under torchrun.
    Returns the model of the epoch with the lowest validation W1, on `config.device` in
    `config.dtype`.
    """
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
    arguments.boolean("resume", resume)
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
    with threads_context(config.threads), dist.data_parallel(distributed, config.device) as (
            parallel, device):
        world = dist.world_size() if parallel else 1
        if config.batch_size < world:
            raise ValueError(f"batch_size ({config.batch_size}) is the global batch, split over "
                             f"the {world} ranks: it must be at least the number of ranks")
        has_checkpoint = False
        if out is not None:  # rank 0 looks, all follow (and raise its error)
            has_checkpoint = dist.on_main(lambda: prepare_out(out, resume)) if parallel \
                else prepare_out(out, resume)
        trainer = BaselineTrainer(dataset, train, val, config, device)
        best, history, kept = fit(trainer, config, out, resume and has_checkpoint, progress,
                                  parallel, migrate)
    model = trainer.model
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    model.history, model.kept_epoch = history, kept
    model.train_config = config.to_dict()
    model.training_info = trainer.training_info
    return model
