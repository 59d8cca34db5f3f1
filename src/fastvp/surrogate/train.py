"""Training PDE-NHF by maximum likelihood of the pulled-back initial state.

Each example's final state (q_T, p_T) is pulled back with K leapfrog steps of dt = -T/K,
and the loss is the negative log-likelihood of the result under the example's initial
Gaussians (the forward KL up to a constant; exact because the flow preserves volume):

    loss = -mean_b sum_i [ log N(q0_bi; mu_q, sigma_q_b) + log N(p0_bi; mu_p, sigma_p_b) ]

in nats per example (the official run ended near 706). Only each example's Gaussian
(Cond.npy) and its t = T snapshot are seen (``snapshots=True`` adds the intermediate ones).
The gradient goes through the hand-derived backward of ``potential.closed_form_grad``.
The loop itself (schedule, DDP, NaN guard, resume, history, the kept epoch) is
``loop.fit``, shared with the baseline.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import arguments
from .. import distributed as dist
from ..backend import threads_context
from ..data import Dataset, dataset_fingerprint, load_dataset, require_finite
from ..metrics import wasserstein_1d
from ..problems.distribution import gaussian_log_prob
from ..problems.paper import PaperInitial
from .checkpoint import prepare_out
from .loop import LoopConfig, fit, frozen, sharded_sums, w1_columns
from .migrate import upgrade
from .model import POTENTIALS, PULLBACK_METHODS, Surrogate

INITS = ("random",)
FORMAT = "fastvp-train/2"
#: Settings that may change when a run is resumed (the others must match the checkpoint).
RESUMABLE = ("epochs", "device", "max_bad_steps", "checkpoint_every", "val_examples",
             "val_w1_examples", "threads")


@dataclass
class TrainConfig(LoopConfig):
    """Settings of ``train``. ``TrainConfig()`` is fastvp's recipe, ``TrainConfig.paper()``
    the paper's (float64, Adam at a constant 3e-4, batch 128, 200 epochs, K = 25),
    ``TrainConfig.quick()`` fastvp's shortened to minutes on one CPU core.

    The loop's settings are ``loop.LoopConfig``'s (only their defaults change here); each
    field's help is its ``metadata["help"]``. A curriculum trains with K = curriculum_steps
    (fewer leapfrog steps: cheaper) for curriculum_fraction of the optimiser steps, then
    with K = steps. The pooled sum s = W2 sum_i softplus(w1 y_i + b1) + N b2 grows with the
    N particles, so an Adam step of size lr on W2 or b2 moves s about N times more than the
    same step elsewhere moves its layer's output: lr_pool ~ 1 / N evens that out.
    curriculum_steps None: no curriculum; val_examples None: all (the command line's 0);
    init_scale 0: V = 0, the flow starts at free streaming. The kept epoch is the one of
    the lowest validation W1.
    """

    # fastvp's recipe (the paper's values are in ``paper()``); README "Training" tells why
    epochs: int = 120
    lr: float = 1e-3
    warmup: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.02
    steps: int = field(default=25, metadata={"help": "K, the leapfrog steps of the flow"})
    hidden: int = field(default=256, metadata={
        "help": "hidden width (Deep Set H; fourier: its correction's, 0 for none; baseline: its "
                "MLPs' width, default 80)"})
    curriculum_steps: int | None = field(default=5, metadata={
        "help": "train with this K first (cheaper), then with --steps; 0: no curriculum"})
    curriculum_fraction: float = field(default=0.85, metadata={
        "help": "fraction of the optimiser steps run with --curriculum-steps"})
    init: str = field(default="random", metadata={
        "help": "the start: torch's initialisation, seeded"})
    init_scale: float = field(default=1.0, metadata={
        "help": "V's output weights start at this multiple of torch's initialisation"})
    lr_pool: float = field(default=1 / 256, metadata={
        "help": "learning-rate factor of phi's second layer (W2, b2): ~1/N"})
    lr_phi0: float = field(default=50.0, metadata={
        "help": "learning-rate factor of phi's first layer (w1, b1)"})
    method: str = field(default="compiled", metadata={
        "help": "the gradient's backward: hand-derived (fast) or the same fused by torch.compile"})
    val_examples: int | None = field(default=256, metadata={
        "help": "validation examples whose NLL is scored each epoch; 0: all of them"})
    val_w1_examples: int = field(default=512, metadata={
        "help": "validation examples whose W1 at T is scored each epoch"})
    snapshots: bool = field(default=False, metadata={
        "help": "also supervise the intermediate snapshots"})
    potential: str = field(default="auto", metadata={
        "help": "V: deepset (the paper's), fourier (periodic problems) or auto (fourier for a "
                "problem dataset other than the paper's)"})
    modes: int = field(default=8, metadata={
        "help": "Fourier modes of a fourier potential (k_m = 2 pi m / L, m = 1 .. modes)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("steps", "val_w1_examples"):
            arguments.integer(name, getattr(self, name), 1)
        arguments.integer("hidden", self.hidden, 0)
        for name in ("val_examples", "curriculum_steps"):
            arguments.optional(arguments.integer, name, getattr(self, name), 1)
        arguments.number("curriculum_fraction", self.curriculum_fraction, 0, 1)
        arguments.number("init_scale", self.init_scale, 0)
        arguments.positive("lr_pool", self.lr_pool)
        arguments.positive("lr_phi0", self.lr_phi0)
        arguments.choice("init", self.init, INITS)
        if self.method not in PULLBACK_METHODS or self.method == "autograd":
            raise ValueError(f"method must be 'fast' or 'compiled', got {self.method!r}")
        arguments.boolean("snapshots", self.snapshots)
        arguments.choice("potential", self.potential, ("auto",) + POTENTIALS)
        arguments.integer("modes", self.modes, 1)

    @classmethod
    def paper(cls, **changes) -> TrainConfig:
        """The paper's recipe: float64, Adam at a constant 3e-4, batch 128, 200 epochs, K = 25."""
        return cls(**{**dict(epochs=200, batch_size=128, lr=3e-4, steps=25, dtype=torch.float64,
                             warmup=0, schedule="constant", min_lr_ratio=0.0, clip=None,
                             curriculum_steps=None, curriculum_fraction=0.0, init="random",
                             init_scale=1.0, lr_pool=1.0, lr_phi0=1.0), **changes})

    @classmethod
    def quick(cls, **changes) -> TrainConfig:
        """fastvp's recipe cut to minutes on one CPU core: 30 epochs (K = 5 for the first 85 %
        of the steps, then 25), a 20-step warm-up, validation on 64 (NLL) and 128 (W1)
        examples. On 4096 paper examples, one thread: under 3 min, and 5 to 6.5 % / 4.5 % of the
        identity W1 at T (positions / momenta) on unseen examples (README "Training")."""
        return cls(**{**dict(epochs=30, warmup=20, val_examples=64, val_w1_examples=128), **changes})

    def leapfrog_steps(self, step: int, total: int) -> int:
        """K at optimiser step `step` of `total` (the curriculum, then `steps`)."""
        if self.curriculum_steps is not None and step < self.curriculum_fraction * total:
            return self.curriculum_steps
        return self.steps


# ---------------------------------------------------------------------------- the loss


def nll(model: Surrogate, q: torch.Tensor, p: torch.Tensor, mu_q, sigma_q, mu_p, sigma_p,
        t: float, method: str = "fast") -> torch.Tensor:
    """-log N(Flow_{-t}(q, p); mu, sigma) per example: [B] (q, p [B, N]; mu, sigma [B])."""
    q0, p0 = model.pullback(q, p, t, method=method)
    return -(gaussian_log_prob(q0, mu_q, sigma_q) + gaussian_log_prob(p0, mu_p, sigma_p))


class _Data:
    """The snapshots a run needs, as tensors in the training dtype and device."""

    def __init__(self, ds, steps: list[int], times: list[float], dtype, device,
                 limit: int | None = None, initial: bool = False):

        n = len(ds) if limit is None else min(limit, len(ds))
        if n < 1:
            raise ValueError(f"the {ds.split_name!r} split of {str(ds.path)!r} holds no examples")
        require_finite(ds, (steps + [ds.steps[0]]) if initial else steps, n)

        def t(x):
            return torch.as_tensor(np.array(x[:n]), dtype=dtype).to(device)

        self.n, self.times = n, times
        self.q = [t(ds.q(s)) for s in steps]
        self.p = [t(ds.p(s)) for s in steps]
        self.q0, self.p0 = (t(ds.q(ds.steps[0])), t(ds.p(ds.steps[0]))) if initial else (None, None)
        #: f0 of problems other than the paper's Gaussians (None: Gaussians, below)
        self.f0 = None if ds.gaussian else ds.distribution().subset(np.arange(n))
        if self.f0 is not None:
            return
        cond = t(ds.cond)
        self.sigma_q, self.sigma_p = cond[:, 0].contiguous(), cond[:, 1].contiguous()
        initial = PaperInitial.of(ds.config)
        self.mu_q = torch.full((n,), initial.centre(ds.config), dtype=dtype, device=device)
        self.mu_p = torch.full((n,), initial.mu_p, dtype=dtype, device=device)

    def nll(self, model: Surrogate, idx, k: int = -1, method: str = "fast") -> torch.Tensor:
        """NLL [b] of the examples idx from snapshot k."""
        if self.f0 is not None:
            q0, p0 = model.pullback(self.q[k][idx], self.p[k][idx], self.times[k], method=method)
            return -self.f0.subset(_indices(idx, self.n)).log_density(q0, p0)
        return nll(model, self.q[k][idx], self.p[k][idx], self.mu_q[idx], self.sigma_q[idx],
                   self.mu_p[idx], self.sigma_p[idx], self.times[k], method)

    def loss(self, model: Surrogate, idx, method: str, scale: float | None = None) -> torch.Tensor:
        """NLL of the examples idx [b], averaged over the supervised snapshots: a scalar.

        scale None: the mean over idx; else scale * the sum over idx (a rank's part of
        the mean of a larger batch, see ``loop.fit``).
        """
        def reduce(x: torch.Tensor) -> torch.Tensor:
            return x.mean() if scale is None else x.sum() * scale

        terms = [reduce(self.nll(model, idx, k, method)) for k in range(len(self.times))]
        return terms[0] if len(terms) == 1 else torch.stack(terms).mean()


def _indices(idx, n: int) -> np.ndarray:
    """An index (tensor, slice or array) into n examples as an integer array."""
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    return np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx)


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

    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset)
    require_density(dataset)  # the likelihood needs each example's initial density
    needed = ("split", "q", "p", "steps", "times", "config")
    if not all(hasattr(dataset, k) for k in needed):
        raise ValueError(f"dataset must be a dataset folder or a fastvp dataset, got "
                         f"{type(dataset).__name__}")
    return dataset


# ---------------------------------------------------------------------------- the trainer


def require_density(ds) -> None:
    """Raise ValueError saying why, unless every example of `ds` has an initial density
    PDE-NHF's likelihood can score (Gaussians, or a problem's f0 without cold beams)."""
    if getattr(ds, "gaussian", True):
        return
    f0 = ds.distribution()
    if getattr(f0, "cold", False) or any(np.any(vth == 0) for _, _, vth in getattr(f0, "species", [])):
        raise ValueError(
            f"dataset {str(ds.path)!r} holds the {ds.problem['name']!r} problem with cold beams "
            "(vth = 0): its initial particles have no density, and PDE-NHF's likelihood needs "
            "one; make the dataset with a thermal spread (--vth > 0)")


def potential_of(config: TrainConfig, ds) -> str:
    """The potential a run trains: config.potential, "auto" read as fourier for a problem
    dataset other than the paper's and deepset otherwise."""
    if config.potential != "auto":
        return config.potential
    problem = getattr(ds, "problem", None)
    return "fourier" if problem is not None and problem["name"] != "paper" else "deepset"


def problem_record(ds) -> dict | None:
    """What a model's file records of the problem of its training data: {"name", "params"}
    (shared values, and per-example values that all examples share), plus "ranges" {name:
    [min, max]} of the per-example values that vary; None for the paper's datasets."""
    problem = getattr(ds, "problem", None)
    if problem is None or problem["name"] == "paper":
        return None
    params, ranges = {}, {}
    for name, v in problem["params"].items():
        if not isinstance(v, dict):
            params[name] = v
        elif v["min"] == v["max"]:
            params[name] = v["min"]
        else:
            ranges[name] = [v["min"], v["max"]]
    return {"name": problem["name"], "params": params, **({"ranges": ranges} if ranges else {})}


def initial_model(config: TrainConfig, pic_config, ds=None) -> Surrogate:
    """A fresh Surrogate for `config` (and the problem of the dataset `ds`): torch's
    initialisation (seeded by config.seed), V's output weights scaled by
    config.init_scale, a = 1."""
    torch.manual_seed(config.seed)
    model = Surrogate(pic_config, steps=config.steps, hidden=config.hidden,
                      potential=potential_of(config, ds), modes=config.modes,
                      problem=problem_record(ds))
    with torch.no_grad():
        if model.V_net.rho is not None:
            model.V_net.rho[2].weight.mul_(config.init_scale)
    return model


class NHFTrainer:
    """PDE-NHF for ``loop.fit``: the pull-back NLL on the train split, and per epoch the
    validation NLL and W1 at T (sampled with K = config.steps from the validation examples'
    actual initial particles)."""

    format = FORMAT
    resumable = RESUMABLE

    def __init__(self, ds, config: TrainConfig, device, model: Surrogate | None):
        dtype = config.dtype
        steps, times = list(ds.steps), [float(x) for x in ds.times]
        chosen = [i for i, t in enumerate(times) if t > 0] if config.snapshots else [len(steps) - 1]
        self.train_set = _Data(ds.split("train"), [steps[i] for i in chosen],
                               [times[i] for i in chosen], dtype, device)
        val = ds.split("val")
        self.val_set = _Data(val, steps[-1:], times[-1:], dtype, device, config.val_examples)
        self.w1_set = _Data(val, steps[-1:], times[-1:], dtype, device, config.val_w1_examples,
                            initial=True)

        w = self.w1_set
        self.identity = (wasserstein_1d(w.q0, w.q[-1]).mean().item(),
                         wasserstein_1d(w.p0, w.p[-1]).mean().item())
        self.config, self.ds = config, ds
        self.model = copy.deepcopy(model) if model is not None else initial_model(config, ds.config, ds)
        self.model.steps = config.steps
        self.model.to(device=device, dtype=dtype)
        self.n_train = self.train_set.n
        self.settings = config.to_dict()

        self.data = dataset_fingerprint(ds) if isinstance(ds, Dataset) else None  # resume checks it

    def objective(self) -> torch.nn.Module:
        return _Objective(self.model, self.train_set, self.config.method)

    def param_groups(self) -> list[dict]:
        """Adam's groups: phi.0 and phi.2 at their lr factors, the rest (a included) at lr.

        One group when both factors are 1 (as before the factors existed: old checkpoints
        resume unchanged)."""
        cfg, V = self.config, self.model.V_net
        if (cfg.lr_pool == 1.0 and cfg.lr_phi0 == 1.0) or self.model.periodic:
            return [{"params": list(self.model.parameters())}]
        phi0, pool = list(V.phi[0].parameters()), list(V.phi[2].parameters())
        special = {id(p) for p in phi0 + pool}
        rest = [p for p in self.model.parameters() if id(p) not in special]
        return [{"params": phi0, "lr": cfg.lr * cfg.lr_phi0},
                {"params": pool, "lr": cfg.lr * cfg.lr_pool}, {"params": rest, "lr": cfg.lr}]

    def before_step(self, step: int, total: int) -> None:
        self.model.steps = self.config.leapfrog_steps(step, total)

    def postfix(self) -> dict:
        return {"a": f"{self.model.a.item():.4f}", "K": self.model.steps}

    def validate(self, parallel: bool) -> dict:

        m, K, T = self.model, self.config.steps, self.w1_set.times[-1]
        m.steps = K
        chunk = 4 * self.config.batch_size
        (val,) = sharded_sums(lambda sl: (self.val_set.nll(m, sl),), self.val_set.n, 1, parallel,
                              chunk)
        w = self.w1_set

        def w1(sl):
            q, p = m.sample(T, (w.q0[sl], w.p0[sl]), steps=K)
            return wasserstein_1d(q, w.q[-1][sl]), wasserstein_1d(p, w.p[-1][sl])

        wq, wp = sharded_sums(w1, w.n, 2, parallel, chunk)
        return {"val_loss": val / self.val_set.n,
                **w1_columns(wq / w.n, wp / w.n, *self.identity), "a": m.a.item(), "K": K}

    def training_info(self, history: list[dict]) -> dict:
        """The "training" entry of the saved model's JSON: how it was made."""
        cfg = self.config
        times = [float(t) for t in self.train_set.times]
        kept = history[-1]["kept"] if history else None
        return {"objective": "likelihood", "supervised_times": times, "a_learned": True,
                "potential": self.model.potential_kind,
                "init": "model" if getattr(self, "started_from", None) else cfg.init,
                "recipe": cfg.to_dict(), "data": str(self.ds.path), "data_fingerprint": self.data,
                "epochs": len(history), "kept_epoch": kept,
                "wall_hours": (history[-1]["elapsed"] / 3600) if history else 0.0,
                "device": _device_name(next(self.model.parameters()).device)}

    def save(self, path: Path, state: dict, history: list[dict]) -> None:
        model = copy.deepcopy(self.model).to("cpu")
        model.load_state_dict(state)
        model.history = history
        model.training_info = self.training_info(history)
        model.save(path)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} threads)"


def migrate(ck: dict) -> dict | None:
    """A checkpoint from before 0.1.0 as a FORMAT one (``migrate.upgrade``), else None."""
    return upgrade(ck, FORMAT, TrainConfig)


# ---------------------------------------------------------------------------- train


def train(dataset, config: TrainConfig | None = None, out=None, *, resume: bool = False,
          progress: bool = True, model: Surrogate | None = None,
          distributed: bool | None = None) -> Surrogate:
    """Fit a Surrogate to a dataset by maximum likelihood; returns the kept epoch's model.

    Args:
        dataset: a dataset folder or a ``fastvp.Dataset``; trains on its "train" split and
            scores its "val" split after each epoch (NLL, and W1 at T on
            ``config.val_w1_examples`` examples).
        config: a TrainConfig (default ``TrainConfig()``, fastvp's recipe).
        out: a folder for checkpoint.pt, model.safetensors (the epoch of the lowest
            validation W1) and history.json (``loop`` module docstring).
        resume: continue the checkpoint in `out` (settings outside ``RESUMABLE`` must match).
        model: start from this model (a copy) instead of a fresh one.
        distributed: data-parallel over the ranks of torch.distributed (torchrun); None:
            whenever a process group exists or WORLD_SIZE > 1. Rank 0 writes `out`.

    Returns:
        The Surrogate of the kept epoch, with ``history`` (one dict per epoch) and
        ``training_info`` (what its JSON records).

    Raises:
        ValueError: a bad config, dataset, `out`, or a resume with other settings.
        FloatingPointError: `max_bad_steps` non-finite steps in a row.

    Example:
        >>> import tempfile, fastvp
        >>> data = fastvp.generate_dataset(tempfile.mkdtemp(), n_examples=40, progress=False,
        ...                                config=fastvp.PICConfig(n_particles=16))
        >>> cfg = fastvp.TrainConfig(epochs=1, batch_size=8, steps=2, hidden=8, threads=1)
        >>> model = fastvp.train(data, cfg, progress=False)
        >>> model.kept_epoch, model.training_info["objective"]
        (1, 'likelihood')
    """
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a fastvp.TrainConfig, got {type(config).__name__}")
    if model is not None and not isinstance(model, Surrogate):
        raise ValueError(f"model must be a fastvp.Surrogate to start from, "
                         f"got {type(model).__name__}")
    arguments.boolean("resume", resume)
    dist.check_distributed(distributed)  # before the dataset is read
    ds = _dataset(dataset)
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise ValueError("resume=True needs out, the folder holding the checkpoint")
    with threads_context(config.threads), dist.data_parallel(distributed, config.device) as (
            parallel, device):
        return _train(ds, config, out, resume, progress, model, device, parallel)


def _train(ds, config: TrainConfig, out: Path | None, resume: bool, progress: bool,
           model: Surrogate | None, device: torch.device, parallel: bool) -> Surrogate:

    world = dist.world_size() if parallel else 1
    if config.batch_size < world:
        raise ValueError(f"batch_size ({config.batch_size}) is the global batch, split over "
                         f"the {world} ranks: it must be at least the number of ranks")
    has_checkpoint = False
    if out is not None:  # rank 0 looks, all follow
        has_checkpoint = dist.on_main(lambda: prepare_out(out, resume)) if parallel \
            else prepare_out(out, resume)
    trainer = NHFTrainer(ds, config, device, model)
    trainer.started_from = model is not None
    offset = trainer.model.V_net.offset
    with frozen([] if offset is None else [offset]):  # V's constant: no loss depends on it
        best, history, kept = fit(trainer, config, out,
                                  resume and has_checkpoint, progress, parallel, migrate)
    result = trainer.model
    if best is not None:
        result.load_state_dict(best)
    result.steps = config.steps
    result.eval()
    result.history = history
    result.kept_epoch = kept
    result.training_info = trainer.training_info(history)
    return result
