"""PDE-NHF: the Surrogate module (the flow of a Deep Set Hamiltonian), its files and loading.

The math lives in ``potential`` (V, the closed-form dV/dq and its hand-derived backward)
and ``flow`` (the leapfrog); this module wraps them in an ``nn.Module`` with the paper's
parameters (``a`` and ``V_net``), sampling, the exact log-likelihood, and files.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import arguments
from ..config import PICConfig
from ..files import file_format, model_path, read_model_file, save_model_file
from ..initial import initial_conditions
from ..particles import Batch, Trajectory, as_particles, check_particles, to_tensor
from ..problems.distribution import Gaussian, InitialDistribution
from .flow import integrate, leapfrog
from .potential import DeepSet, closed_form_grad, grad_autograd

# ---------------------------------------------------------------------------- the model

#: Keys and shapes of a state_dict, for hidden size H (the official checkpoint has H = 256).
def state_shapes(hidden: int) -> dict[str, tuple[int, ...]]:
    h = hidden
    return {
        "a": (1,),
        "V_net.phi.0.weight": (h, 1), "V_net.phi.0.bias": (h,),
        "V_net.phi.2.weight": (h, h), "V_net.phi.2.bias": (h,),
        "V_net.rho.0.weight": (h, h), "V_net.rho.0.bias": (h,),
        "V_net.rho.2.weight": (1, h), "V_net.rho.2.bias": (1,),
    }


FORMAT = "fastvp-surrogate/1"
PULLBACK_METHODS = ("fast", "compiled", "autograd")
WEIGHTS_PACKAGE = "fastvp"


class Surrogate(nn.Module):
    """PDE-NHF: the leapfrog flow of H(q, p) = a^2 |p|^2 / 2 + V(q), V a Deep Set.

    Flow_t = K leapfrog steps of dt = t / K maps initial particles (q0, p0) [B, N] to
    the state at time t; K = `steps` (the training K, 25 in the paper). `config` is the
    PIC setup the model stands for: its final time T bounds t, and its n_particles,
    mu_q, mu_p and sigma_range give the initial conditions drawn by ``sample``.

    Parameters: ``a`` [1] (init 1) and ``V_net`` (a DeepSet); the state_dict keys are the
    official ones (``a``, ``V_net.phi.0.weight``, ...). Like any nn.Module it starts in
    torch's default dtype: ``model.to(dtype=torch.float64)`` for double precision.

    Example::

        model = Surrogate.load("paper-1d")
        q, p = model.sample(0.5, batch)          # [B, N] each, at t = 0.5
        traj = model.sample([0.2, 1.0], batch)   # Trajectory t [2], q, p [2, B, N]
    """

    def __init__(self, config: PICConfig | None = None, steps: int = 25, hidden: int = 256):
        super().__init__()
        if config is not None and not isinstance(config, PICConfig):
            raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
        self.config = config or PICConfig()
        self.steps = _check_steps(steps)
        self.a = nn.Parameter(torch.ones(1))
        self.V_net = DeepSet(hidden)

    # ------------------------------------------------------------------ properties

    @property
    def final_time(self) -> float:
        """T: the time the model was trained to reach."""
        return self.config.final_time

    @property
    def dtype(self) -> torch.dtype:
        return self.a.dtype

    @property
    def device(self) -> torch.device:
        return self.a.device

    def extra_repr(self) -> str:
        return (f"hidden={self.V_net.hidden}, steps={self.steps}, T={self.final_time:g}, "
                f"n_particles={self.config.n_particles}")

    # ------------------------------------------------------------------ the physics

    def _cast(self, name: str, x) -> torch.Tensor:
        x = to_tensor(name, x)
        return x.to(device=self.device, dtype=self.dtype)

    def _positions(self, q) -> torch.Tensor:
        q = self._cast("q", q)
        check_particles(q, q)
        return q

    def potential(self, q) -> torch.Tensor:
        """V(q) = rho(sum_i phi(q_i - mean q)): q [B, N] -> [B] (ValueError on a bad q).

        Example:
            >>> import torch, fastvp
            >>> model = fastvp.Surrogate(hidden=8)
            >>> q = 64 + torch.randn(2, 256)
            >>> bool(torch.allclose(model.potential(q), model.potential(q + 3.0)))
            True
        """
        return self.V_net(self._positions(q))

    def grad(self, q) -> torch.Tensor:
        """dV/dq in closed form: q [B, N] -> [B, N]; each row sums to 0 (translation invariance).

        Example:
            >>> import torch, fastvp
            >>> g = fastvp.Surrogate(hidden=8).grad(64 + torch.randn(2, 256))
            >>> tuple(g.shape), bool(g.sum(dim=1).abs().max() < 1e-4)
            ((2, 256), True)
        """
        return self.V_net.grad(self._positions(q))

    def _time(self, t, extrapolate: bool, name: str = "t") -> float:
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = t.item()
        if isinstance(t, float) and not math.isfinite(t):
            raise ValueError(f"{name} must be finite, got {t!r}")
        t = arguments.number(name, t)
        T = self.final_time
        if not extrapolate and not 0.0 <= t <= T:
            raise ValueError(f"{name} must lie in [0, T={T:g}] (pass extrapolate=True to go "
                             f"beyond), got {t!r}")
        return t

    def _initial(self, batch, n_examples: int, seed) -> tuple[torch.Tensor, torch.Tensor]:
        if batch is None:
            if seed is None:
                seed = int(torch.randint(0, 2**31 - 1, ()).item())
            b = initial_conditions(n_examples, self.config, seed=seed, device=self.device,
                                   dtype=self.dtype)
            return b.q, b.p
        q, p = as_particles(batch)
        kw = dict(device=self.device, dtype=self.dtype)
        return q.to(**kw), p.to(**kw)

    def _flow(self, q, p, t: float, steps: int, kernels=None):
        if t == 0.0:
            return q, p
        return integrate(q, p, self.V_net.weights(), self.a[0] ** 2, t / steps, steps,
                         kernels=kernels)

    def sample(self, t, batch=None, steps: int | None = None, n_examples: int = 1,
               seed: int | None = None, extrapolate: bool = False, kernels: str | None = None):
        """The state at time t of the flow started from `batch`: Flow_t(q0, p0).

        t: a number in [0, T] -> (q, p) [B, N]; or a sequence of times -> Trajectory with
            t [S] exactly those times, q, p [S, B, N]. Each time t_s is reached from t = 0
            with its own K steps of dt = t_s / K, so trajectory[s] is sample(t_s) itself:
            every time gets the same accuracy (K steps), as the paper samples a time t.
            (Stopping one run at the training step size T/K instead gave the same W1 to
            PIC, to 4 digits, at t = 0.2 ... 0.8 for a model trained on a small dataset:
            consistency with sample(t) decides.)
        batch: a Batch, or a (q0, p0) pair of [B, N] tensors or arrays; None draws
            `n_examples` from the model's config (seeded by `seed`, else by torch's RNG).
        steps: K (default: the training K). extrapolate: allow t < 0 or t > T.
        Computes in the model's dtype and device; without gradients (use log_prob to train).

        Returns:
            (q, p) [B, N] for one time; a Trajectory for a sequence of times.

        Raises:
            ValueError: t outside [0, T] (without extrapolate), bad steps, batch or n_examples.

        Example:
            >>> import fastvp
            >>> model = fastvp.Surrogate(hidden=8).double()
            >>> batch = fastvp.initial_conditions(4, seed=0)
            >>> q, p = model.sample(1.0, batch, steps=5)
            >>> tuple(q.shape)
            (4, 256)
            >>> model.sample([0.2, 1.0], batch, steps=5).t.tolist()
            [0.2, 1.0]
        """
        K = self.steps if steps is None else _check_steps(steps)
        if batch is None:
            arguments.integer("n_examples", n_examples, 1)
        if isinstance(t, (str, bytes)):
            raise ValueError(f"t must be a number or a sequence of numbers, got {t!r}")
        sequence = not isinstance(t, (int, float, np.number)) and not (
            isinstance(t, torch.Tensor) and t.dim() == 0)
        if sequence:
            try:
                times = [self._time(ti, extrapolate, f"t[{i}]") for i, ti in enumerate(t)]
            except TypeError as exc:
                raise ValueError(f"t must be a number or a sequence of numbers, got {t!r}") from exc
            if not times:
                raise ValueError("t must hold at least one time, got an empty sequence")
        else:
            times = [self._time(t, extrapolate)]
        q0, p0 = self._initial(batch, n_examples, seed)
        with torch.no_grad():
            states = [self._flow(q0, p0, ti, K, kernels) for ti in times]
        if not sequence:
            return states[0]
        return Trajectory(
            t=torch.tensor(times, dtype=self.dtype, device=self.device),
            q=torch.stack([s[0] for s in states]),
            p=torch.stack([s[1] for s in states]),
        )

    def pullback(self, q: torch.Tensor, p: torch.Tensor, t: float, steps: int | None = None,
                 method: str = "fast") -> tuple[torch.Tensor, torch.Tensor]:
        """Flow_{-t}(q, p): K steps of dt = -t / K, q, p [B, N] in the model's dtype/device.

        With gradients enabled, differentiable (once) in q, p and the parameters:
        method "fast" uses ``closed_form_grad`` (hand-derived backward), "compiled" the same
        fused by torch.compile, "autograd" differentiates autograd's dV/dq again through
        every step (the authors' way; the reference of the tests and benchmark).
        Without gradients, the no-grad integrator ``flow.integrate`` runs.
        """
        K = self.steps if steps is None else _check_steps(steps)
        if method not in PULLBACK_METHODS:
            raise ValueError(f"method must be one of {PULLBACK_METHODS}, got {method!r}")
        if t == 0.0:
            return q, p
        a2 = self.a[0] ** 2
        if not torch.is_grad_enabled():
            return integrate(q, p, self.V_net.weights(), a2, -t / K, K)
        if method == "autograd":
            def grad(x):
                return grad_autograd(self.V_net, x, create_graph=True)
        else:
            weights = self.V_net.weights()

            def grad(x):
                return closed_form_grad(x, weights, compile=method == "compiled")
        return leapfrog(q, p, grad, a2, -t / K, K)

    def log_prob(self, q, p, batch, t: float = 1.0, steps: int | None = None) -> torch.Tensor:
        """log p_t(q, p) = log f0(Flow_{-t}(q, p)): [B] summed over the particles.

        Exact, since the flow preserves volume. q, p [B, N]; batch gives each example's
        initial density f0: an ``InitialDistribution`` (``Problem.distribution()``), a
        Batch with Gaussian parameters (its mu_q, mu_p, sigma_q, sigma_p), or a (q0, p0)
        pair (Gaussians of their sample means and deviations). Differentiable in the
        parameters: training minimises -log_prob. K = steps (default: the training K),
        dt = -t / K.

        Returns:
            log p_t(q, p) [B] in nats.

        Raises:
            ValueError: t outside [0, T], shapes that disagree, non-finite q or p.

        Example:
            >>> import fastvp
            >>> model = fastvp.Surrogate(hidden=8)
            >>> batch = fastvp.initial_conditions(2, seed=0)
            >>> q, p = model.sample(1.0, batch, steps=5)
            >>> lp = model.log_prob(q, p, batch, t=1.0, steps=5)
            >>> tuple(lp.shape), bool(lp.requires_grad)
            ((2,), True)
        """
        t = self._time(t, extrapolate=False)
        q, p = self._cast("q", q), self._cast("p", p)
        check_particles(q, p)
        f0 = _initial_density(batch, q.shape[0])
        q0, p0 = self.pullback(q, p, t, steps)
        return f0.log_prob(q0, p0)

    # ------------------------------------------------------------------ files

    def metadata(self) -> dict:
        return {"format": FORMAT, "config": self.config.to_dict(), "steps": self.steps,
                "hidden": self.V_net.hidden, "dtype": str(self.dtype).removeprefix("torch.")}

    def save(self, path) -> Path:
        """Write `path` (.safetensors, suffix added if missing) and its JSON config beside it.

        Both files appear complete or not at all (``files.save_model_file``). Returns the
        path of the weights; ``Surrogate.load`` reads it with or without the suffix.

        Example:
            >>> import tempfile, os, fastvp
            >>> path = os.path.join(tempfile.mkdtemp(), "my-model")
            >>> fastvp.Surrogate(hidden=8).save(path).name
            'my-model.safetensors'
            >>> fastvp.Surrogate.load(path).V_net.hidden
            8
        """
        meta = self.metadata()
        if getattr(self, "training_info", None):
            meta["training"] = self.training_info
        return save_model_file(path, self.state_dict(), meta)

    @classmethod
    def bundled(cls) -> list[str]:
        """Names of the models shipped in fastvp/weights."""
        root = resources.files(WEIGHTS_PACKAGE) / "weights"
        try:
            return sorted(f.name[: -len(".safetensors")] for f in root.iterdir()
                          if f.name.endswith(".safetensors"))
        except (FileNotFoundError, NotADirectoryError):
            return []

    @classmethod
    def load(cls, name_or_path) -> Surrogate:
        """A model from a file written by ``save`` or a bundled name ("paper-1d").

        name_or_path: a file; or the name given to ``save`` (its ".safetensors" file);
        or a bundled model's name (``Surrogate.bundled()``). A file is read by its format,
        whatever its suffix: a fastvp .safetensors file, or the authors' checkpoint (a
        ``torch.save``d state_dict, read safely by ``from_official``). The model keeps the
        stored dtype, on the CPU; its ``training_info`` says how it was made (its JSON's
        "training" entry).

        Raises:
            FileNotFoundError: a path that does not exist.
            ValueError: neither a file nor a bundled name, or not a model file.

        Example:
            >>> import fastvp
            >>> "paper-1d" in fastvp.Surrogate.bundled()
            True
        """
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise ValueError(f"name_or_path must be a model name or a path, got {name_or_path!r}")
        path = Path(name_or_path)
        if not path.exists() and model_path(path).is_file():
            path = model_path(path)
        if not path.exists():
            text = str(name_or_path)
            if os.sep in text or "/" in text or path.suffix:
                raise FileNotFoundError(f"model file {text!r} does not exist")
            names = cls.bundled()
            if text not in names:
                raise ValueError(f"name_or_path {text!r} is neither a file nor a bundled model; "
                                 f"bundled models: {names}")
            with resources.as_file(resources.files(WEIGHTS_PACKAGE) / "weights"
                                   / f"{text}.safetensors") as p:
                return cls._read(Path(p))
        if path.is_dir():
            raise ValueError(f"name_or_path {str(path)!r} is a folder, not a model file")
        return cls._read(path)

    @classmethod
    def _read(cls, path: Path) -> Surrogate:
        if file_format(path) == "torch":
            return cls.from_official(path)
        state, meta = read_model_file(path)
        if meta is None and path.with_suffix(".json").exists():
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(path.with_suffix('.json'))!r} is not JSON: {exc}") from exc
        model = cls._from_state(state, meta or {}, str(path))
        model.training_info = (meta or {}).get("training")
        return model

    @classmethod
    def _from_state(cls, state: dict, meta: dict, source: str, dtype=None) -> Surrogate:
        if not isinstance(state, dict):
            raise ValueError(f"{source!r} does not hold a state_dict, got {type(state).__name__}")
        w = state.get("V_net.phi.0.weight")
        if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[1] != 1:
            raise ValueError(f"{source!r} is not a PDE-NHF model: no 'V_net.phi.0.weight' of shape "
                             f"[H, 1] (keys: {sorted(state)[:12]})")
        shapes = state_shapes(w.shape[0])
        missing = sorted(set(shapes) - set(state))
        unexpected = sorted(set(state) - set(shapes))
        if missing or unexpected:
            raise ValueError(f"{source!r} has wrong keys: missing {missing}, "
                             f"unexpected {unexpected}")
        for k, shape in shapes.items():
            v = state[k]
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape:
                got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise ValueError(f"{source!r}: {k} must have shape {list(shape)}, got {got}")
            if not v.is_floating_point() or not torch.isfinite(v).all():
                raise ValueError(f"{source!r}: {k} must hold finite floating-point numbers")
        try:
            config = PICConfig.from_dict(meta["config"]) if "config" in meta else PICConfig()
            steps = int(meta.get("steps", 25))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source!r} holds an invalid config: {exc}") from exc
        model = cls(config, steps=steps, hidden=w.shape[0])
        dtype = dtype or state["a"].dtype
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{source!r} holds {dtype} weights: fastvp models are float32 or "
                             "float64")
        model.to(dtype=dtype)
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
        return model

    @classmethod
    def from_official(cls, path, config: PICConfig | None = None) -> Surrogate:
        """The authors' checkpoint (a torch.save'd state_dict), as a float64 model on the CPU.

        Loaded with ``weights_only=True`` (it is a pickle) and ``map_location="cpu"`` (it
        was saved from CUDA). Every key and shape is checked. `config` defaults to the
        paper preset with the official generator scheme, the data it was trained on.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a file path, got {path!r}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"official checkpoint {str(path)!r} does not exist")
        try:  # from an open file: torch.load would dispatch a ".safetensors" name by its suffix
            with open(path, "rb") as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise ValueError(f"{str(path)!r} is not a torch state_dict: {exc}") from exc
        if isinstance(state, nn.Module):  # pragma: no cover - weights_only forbids it
            state = state.state_dict()
        config = config or PICConfig(scheme="official")
        return cls._from_state(dict(state) if isinstance(state, dict) else state,
                               {"config": config.to_dict()}, str(path), dtype=torch.float64)


def _initial_density(batch, n_examples: int) -> InitialDistribution:
    """The f0 that ``log_prob`` scores with: a distribution, a Batch's Gaussians, or the
    Gaussians of a (q0, p0) pair's sample moments."""
    if isinstance(batch, InitialDistribution):
        f0 = batch
        if f0.examples not in (None, n_examples):
            raise ValueError(f"batch must describe {n_examples} examples like q, got {f0.examples}")
        return f0
    if not (isinstance(batch, Batch) and batch.gaussian):
        q, p = as_particles(batch)
        n = q.shape[1]
        sq = q.std(dim=1) if n > 1 else torch.ones_like(q[:, 0])
        sp = p.std(dim=1) if n > 1 else torch.ones_like(p[:, 0])
        tiny = torch.finfo(q.dtype).tiny
        batch = Batch(q, p, sq.clamp_min(tiny), sp.clamp_min(tiny), q.mean(dim=1), p.mean(dim=1))
    if len(batch) != n_examples:
        raise ValueError(f"batch must hold {n_examples} examples like q, got {len(batch)}")
    return Gaussian.of(batch)


def _check_steps(steps) -> int:
    return arguments.integer("steps", steps, 1)
