"""Configuration of a PIC run, and the paper's preset.

Every constant of the paper's setup (SPEC.md section 2) lives here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import validation as check

SCHEMES = ("leapfrog", "official")
INTERACTIONS = ("electrostatic", "gravitational")

#: The paper's train/validation/test split of its 32768-example dataset, in that order.
PAPER_SPLIT = (20000, 6384, 6384)


def _positive(name: str, value, integer: bool = False) -> None:
    check.positive(name, value)
    if integer and int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")


def _finite(name: str, value) -> None:
    check.number(name, value)


RANGES = ("sigma_range", "sigma_q_range", "sigma_p_range")


def _range(name: str, value) -> tuple[float, float]:
    """(low, high) as floats, if `value` is a pair of finite numbers with 0 < low <= high."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    lo, hi = value
    _positive(f"{name}[0]", lo)
    _positive(f"{name}[1]", hi)
    if hi < lo:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")
    return float(lo), float(hi)


@dataclass(frozen=True)
class PICConfig:
    """A 1D-1V Vlasov-Poisson PIC run on the periodic box [0, box_length).

    The defaults are the paper's setup: L = 128, Nx = 128 cells, N = 256 particles of
    charge q = 0.1 accelerated by (q/m) E with q/m = 1, dt = 0.04, 25 steps, a snapshot
    every 5 steps; initial positions N(mu_q = L/2, sigma_q^2), velocities N(mu_p = 0,
    sigma_p^2), sigma_q uniform in `sigma_q_range` and sigma_p in `sigma_p_range` per
    example. Each range not given is `sigma_range` ([0.5, 1.5], the paper's, for both).

    scheme: "leapfrog" (kick-drift-kick) or "official" (the authors' generator, which
        applies one half kick per step after the first; SPEC.md section 2).
    interaction: "electrostatic" (like particles repel) or "gravitational" (attract).
    """

    box_length: float = 128.0
    cells: int = 128
    n_particles: int = 256
    charge: float = 0.1
    charge_over_mass: float = 1.0
    dt: float = 0.04
    steps: int = 25
    save_every: int = 5
    scheme: str = "leapfrog"
    interaction: str = "electrostatic"
    mu_q: float | None = None
    mu_p: float = 0.0
    sigma_range: tuple[float, float] = (0.5, 1.5)
    sigma_q_range: tuple[float, float] | None = None
    sigma_p_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _positive("box_length", self.box_length)
        _positive("cells", self.cells, integer=True)
        _positive("n_particles", self.n_particles, integer=True)
        _positive("charge", self.charge)
        _positive("charge_over_mass", self.charge_over_mass)
        _positive("dt", self.dt)
        _positive("steps", self.steps, integer=True)
        _positive("save_every", self.save_every, integer=True)
        if self.steps % self.save_every:
            raise ValueError(
                f"save_every must divide steps, got save_every={self.save_every!r} "
                f"and steps={self.steps!r}"
            )
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.interaction not in INTERACTIONS:
            raise ValueError(f"interaction must be one of {INTERACTIONS}, got {self.interaction!r}")
        if self.mu_q is None:
            object.__setattr__(self, "mu_q", self.box_length / 2)
        _finite("mu_q", self.mu_q)
        _finite("mu_p", self.mu_p)
        object.__setattr__(self, "sigma_range", _range("sigma_range", self.sigma_range))
        for name in ("sigma_q_range", "sigma_p_range"):
            value = getattr(self, name)
            object.__setattr__(self, name, self.sigma_range if value is None else _range(name, value))
        for name in ("box_length", "charge", "charge_over_mass", "dt", "mu_q", "mu_p"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("cells", "n_particles", "steps", "save_every"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def dx(self) -> float:
        """Cell width L / Nx."""
        return self.box_length / self.cells

    @property
    def final_time(self) -> float:
        """T = steps * dt."""
        return self.steps * self.dt

    @property
    def n_snapshots(self) -> int:
        """S = steps // save_every + 1 (snapshot 0 is the initial state)."""
        return self.steps // self.save_every + 1

    @property
    def snapshot_steps(self) -> list[int]:
        """Step numbers of the snapshots: 0, save_every, ..., steps."""
        return list(range(0, self.steps + 1, self.save_every))

    @property
    def times(self) -> list[float]:
        """Snapshot times, step * dt."""
        return [s * self.dt for s in self.snapshot_steps]

    @property
    def force_sign(self) -> float:
        """+1 for electrostatic repulsion, -1 for gravitational attraction."""
        return 1.0 if self.interaction == "electrostatic" else -1.0

    def replace(self, **changes) -> PICConfig:
        """A copy with some fields changed (validated again).

        A new `sigma_range` also moves `sigma_q_range` / `sigma_p_range` where they
        followed it (were equal to the old one) and are not changed themselves.
        """
        if "sigma_range" in changes:
            for name in ("sigma_q_range", "sigma_p_range"):
                if name not in changes and getattr(self, name) == self.sigma_range:
                    changes[name] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in RANGES:
            d[name] = list(getattr(self, name))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PICConfig:
        """A PICConfig from ``to_dict``'s output (older files, with `sigma_range` only, too)."""
        if not isinstance(d, dict):
            raise ValueError(f"a PICConfig dict must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PICConfig fields: {sorted(unknown)}")
        d = dict(d)
        for name in RANGES:
            if isinstance(d.get(name), list):
                d[name] = tuple(d[name])
        return cls(**d)

    @classmethod
    def preset(cls, name: str) -> PICConfig:
        """A named preset; "paper" is the setup of Souveton & Terrana (2025)."""
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
        return PRESETS[name]


PRESETS: dict[str, PICConfig] = {"paper": PICConfig()}
