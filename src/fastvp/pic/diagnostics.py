"""The physics diagnostics of PIC runs, in one place: energies and momentum of snapshots,
and the recorder that ``simulate(..., diagnostics=True)`` fills at every step.

With m = q / (q/m) the particle mass and s = +1 (electrostatic) or -1 (gravitational):

    K = (m / 2) sum_i v_i^2,   W = s (dx / 2) sum_j E_j^2 (on the grid),   P = m sum_i v_i.
"""

from __future__ import annotations

import torch

from ..config import PICConfig
from ..particles import Diagnostics
from .field import acceleration_coefficient, field

#: Fourier modes of the field recorded by ``simulate(..., diagnostics=True)``: m = 0 .. M - 1.
DIAGNOSTIC_MODES = 5


def kinetic_coefficient(config: PICConfig) -> float:
    """m / 2: K = (m / 2) sum_i v_i^2."""
    return 0.5 * config.mass


def field_coefficient(config: PICConfig) -> float:
    """s dx / 2: W = (s dx / 2) sum_j E_j^2."""
    return config.force_sign * 0.5 * config.dx


def total_momentum(p: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """P = m sum_i v_i with m = q / (q/m): [..., N] -> [...]."""
    return config.mass * p.sum(dim=-1)


def kinetic_energy(p: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """K = m sum_i v_i^2 / 2: [..., N] -> [...]."""
    return kinetic_coefficient(config) * (p * p).sum(dim=-1)


def field_energy(q: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """W = s (1/2) sum_j E_j^2 dx on the grid (s = +1 electrostatic, -1 gravitational): [B, N] -> [B]."""
    e = field(q, config, "torch")
    return field_coefficient(config) * (e * e).sum(dim=1)


def total_energy(q: torch.Tensor, p: torch.Tensor, config: PICConfig) -> torch.Tensor:
    """Kinetic plus field energy: [B, N] x [B, N] -> [B]."""
    return kinetic_energy(p, config) + field_energy(q, config)


class Recorder:
    """The diagnostics of a run (``Diagnostics``), filled chunk by chunk while it runs.

    Each step stores only a few reductions, straight into [S_all, B] rows (no per-step
    arithmetic): the grid norm |E|_2 and the cos / sin sums of the first modes of the field
    just solved, and sum v_i and |v|_2 after the step's kick. Leapfrog velocities sit at
    half steps between snapshots; with v_+- = v_n +- c e (c = (dt/2) s (q/m), e = E(x_n)
    at the particles), ``result`` recovers step n exactly from the kicks around it:
        sum v_n = (sum v_- + sum v_+) / 2,   sum v_n^2 = (sum v_-^2 + sum v_+^2) / 2 - c^2 sum e^2,
    which costs one more reduction, |e|_2, on the steps inside a segment.
    """

    def __init__(self, config: PICConfig, q0: torch.Tensor, n_modes: int = DIAGNOSTIC_MODES):
        self.c = config
        kw = dict(dtype=q0.dtype, device=q0.device)
        rows, b = config.steps + 1, q0.shape[0]
        # after the kick of step n (v_0 itself at n = 0), and |e|_2 at the full kicks
        self.v_sum, self.v_norm, self.e_norm, self.grid_norm = torch.empty((4, rows, b), **kw)
        # after the half kick opening each leapfrog segment (v_{n+1/2} at snapshot step n)
        self.open_sum, self.open_norm = torch.empty((2, config.n_snapshots, b), **kw)
        # sum_j E_j cos(2 pi j m / Nx) and sum_j E_j sin(...), m = 1 .. M - 1, one real FFT
        # a step (mode 0, the mean, is zero: the background neutralises the charge); an FFT
        # per example, unlike a matrix product, gives each example the same bits whatever
        # the batch it shares (a dataset's bytes do not depend on its chunks)
        self.n_modes = max(1, min(n_modes, config.cells // 2 + 1))
        self.fourier = torch.empty((rows, 2 * (self.n_modes - 1), b), **kw)

    def chunk(self, lo: int, hi: int, mover) -> ChunkRecorder:
        return ChunkRecorder(self, lo, hi, mover)

    def _modes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Amplitudes and phases [S_all, B, M] from the cos / sin sums."""
        cells, m = self.c.cells, self.n_modes
        # amplitude of the cosine: 2 |E_hat_m| / Nx, but 1 / Nx for the Nyquist mode
        scale = torch.full((m - 1,), 2.0 / cells, dtype=torch.float64)
        if cells % 2 == 0 and m == cells // 2 + 1:
            scale[-1] = 1.0 / cells
        scale = scale.to(self.fourier)
        fourier = self.fourier.transpose(1, 2)  # [S_all, B, 2 (M - 1)]
        shape = fourier.shape[:2] + (m,)
        modes, phases = fourier.new_zeros(shape), fourier.new_zeros(shape)
        re = fourier[..., : m - 1].mul(scale)
        im = fourier[..., m - 1:].mul(scale).neg_()  # E_hat = sum_j E_j e^{-i ...}
        modes[..., 1:] = torch.addcmul(re * re, im, im).sqrt_()
        phases[..., 1:] = im.atan2_(re)
        return modes, phases

    def _velocity_sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        """sum v_i and sum v_i^2 at every step n: [S_all, B] each."""
        c = self.c
        s1, s2 = self.v_sum, self.v_norm.square()
        if c.scheme != "leapfrog" or c.save_every == 1:
            return s1, s2
        n = torch.arange(1, c.steps + 1, device=s1.device)
        full = n[n % c.save_every != 0]  # steps whose kick was a full kick
        prev1, prev2 = s1[full - 1], s2[full - 1]
        opened = (full - 1) % c.save_every == 0  # the step before opened a segment
        seg = (full[opened] - 1) // c.save_every
        prev1[opened], prev2[opened] = self.open_sum[seg], self.open_norm[seg].square()
        half = 0.5 * c.dt * acceleration_coefficient(c)
        s1[full] = (prev1 + s1[full]).mul_(0.5)
        s2[full] = (prev2 + s2[full]).mul_(0.5).sub_(self.e_norm[full].square(), alpha=half**2)
        return s1, s2

    def result(self) -> Diagnostics:
        c = self.c
        s1, s2 = self._velocity_sums()
        kinetic = s2.mul_(kinetic_coefficient(c))
        field = self.grid_norm.square().mul_(field_coefficient(c))
        t = torch.arange(c.steps + 1, dtype=field.dtype, device=field.device) * c.dt
        modes, phases = self._modes()
        return Diagnostics(t=t, field_energy=field, kinetic_energy=kinetic,
                           total_energy=kinetic + field, momentum=s1.mul_(c.mass),
                           modes=modes, phases=phases)


class ChunkRecorder:
    """Writes the reductions of examples lo..hi-1 as one mover advances them."""

    def __init__(self, rec: Recorder, lo: int, hi: int, mover):
        self.rec, self.cols, self.mover = rec, slice(lo, hi), mover

    def field(self, n: int) -> None:
        """The field just solved for step n."""
        grid = self.mover.field_grid()
        torch.linalg.vector_norm(grid, dim=1, out=self.rec.grid_norm[n, self.cols])
        m = self.rec.n_modes
        if m > 1:
            e_hat = torch.fft.rfft(grid, dim=1)[:, 1:m].t()  # [M - 1, b]: sum_j E_j e^{-i ...}
            self.rec.fourier[n, :m - 1, self.cols] = e_hat.real
            self.rec.fourier[n, m - 1:, self.cols] = e_hat.imag.neg()

    def kicked(self, n: int, x: torch.Tensor, v: torch.Tensor, full: bool = False) -> None:
        """v after the kick of step n (full: a whole kick, from v_{n-1/2} to v_{n+1/2})."""
        rec, cols = self.rec, self.cols
        torch.sum(v, dim=1, out=rec.v_sum[n, cols])
        torch.linalg.vector_norm(v, dim=1, out=rec.v_norm[n, cols])
        if full:
            self.mover.particle_field_norm(x, out=rec.e_norm[n, cols])

    def opened(self, seg: int, v: torch.Tensor) -> None:
        """v after the half kick opening segment `seg` (leapfrog)."""
        torch.sum(v, dim=1, out=self.rec.open_sum[seg, self.cols])
        torch.linalg.vector_norm(v, dim=1, out=self.rec.open_norm[seg, self.cols])


def diagnostics_of_states(t, q: torch.Tensor, p: torch.Tensor, config: PICConfig,
                          n_modes: int = DIAGNOSTIC_MODES) -> Diagnostics:
    """The ``Diagnostics`` of given states (a surrogate's samples, a dataset's snapshots):
    t [S], q, p [S, B, N] -> energies and momentum [S, B], modes and phases [S, B, M] of the
    grid field each state deposits, defined as ``simulate(..., diagnostics=True)`` records
    them (the recorder's velocities sit at the steps themselves here)."""
    S, B, _ = q.shape
    grid = field(q.reshape(S * B, -1), config, "torch").reshape(S, B, config.cells)
    m = max(1, min(n_modes, config.cells // 2 + 1))
    spectrum = torch.fft.rfft(grid, dim=-1)[..., :m]                 # sum_j E_j e^{-2 pi i j m / Nx}
    scale = torch.full((m,), 2.0 / config.cells, dtype=grid.dtype, device=grid.device)
    if config.cells % 2 == 0 and m == config.cells // 2 + 1:
        scale[-1] = 1.0 / config.cells
    modes, phases = spectrum.abs() * scale, torch.atan2(spectrum.imag, spectrum.real)
    modes[..., 0], phases[..., 0] = 0.0, 0.0
    kinetic = kinetic_energy(p, config)
    energy = field_coefficient(config) * (grid * grid).sum(dim=-1)
    t = torch.as_tensor(t, dtype=q.dtype, device=q.device)
    return Diagnostics(t=t, field_energy=energy, kinetic_energy=kinetic, total_energy=kinetic + energy,
                       momentum=total_momentum(p, config), modes=modes, phases=phases)
