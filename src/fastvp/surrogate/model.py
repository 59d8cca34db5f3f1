"""PDE-NHF: the Surrogate module, and the closed-form gradient with a hand-derived backward.

The closed-form dV/dq of ``DeepSet.grad`` (SPEC.md section 3) is differentiated during
training through every leapfrog step. Autograd through it stores [B, N, H] intermediates
per step; ``deepset_grad`` instead wraps it in a ``torch.autograd.Function`` whose
backward is derived by hand. With y_i = q_i - mean q, z_ik = w1_k y_i + b1_k,
sigma = softplus', sigma' = sigma (1 - sigma), and the [B, H] vectors of the forward

    S = sum_i softplus(z_i),  s = W2 S + N b2,  r = W3 s + b3,  tau = sigma(r),
    g = W3^T (tau * w4),  c = W2^T g,  u = c * w1,  G_i = sum_k sigma_ik u_k,  F = G - mean G,

the vector-Jacobian product of F with v [B, N] is, with vb = v - mean v,

    A = sigma^T vb,   cb = A * w1,   gb = W2 cb,   e = W3 gb,   rb = e * w4 * sigma'(r),
    sb = W3^T rb,     Sb = W2^T sb,
    zb_ik = vb_i u_k sigma'_ik + Sb_k sigma_ik                     (never formed)
    dq    = yb - mean yb,  yb_i = vb_i sum_k sigma'_ik u_k w1_k + sum_k sigma_ik Sb_k w1_k
    dw1 = A c + sum_i zb_i y_i,  db1 = sum_i zb_i,  dW2 = g cb^T + sb S^T,  db2 = N sb,
    dW3 = (tau w4) gb^T + rb s^T,  db3 = rb,  dw4 = e tau         (summed over the batch)

The (z, sigma, sigma') block is recomputed in the backward rather than stored: the only
tensors kept per leapfrog step are q [B, N] and a few [B, H] vectors. ``DeepSet.grad``
(plain autograd through the closed form) and ``grad_autograd`` (autograd of autograd)
are the references of the tests.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..config import PICConfig
from ..initial import Batch, _to_tensor, as_batch, as_particles, check_particles, initial_conditions
from ..pic.simulate import Trajectory
from .flow import integrate, leapfrog
from .potential import SOFTPLUS_THRESHOLD, DeepSet, grad_autograd

#: Examples per block of the [b, N, H] work: a block stays in the CPU's caches.
CPU_BLOCK_ELEMENTS = 2**18
#: On CUDA, bound the memory of one block instead.
CUDA_BLOCK_ELEMENTS = 2**26


def _block_size(q: torch.Tensor, hidden: int) -> int:
    limit = CUDA_BLOCK_ELEMENTS if q.is_cuda else CPU_BLOCK_ELEMENTS
    return max(1, limit // max(1, q.shape[1] * hidden))


def _sig(z: torch.Tensor) -> torch.Tensor:
    """softplus'(z) as torch's Softplus has it: 1 above its threshold."""
    return torch.where(z > SOFTPLUS_THRESHOLD, 1.0, torch.sigmoid(z))


def _sig_prime(sig: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """softplus''(z) = sigma (1 - sigma): 0 above the threshold, where Softplus is linear."""
    return torch.where(z > SOFTPLUS_THRESHOLD, 0.0, sig - sig * sig)


def _over_threshold(y: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor) -> bool:
    """Whether some z_ik = w1_k y_i + b1_k exceeds the Softplus threshold.

    z is affine in y_i, so its maximum over particles is at min y or max y: an [b, H]
    check instead of an [b, N, H] one. When false, the threshold masks are skipped.
    """
    lo, hi = y.aminmax(dim=1)
    zmax = torch.maximum(lo[:, None] * w1, hi[:, None] * w1) + b1
    return bool((zmax > SOFTPLUS_THRESHOLD).any())


def _complement(y, w1, b1, clip: bool):
    """m = 1 - sigma(z) = sigma(-z) [b, N, H], and z itself where the threshold is crossed.

    Working with m rather than sigma(z) saves a transcendental pass: softplus(z) =
    -log m, and sum_k sigma_ik x_k = sum_k x_k - sum_k m_ik x_k, whose first term is
    the same for every particle and cancels in the centred gradient. Above torch's
    threshold Softplus is the identity: m = 0 there (sigma = 1), softplus = z.
    """
    zneg = torch.addcmul(-b1, y[:, :, None], w1, value=-1.0)       # -z
    m = torch.sigmoid(zneg)
    if clip:
        m = torch.where(zneg < -SOFTPLUS_THRESHOLD, 0.0, m)
    return m, (zneg if clip else None)


def _sum_softplus(m: torch.Tensor, zneg: torch.Tensor | None) -> torch.Tensor:
    """S_k = sum_i softplus(z_ik) = -sum_i log m_ik: [b, N, H] -> [b, H].

    The logarithm is the costly part, so it is taken of products of `group` factors:
    log is needed N / group times instead of N. Below the threshold m > sigma(-20) =
    2e-9, so a product of 8 (float64) or 4 (float32) factors stays a normal number.
    Above it softplus(z) = z, added apart, and m counts as 1 in the products.
    """
    extra = None
    if zneg is not None:
        over = zneg < -SOFTPLUS_THRESHOLD
        extra = torch.where(over, -zneg, 0.0).sum(dim=1)
        m = torch.where(over, 1.0, m)
    group = 8 if m.dtype == torch.float64 else 4
    b, n, h = m.shape
    main = n - n % group
    S = -torch.log(m[:, :main].reshape(b, main // group, group, h).prod(dim=2)).sum(dim=1)
    if main < n:
        S = S - torch.log(m[:, main:]).sum(dim=1)
    return S if extra is None else S + extra


def _rowdot(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_k m_ik x_k: [b, N, H] x [b, H] -> [b, N]."""
    return torch.bmm(m, x[:, :, None])[..., 0]


def _grad_block(y, w1, b1, W2, b2, W3, b3, w4, clip: bool):
    """Forward of one block: F [b, N] and the [b, H] vectors the backward needs."""
    n = y.shape[1]
    m, zneg = _complement(y, w1, b1, clip)                        # [b, N, H]
    S = _sum_softplus(m, zneg)                                    # [b, H]
    s = torch.addmm(b2 * n, S, W2.T)
    r = torch.addmm(b3, s, W3.T)
    tau = _sig(r)
    g = (tau * w4) @ W3
    c = g @ W2
    u = c * w1
    mG = _rowdot(m, u)                                            # G = sum(u) - mG
    return mG.mean(dim=1, keepdim=True) - mG, (S, s, r, tau, g, c, u)


def _grad_block_backward(v, y, saved, w1, b1, W2, W3, w4, clip: bool):
    """VJP of one block with v [b, N]: dq [b, N] and the per-block parameter gradients."""
    S, s, r, tau, g, c, u = saved
    n = y.shape[1]
    vb = v - v.mean(dim=1, keepdim=True)
    m, zneg = _complement(y, w1, b1, clip)                        # recomputed, [b, N, H]
    dsig = torch.addcmul(m, m, m, value=-1.0)                     # sigma' = m (1 - m)
    if zneg is not None:
        dsig = torch.where(zneg < -SOFTPLUS_THRESHOLD, 0.0, dsig)
    # contractions over particles, with sigma = 1 - m: sigma^T x = sum_i x_i - m^T x
    X = torch.stack((vb, y, torch.ones_like(vb)), dim=1)          # [b, 3, N]
    M = X.sum(dim=2)[:, :, None] - torch.bmm(X, m)                # sigma^T [vb, y, 1]: [b, 3, H]
    Md = torch.bmm(torch.stack((vb * y, vb), dim=1), dsig)        # sigma'^T [vb y, vb]: [b, 2, H]
    A = M[:, 0]
    cb = A * w1
    gb = cb @ W2.T
    e = gb @ W3.T
    tw4 = tau * w4
    rb = e * w4 * _sig_prime(_sig(r), r)
    sb = rb @ W3
    Sb = sb @ W2
    yb = vb * _rowdot(dsig, u * w1) - _rowdot(m, Sb * w1)         # + a constant, cancelled
    dq = yb - yb.mean(dim=1, keepdim=True)
    dw1 = (A * c + u * Md[:, 0] + Sb * M[:, 1]).sum(0)
    db1 = (u * Md[:, 1] + Sb * M[:, 2]).sum(0)
    dW2 = g.T @ cb + sb.T @ S
    db2 = n * sb.sum(0)
    dW3 = tw4.T @ gb + rb.T @ s
    db3 = rb.sum(0)
    dw4 = (e * tau).sum(0)
    return dq, (dw1, db1, dW2, db2, dW3, db3, dw4)


_COMPILED: dict[str, object] = {}


def _kernels(compile: bool):
    """(forward, backward) of one block: eager, or fused by torch.compile (built once)."""
    if not compile:
        return _grad_block, _grad_block_backward
    if not _COMPILED:
        _COMPILED["forward"] = torch.compile(_grad_block, dynamic=False)
        _COMPILED["backward"] = torch.compile(_grad_block_backward, dynamic=False)
    return _COMPILED["forward"], _COMPILED["backward"]


class _DeepSetGrad(torch.autograd.Function):
    """dV/dq of the Deep Set with the hand-derived backward of the module docstring."""

    @staticmethod
    def forward(ctx, compile, q, w1, b1, W2, b2, W3, b3, w4):
        y = q - q.mean(dim=1, keepdim=True)
        size = _block_size(q, w1.shape[0])
        clip = _over_threshold(y, w1, b1)
        block = _kernels(compile)[0]
        out, saved = [], []
        for i in range(0, q.shape[0], size):
            f, sv = block(y[i:i + size], w1, b1, W2, b2, W3, b3, w4, clip)
            out.append(f)
            saved.append(sv)
        keep = [torch.cat(t) for t in zip(*saved, strict=True)]
        ctx.save_for_backward(y, w1, b1, W2, W3, w4, *keep)
        ctx.size, ctx.clip, ctx.compile = size, clip, compile
        return out[0] if len(out) == 1 else torch.cat(out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):
        y, w1, b1, W2, W3, w4, *keep = ctx.saved_tensors
        size = ctx.size
        block = _kernels(ctx.compile)[1]
        dqs, total = [], None
        for i in range(0, y.shape[0], size):
            sl = slice(i, i + size)
            dq, grads = block(v[sl].contiguous(), y[sl], [k[sl] for k in keep],
                              w1, b1, W2, W3, w4, ctx.clip)
            dqs.append(dq)
            total = grads if total is None else [a + b for a, b in zip(total, grads, strict=True)]
        dq = dqs[0] if len(dqs) == 1 else torch.cat(dqs)
        return (None, dq, *total)


def deepset_grad(net: DeepSet, q: torch.Tensor, compile: bool = False) -> torch.Tensor:
    """dV/dq [B, N] of ``net``, differentiable once in q and in the parameters (fast backward).

    Same values as ``net.grad(q)``; its backward costs about two forward evaluations and
    stores no [B, N, H] intermediates. Not differentiable twice. compile=True fuses the
    [b, N, H] work of each block with torch.compile (the first call compiles).
    """
    w1, b1, W2, b2, W3, b3, w4, _ = net.weights()
    return _DeepSetGrad.apply(compile, q, w1, b1, W2, b2, W3, b3, w4)


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
        x = _to_tensor(name, x)
        return x.to(device=self.device, dtype=self.dtype)

    def _positions(self, q) -> torch.Tensor:
        q = self._cast("q", q)
        check_particles(q, q)
        return q

    def potential(self, q) -> torch.Tensor:
        """V(q): q [B, N] -> [B]."""
        return self.V_net(self._positions(q))

    def grad(self, q) -> torch.Tensor:
        """dV/dq: q [B, N] -> [B, N] (closed form)."""
        return self.V_net.grad(self._positions(q))

    def _time(self, t, extrapolate: bool, name: str = "t") -> float:
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = t.item()
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number, got {t!r}")
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"{name} must be finite, got {t!r}")
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
        return integrate(self.V_net, self.a[0] ** 2, q, p, t / steps, steps, kernels=kernels)

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
        """
        K = self.steps if steps is None else _check_steps(steps)
        if batch is None and (isinstance(n_examples, bool) or not isinstance(n_examples, int)
                              or n_examples < 1):
            raise ValueError(f"n_examples must be an integer >= 1, got {n_examples!r}")
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
        method "fast" uses ``deepset_grad`` (hand-derived backward), "compiled" the same
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
            return integrate(self.V_net, a2, q, p, -t / K, K)
        if method == "autograd":
            def grad(x):
                return grad_autograd(self.V_net, x, create_graph=True)
        else:
            def grad(x):
                return deepset_grad(self.V_net, x, compile=method == "compiled")
        return leapfrog(q, p, grad, a2, -t / K, K)

    def log_prob(self, q, p, batch, t: float = 1.0, steps: int | None = None) -> torch.Tensor:
        """log p_t(q, p) = log N(Flow_{-t}(q, p); mu, sigma): [B] summed over the particles.

        Exact, since the flow preserves volume. q, p [B, N]; batch gives each example's
        Gaussian (a Batch: its mu_q, mu_p, sigma_q, sigma_p; a (q0, p0) pair: their
        sample means and deviations). Differentiable in the parameters: training
        minimises -log_prob. K = steps (default: the training K), dt = -t / K.
        """
        t = self._time(t, extrapolate=False)
        q, p = self._cast("q", q), self._cast("p", p)
        check_particles(q, p)
        prior = batch if isinstance(batch, Batch) else as_batch(batch)
        if len(prior) != q.shape[0]:
            raise ValueError(f"batch must hold {q.shape[0]} examples like q, got {len(prior)}")
        prior = prior.to(device=self.device, dtype=self.dtype)
        q0, p0 = self.pullback(q, p, t, steps)
        return gaussian_log_prob(q0, prior.mu_q, prior.sigma_q) + gaussian_log_prob(
            p0, prior.mu_p, prior.sigma_p)

    # ------------------------------------------------------------------ files

    def metadata(self) -> dict:
        return {"format": FORMAT, "config": self.config.to_dict(), "steps": self.steps,
                "hidden": self.V_net.hidden, "dtype": str(self.dtype).removeprefix("torch.")}

    def save(self, path) -> Path:
        """Write `path` (.safetensors, suffix added if missing) and its JSON config beside it.

        Both files are written under a temporary name and renamed: they appear complete
        or not at all. Returns the path of the weights.
        """
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = self.metadata()
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        tmp = path.with_name(path.name + ".partial")
        save_file(tensors, str(tmp), metadata={"fastvp": json.dumps(meta)})
        os.replace(tmp, path)
        js = path.with_suffix(".json")
        tmp = js.with_name(js.name + ".partial")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, js)
        return path

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
        """A model from a bundled name ("paper-1d") or a .safetensors file written by save.

        The model keeps the stored dtype, on the CPU.
        """
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise ValueError(f"name_or_path must be a model name or a path, got {name_or_path!r}")
        path = Path(name_or_path)
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
        try:
            with safe_open(str(path), framework="pt") as fh:
                header = fh.metadata() or {}
                state = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{str(path)!r} is not a fastvp model (.safetensors): {exc}") from exc
        meta = None
        if "fastvp" in header:
            try:
                meta = json.loads(header["fastvp"])
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(path)!r} holds unreadable metadata: {exc}") from exc
        elif path.with_suffix(".json").exists():
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(path.with_suffix('.json'))!r} is not JSON: {exc}") from exc
        return cls._from_state(state, meta or {}, str(path))

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
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise ValueError(f"{str(path)!r} is not a torch state_dict: {exc}") from exc
        if isinstance(state, nn.Module):  # pragma: no cover - weights_only forbids it
            state = state.state_dict()
        config = config or PICConfig(scheme="official")
        return cls._from_state(dict(state) if isinstance(state, dict) else state,
                               {"config": config.to_dict()}, str(path), dtype=torch.float64)


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """sum_i log N(x_i; mu, sigma^2): x [B, N], mu, sigma [B] -> [B]."""
    z = (x - mu[:, None]) / sigma[:, None]
    n = x.shape[1]
    return -0.5 * (z * z).sum(dim=1) - n * (torch.log(sigma) + 0.5 * math.log(2 * math.pi))


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)
