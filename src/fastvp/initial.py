"""Gaussian initial conditions of the paper, one independent example per batch row."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import validation as check
from .backend import resolve_device, resolve_dtype
from .config import PICConfig

#: Random numbers are drawn in blocks of this many examples, each block from its own
#: seed (seed, block index): example i gets the same particles however a run is chunked.
RNG_BLOCK = 1024


@dataclass
class Batch:
    """B independent examples of N particles.

    q, p: [B, N] positions and momenta (velocities); sigma_q, sigma_p, mu_q, mu_p: [B] the
    parameters of the Gaussians they were drawn from.
    """

    q: torch.Tensor
    p: torch.Tensor
    sigma_q: torch.Tensor
    sigma_p: torch.Tensor
    mu_q: torch.Tensor
    mu_p: torch.Tensor

    def __post_init__(self) -> None:
        check_particles(self.q, self.p)
        for name in ("sigma_q", "sigma_p", "mu_q", "mu_p"):
            v = getattr(self, name)
            if not isinstance(v, torch.Tensor) or v.shape != self.q.shape[:1]:
                raise ValueError(
                    f"{name} must be a tensor of shape [{self.q.shape[0]}], got "
                    f"{tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                )
            if not torch.isfinite(v).all():
                raise ValueError(f"{name} must be finite, got {v}")
        for name in ("sigma_q", "sigma_p"):
            if (getattr(self, name) <= 0).any():
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def __len__(self) -> int:
        return self.q.shape[0]

    @property
    def n_particles(self) -> int:
        return self.q.shape[1]

    def to(self, device=None, dtype=None) -> Batch:
        kw = {}
        if device is not None:
            kw["device"] = resolve_device(device)
        if dtype is not None:
            kw["dtype"] = resolve_dtype(dtype)
        return Batch(**{k: getattr(self, k).to(**kw) for k in self._fields()})

    def __getitem__(self, index) -> Batch:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Batch(**{k: getattr(self, k)[index] for k in self._fields()})

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("q", "p", "sigma_q", "sigma_p", "mu_q", "mu_p")


def _to_tensor(name: str, x, device=None, dtype=None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iuf":  # complex, bool, object, text: not positions
            raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        x = np.ascontiguousarray(x)
        if not x.flags.writeable:  # e.g. a memory-mapped dataset array
            x = x.copy()
        x = torch.from_numpy(x)
    elif not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        if x.is_floating_point() or x.dtype in (torch.int32, torch.int64):
            x = x.to(torch.float64)
        else:
            raise ValueError(f"{name} must hold floating-point numbers, got dtype {x.dtype}")
    if device is not None or dtype is not None:
        x = x.to(device=device, dtype=dtype)
    return x


def check_particles(q: torch.Tensor, p: torch.Tensor) -> None:
    """Raise ValueError unless q and p are finite [B, N] tensors of one shape, B, N >= 1."""
    for name, x in (("q", q), ("p", p)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(x).__name__}")
        if x.dim() != 2:
            raise ValueError(f"{name} must have shape [B, N] (2 dimensions), got shape {tuple(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(
                f"{name} must hold at least one example and one particle, got shape {tuple(x.shape)}"
            )
        if x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{name} must be float32 or float64, got {x.dtype}")
    if q.shape != p.shape:
        raise ValueError(f"q and p must have the same shape, got q {tuple(q.shape)} and p {tuple(p.shape)}")
    if q.dtype != p.dtype or q.device != p.device:
        raise ValueError(
            f"q and p must share dtype and device, got {q.dtype}/{q.device} and {p.dtype}/{p.device}"
        )
    for name, x in (("q", q), ("p", p)):
        bad = ~torch.isfinite(x)
        if bad.any():
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{name} must be finite, got {x[idx].item()} at index {idx}")


def as_particles(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, p) [B, N] tensors from a Batch or a (q0, p0) pair of tensors / numpy arrays."""
    if isinstance(batch, Batch):
        return batch.q, batch.p
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        q = _to_tensor("q", batch[0])
        p = _to_tensor("p", batch[1])
        if q.dtype != p.dtype and q.shape == p.shape:
            p = p.to(q.dtype)
        check_particles(q, p)
        return q, p
    raise ValueError(
        f"batch must be a fastvp.Batch or a (q, p) pair of [B, N] arrays, got {type(batch).__name__}"
    )


def as_batch(batch, config: PICConfig | None = None) -> Batch:
    """A Batch from a Batch or a (q0, p0) pair; a pair gets its sample mean and std as mu and sigma."""
    if isinstance(batch, Batch):
        return batch
    q, p = as_particles(batch)
    n = q.shape[1]
    sq = q.std(dim=1) if n > 1 else torch.ones_like(q[:, 0])
    sp = p.std(dim=1) if n > 1 else torch.ones_like(p[:, 0])
    tiny = torch.finfo(q.dtype).tiny
    return Batch(q, p, sq.clamp_min(tiny), sp.clamp_min(tiny), q.mean(dim=1), p.mean(dim=1))


def _sigma(name: str, value, n: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a number or have shape [{n}], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return arr


def draw_block(seed: int, block: int, config: PICConfig) -> tuple[np.ndarray, np.ndarray]:
    """Random numbers of examples [block*RNG_BLOCK, (block+1)*RNG_BLOCK).

    Returns u: [RNG_BLOCK, 2] uniforms in [0, 1) for (sigma_q, sigma_p) and
    z: [RNG_BLOCK, 2, N] standard normals for (q, p).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, block]))
    u = rng.random((RNG_BLOCK, 2))
    z = rng.standard_normal((RNG_BLOCK, 2, config.n_particles))
    return u, z


def initial_conditions(
    n_examples: int,
    config: PICConfig | None = None,
    seed: int = 0,
    sigma_q=None,
    sigma_p=None,
    device=None,
    dtype: torch.dtype = torch.float64,
    start: int = 0,
) -> Batch:
    """Examples start .. start+n_examples-1 of the seeded Gaussian initial conditions.

    q_i ~ N(mu_q, sigma_q^2), p_i ~ N(mu_p, sigma_p^2), i = 1..N, independently;
    sigma_q ~ U(sigma_q_range), sigma_p ~ U(sigma_p_range) per example unless given. Example i is the same
    whatever `n_examples` and `start` select it: datasets can be drawn in chunks. Drawn in
    float64 on the CPU, then cast and moved.

    Args:
        n_examples: B, the number of examples.
        config: the PICConfig giving N, mu_q, mu_p, sigma_q_range and sigma_p_range
            (default: the paper's).
        seed: the random stream (an integer >= 0).
        sigma_q, sigma_p: a number or [B] values instead of the uniform draw.
        device, dtype: where the tensors live (float32 or float64).
        start: index of the first example of the stream.

    Returns:
        A Batch: q, p [B, N]; sigma_q, sigma_p, mu_q, mu_p [B].

    Raises:
        ValueError: a bad count, seed, start, sigma, device or dtype (named).

    Example:
        >>> import fastvp
        >>> batch = fastvp.initial_conditions(3, seed=0)
        >>> tuple(batch.q.shape), batch.q.dtype
        ((3, 256), torch.float64)
        >>> bool(((batch.sigma_q >= 0.5) & (batch.sigma_q <= 1.5)).all())
        True
    """
    config = config or PICConfig()
    check.integer("n_examples", n_examples, 1)
    check.integer("seed", seed, 0)
    check.integer("start", start, 0)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype)
    n_examples, start = int(n_examples), int(start)
    sq_given = _sigma("sigma_q", sigma_q, n_examples)
    sp_given = _sigma("sigma_p", sigma_p, n_examples)

    stop = start + n_examples
    us, zs = [], []
    for block in range(start // RNG_BLOCK, math.ceil(stop / RNG_BLOCK)):
        lo, hi = block * RNG_BLOCK, (block + 1) * RNG_BLOCK
        u, z = draw_block(seed, block, config)
        a, b = max(start, lo) - lo, min(stop, hi) - lo
        us.append(u[a:b])
        zs.append(z[a:b])
    u = np.concatenate(us)
    z = np.concatenate(zs)
    (lq, hq), (lp, hp) = config.sigma_q_range, config.sigma_p_range
    sq = sq_given if sq_given is not None else lq + (hq - lq) * u[:, 0]
    sp = sp_given if sp_given is not None else lp + (hp - lp) * u[:, 1]
    q = config.mu_q + sq[:, None] * z[:, 0]
    p = config.mu_p + sp[:, None] * z[:, 1]

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)

    return Batch(
        q=t(q),
        p=t(p),
        sigma_q=t(sq),
        sigma_p=t(sp),
        mu_q=t(np.full(n_examples, config.mu_q)),
        mu_p=t(np.full(n_examples, config.mu_p)),
    )
