"""Particles and what the simulator returns: Batch (the initial state of B examples),
Trajectory (snapshots) and Diagnostics (per-step physics), with the checks of [B, N] inputs.

A leaf module: the simulator, the problems and the surrogate share these types without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from .backend import resolve_device, resolve_dtype

GAUSSIAN_FIELDS = ("sigma_q", "sigma_p", "mu_q", "mu_p")


@dataclass
class Batch:
    """B independent examples of N particles.

    q, p: [B, N] positions and momenta (velocities). For examples drawn from per-example
    Gaussians (the paper's problem) sigma_q, sigma_p, mu_q, mu_p: [B] are those Gaussians'
    parameters; for any other initial distribution they are None (``gaussian`` is False).
    """

    q: torch.Tensor
    p: torch.Tensor
    sigma_q: torch.Tensor | None = None
    sigma_p: torch.Tensor | None = None
    mu_q: torch.Tensor | None = None
    mu_p: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_particles(self.q, self.p)
        given = [getattr(self, name) is not None for name in GAUSSIAN_FIELDS]
        if any(given) and not all(given):
            missing = [n for n, g in zip(GAUSSIAN_FIELDS, given) if not g]
            raise ValueError(f"a Batch takes all of {GAUSSIAN_FIELDS} or none, got {missing} missing")
        if not all(given):
            return
        for name in GAUSSIAN_FIELDS:
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

    @property
    def gaussian(self) -> bool:
        """True when the batch carries its examples' Gaussian parameters (sigma_*, mu_*)."""
        return self.sigma_q is not None

    def to(self, device=None, dtype=None) -> Batch:
        kw = {}
        if device is not None:
            kw["device"] = resolve_device(device)
        if dtype is not None:
            kw["dtype"] = resolve_dtype(dtype)
        return Batch(**{k: (v if v is None else v.to(**kw)) for k, v in self._items()})

    def __getitem__(self, index) -> Batch:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Batch(**{k: (v if v is None else v[index]) for k, v in self._items()})

    def _items(self):
        return ((k, getattr(self, k)) for k in ("q", "p") + GAUSSIAN_FIELDS)


def to_tensor(name: str, x, device=None, dtype=None) -> torch.Tensor:
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
        q = to_tensor("q", batch[0])
        p = to_tensor("p", batch[1])
        if q.dtype != p.dtype and q.shape == p.shape:
            p = p.to(q.dtype)
        check_particles(q, p)
        return q, p
    raise ValueError(
        f"batch must be a fastvp.Batch or a (q, p) pair of [B, N] arrays, got {type(batch).__name__}"
    )


@dataclass
class Diagnostics:
    """Physics of every step n = 0 .. steps of a run (S_all = steps + 1 rows), per example.

    t [S_all]: n dt.  With m = q / (q/m) the particle mass and s = +1 (electrostatic) or
    -1 (gravitational), all [S_all, B]:
    field_energy   W_n = s (dx / 2) sum_j E_j^2 on the grid (``pic.diagnostics.field_energy``),
    kinetic_energy K_n = (m / 2) sum_i v_i^2 with v at time n dt (leapfrog: the mean of the
                   half-step velocities, v_n = v_{n-1/2} + (dt/2) a(x_n), exactly),
    total_energy   K_n + W_n,   momentum  P_n = m sum_i v_i.
    modes [S_all, B, M]: |E_m|, phases [S_all, B, M]: phi_m, of the field on the grid
    written E(x) = sum_m |E_m| cos(2 pi m x / L + phi_m), m = 0 .. M - 1 (mode m is index
    m; mode 0 is the mean, zero). A wave cos(k x - omega t) has phi_1 = -omega t.
    The "official" scheme records the velocities it holds after each step's kick.
    Items are also reachable as ``diagnostics["field_energy"]``.
    """

    t: torch.Tensor
    field_energy: torch.Tensor
    kinetic_energy: torch.Tensor
    total_energy: torch.Tensor
    momentum: torch.Tensor
    modes: torch.Tensor
    phases: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.keys()}


@dataclass
class Trajectory:
    """Snapshots of a batch: t [S], q [S, B, N], p [S, B, N]; diagnostics of every step
    (``Diagnostics``) when ``simulate`` was asked for them, else None."""

    t: torch.Tensor
    q: torch.Tensor
    p: torch.Tensor
    diagnostics: Diagnostics | None = None

    def __len__(self) -> int:
        return self.t.shape[0]

    def __iter__(self):
        return iter((self.t, self.q, self.p))
