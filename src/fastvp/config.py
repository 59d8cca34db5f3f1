"""Configuration of a PIC run, and the paper's preset.

Every constant of the paper's box (docs/physics.md) lives here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from dataclasses import dataclass, field

from . import arguments

SCHEMES = ("leapfrog", "official")
INTERACTIONS = ("electrostatic", "gravitational")

#: The paper's train/validation/test split of its 32768-example dataset, in that order.
PAPER_SPLIT = (20000, 6384, 6384)


def _positive(name: str, value, integer: bool = False) -> None:
    arguments.positive(name, value)
    if integer and int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")


def _finite(name: str, value) -> None:
    arguments.number(name, value)


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


#: The keywords PICConfig took before the paper's initial distribution moved to its problem,
#: accepted (with a DeprecationWarning) for one release: name -> its new home.
DEPRECATED = {
    "mu_q": "fastvp.problems.paper(mu_q=...)",
    "mu_p": "fastvp.problems.paper(mu_p=...)",
    "sigma_range": "fastvp.problems.paper(sigma_q_range=..., sigma_p_range=...)",
    "sigma_q_range": "fastvp.problems.paper(sigma_q_range=...)",
    "sigma_p_range": "fastvp.problems.paper(sigma_p_range=...)",
}


@dataclass(frozen=True)
class PICConfig:
    """The solver of a 1D-1V Vlasov-Poisson PIC run on the periodic box [0, box_length).

    The defaults are the paper's box: L = 128, Nx = 128 cells, N = 256 particles of charge
    q = 0.1 accelerated by (q/m) E with q/m = 1, dt = 0.04, 25 steps, a snapshot every 5
    steps. The scheme "leapfrog" is kick-drift-kick; "official" is the authors' generator,
    which applies one half kick per step after the first. The particles' initial
    distribution is the problem's, not the solver's (``fastvp.problems``; the paper's
    Gaussians: ``fastvp.problems.paper``). Each field's help is its ``metadata["help"]``.

    The keywords mu_q, mu_p, sigma_range, sigma_q_range and sigma_p_range of earlier
    releases still work, with a DeprecationWarning naming their new home; they are kept
    as ``legacy_initial`` and drawn from by ``fastvp.initial_conditions``.
    """

    box_length: float = field(default=128.0, metadata={"help": "box length L (periodic domain [0, L))"})
    cells: int = field(default=128, metadata={"help": "grid cells Nx"})
    n_particles: int = field(default=256, metadata={"help": "particles N per example"})
    charge: float = field(default=0.1, metadata={
        "help": "charge q of a particle (the source of the field)"})
    charge_over_mass: float = field(default=1.0, metadata={"help": "q/m in the acceleration"})
    dt: float = field(default=0.04, metadata={"help": "time step"})
    steps: int = field(default=25, metadata={
        "help": "time steps (T = steps * dt); for train: leapfrog steps K of the flow"})
    save_every: int = field(default=5, metadata={
        "help": "steps between two snapshots (must divide --steps)"})
    scheme: str = field(default="leapfrog", metadata={
        "help": "leapfrog, or the authors' generator step for step"})
    interaction: str = field(default="electrostatic", metadata={
        "help": "repelling charges (electrostatic) or attracting masses (gravitational)"})

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
        for name in ("box_length", "charge", "charge_over_mass", "dt"):
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
    def mass(self) -> float:
        """The particle mass m = q / (q/m)."""
        return self.charge / self.charge_over_mass

    @property
    def force_sign(self) -> float:
        """+1 for electrostatic repulsion, -1 for gravitational attraction."""
        return 1.0 if self.interaction == "electrostatic" else -1.0

    # ------------------------------------------------ the deprecated initial-distribution keywords

    @property
    def legacy_initial(self) -> dict | None:
        """The paper-Gaussian settings given through the deprecated keywords: {"mu_q",
        "mu_p", "sigma_q_range", "sigma_p_range"} (mu_q None: L / 2), or None."""
        raw = self.__dict__.get("_legacy")
        if not raw:
            return None
        both = raw.get("sigma_range", PAPER_SIGMA_RANGE)
        return {"mu_q": raw.get("mu_q"), "mu_p": raw.get("mu_p", 0.0),
                "sigma_q_range": raw.get("sigma_q_range", both),
                "sigma_p_range": raw.get("sigma_p_range", both)}

    def __getattr__(self, name: str):
        if name in DEPRECATED:
            warnings.warn(f"PICConfig.{name} is deprecated: the initial distribution is the "
                          f"problem's ({DEPRECATED[name]})", DeprecationWarning, stacklevel=2)
            legacy = self.legacy_initial or {}
            if name == "mu_q":
                return legacy.get("mu_q") if legacy.get("mu_q") is not None else self.box_length / 2
            if name == "mu_p":
                return legacy.get("mu_p", 0.0)
            if name == "sigma_range":
                return legacy.get("sigma_q_range", PAPER_SIGMA_RANGE)
            return legacy.get(name, PAPER_SIGMA_RANGE)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def replace(self, **changes) -> PICConfig:
        """A copy with some fields changed (validated again); deprecated keywords keep
        their meaning (a new `sigma_range` moves the ranges not given on their own)."""
        legacy = {k: changes.pop(k) for k in DEPRECATED if k in changes}
        new = dataclasses.replace(self, **changes)
        checked = _check_legacy(legacy)
        if legacy:
            _warn_deprecated(legacy)
        raw = {**(self.__dict__.get("_legacy") or {}), **checked}
        object.__setattr__(new, "_legacy", raw or None)
        return new

    def to_dict(self) -> dict:
        """The solver's fields (and the deprecated initial-distribution settings, if given)."""
        d = dataclasses.asdict(self)
        legacy = self.legacy_initial
        if legacy:
            d.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in legacy.items()
                      if v is not None})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PICConfig:
        """A PICConfig from ``to_dict``'s output. Files written before the initial
        distribution left the solver hold mu_q, mu_p and sigma ranges: they are read
        (without a warning) as ``legacy_initial``."""
        if not isinstance(d, dict):
            raise ValueError(f"a PICConfig dict must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known - set(DEPRECATED)
        if unknown:
            raise ValueError(f"unknown PICConfig fields: {sorted(unknown)}")
        config = cls(**{k: v for k, v in d.items() if k in known})
        legacy = _check_legacy({k: d[k] for k in DEPRECATED if k in d})
        if legacy and _differs_from_paper(legacy, config):
            object.__setattr__(config, "_legacy", legacy)
        return config

    @classmethod
    def preset(cls, name: str) -> PICConfig:
        """A named preset; "paper" is the setup of Souveton & Terrana (2025)."""
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
        return PRESETS[name]


#: The paper's range of the per-example sigma_q and sigma_p.
PAPER_SIGMA_RANGE = (0.5, 1.5)

_dataclass_init = PICConfig.__init__


def _init(self, *args, **kwargs) -> None:
    legacy = {k: kwargs.pop(k) for k in DEPRECATED if k in kwargs}
    _dataclass_init(self, *args, **kwargs)
    checked = _check_legacy(legacy)
    if legacy:
        _warn_deprecated(legacy, stacklevel=3)
    object.__setattr__(self, "_legacy", checked or None)


_init.__doc__ = _dataclass_init.__doc__
_init.__signature__ = inspect.signature(_dataclass_init)
PICConfig.__init__ = _init


def _warn_deprecated(legacy: dict, stacklevel: int = 3) -> None:
    names = ", ".join(sorted(legacy))
    homes = "; ".join(DEPRECATED[k] for k in sorted(legacy))
    warnings.warn(f"PICConfig({names}=...) is deprecated: PICConfig holds the solver only, and "
                  f"the paper's initial distribution is its problem's: {homes}",
                  DeprecationWarning, stacklevel=stacklevel)


def _check_legacy(legacy: dict) -> dict:
    """The deprecated keywords, validated: mu_q (None or finite), mu_p, and (low, high) ranges."""
    out = {}
    for name, value in legacy.items():
        if name in ("mu_q", "mu_p"):
            if value is None and name == "mu_q":
                continue
            _finite(name, value)
            out[name] = float(value)
        else:
            out[name] = _range(name, value)
    return out


def _differs_from_paper(legacy: dict, config: PICConfig) -> bool:
    """True when a file's initial-distribution settings are not the paper's defaults."""
    paper = {"mu_q": config.box_length / 2, "mu_p": 0.0, "sigma_range": PAPER_SIGMA_RANGE,
             "sigma_q_range": PAPER_SIGMA_RANGE, "sigma_p_range": PAPER_SIGMA_RANGE}
    return any(paper[k] != v for k, v in legacy.items())


PRESETS: dict[str, PICConfig] = {"paper": PICConfig()}
