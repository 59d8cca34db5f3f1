"""The batched PIC time loop: all examples of a batch advance together.

Kick-drift-kick leapfrog ("leapfrog", SPEC.md section 1), one field solve per step:

    v += dt/2 a(x);   x = (x + dt v) mod L;   v += dt/2 a(x),   a(x) = s (q/m) E(x)

with s = +1 (electrostatic) or -1 (gravitational), E from the CIC deposit of charge q/dx
per particle minus the neutralising mean, solved by FFT and gathered by CIC. Consecutive
half kicks between snapshots merge into one full kick.

"official" reproduces the authors' generator: one half kick at the start, then per step
x = (x + dt v) mod L;  v += dt/2 a(x)  (the second half kick of each step is missing).

With ``diagnostics=True`` the energies, the momentum and the first Fourier modes of the
field are recorded at every step (``Diagnostics``), from the field each step solves anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from .. import validation as check
from ..backend import use_triton
from ..config import PICConfig
from ..initial import as_particles
from .field import acceleration_coefficient, grid_field, particle_weight

#: Fourier modes of the field recorded by ``simulate(..., diagnostics=True)``: m = 0 .. M - 1.
DIAGNOSTIC_MODES = 5


@dataclass
class Diagnostics:
    """Physics of every step n = 0 .. steps of a run (S_all = steps + 1 rows), per example.

    t [S_all]: n dt.  With m = q / (q/m) the particle mass and s = +1 (electrostatic) or
    -1 (gravitational), all [S_all, B]:
    field_energy   W_n = s (dx / 2) sum_j E_j^2 on the grid (``metrics.field_energy``),
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


class _TorchMover:
    """Drift and kick with the plain-torch CIC path, written for speed on CPU.

    Same math as ``pic.deposit`` (its tests compare them): the CIC indices of a drift are
    reused by the next kick, work buffers are reused across steps (fresh MB-sized
    allocations cost page faults on every step), and the grid carries a periodic ghost
    cell so that cell j + 1 needs no wrap: positions are kept in [0, L), hence
    j = trunc(x / dx) in [0, Nx] and j + 1 <= Nx + 1.
    """

    def __init__(self, config: PICConfig, fft: str):
        self.c = config
        self.fft = fft
        self.coef = acceleration_coefficient(config)
        self.shape = None

    def _buffers(self, x: torch.Tensor) -> None:
        if self.shape == (x.shape, x.dtype, x.device):
            return
        self.shape = (x.shape, x.dtype, x.device)
        kw = dict(dtype=x.dtype, device=x.device)
        self.s = torch.empty(x.shape, **kw)
        self.f = torch.empty(x.shape, **kw)
        self.w = torch.empty(x.shape, **kw)
        self.e = torch.empty(x.shape, **kw)
        self.left = torch.empty(x.shape, dtype=torch.int64, device=x.device)
        self.right = torch.empty_like(self.left)
        self.rho = torch.empty((x.shape[0], self.c.cells + 2), **kw)
        self.grid = torch.empty((x.shape[0], self.c.cells + 2), **kw)

    def _wrap(self, x: torch.Tensor) -> None:
        length = self.c.box_length
        lo, hi = x.aminmax()  # one cheap pass; the costly remainder only when a particle left
        if lo < 0 or hi >= length:
            x.remainder_(length)
            # the remainder of a tiny negative number rounds to L itself: keep x in [0, L)
            x.masked_fill_(x >= length, 0.0)

    def _solve(self, x: torch.Tensor) -> None:
        c, nx = self.c, self.c.cells
        torch.div(x, c.dx, out=self.s)
        torch.floor(self.s, out=self.e)
        torch.sub(self.s, self.e, out=self.f)
        self.left.copy_(self.e)
        torch.add(self.left, 1, out=self.right)
        torch.mul(self.f, -1.0, out=self.w).add_(1.0)
        rho = self.rho.zero_()
        rho.scatter_add_(1, self.left, self.w)
        rho.scatter_add_(1, self.right, self.f)
        rho[:, :2] += rho[:, nx:]  # fold the ghost cells back
        self.solved = grid_field(rho[:, :nx].mul_(particle_weight(c)), c, self.fft)
        self.grid[:, :nx] = self.solved
        self.grid[:, nx:] = self.grid[:, :2]

    def prepare(self, x: torch.Tensor, v: torch.Tensor) -> None:
        self._buffers(x)
        self._wrap(x)
        self._solve(x)

    def drift(self, x: torch.Tensor, v: torch.Tensor, h: float) -> None:
        x.add_(v, alpha=h)
        self._wrap(x)
        self._solve(x)

    def kick(self, x: torch.Tensor, v: torch.Tensor, h: float) -> None:
        torch.gather(self.grid, 1, self.left, out=self.e)
        torch.gather(self.grid, 1, self.right, out=self.s)
        self.e.lerp_(self.s, self.f)
        v.add_(self.e, alpha=h * self.coef)

    def field_grid(self) -> torch.Tensor:
        """E on the grid of the last solve: [B, Nx], contiguous."""
        return self.solved

    def particle_field_norm(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """|E(x_i)|_2 over the particles of the last kick -> out [B] (its field is still in a buffer)."""
        torch.linalg.vector_norm(self.e, dim=1, out=out)


class _TritonMover:
    """Drift+deposit and gather+kick fused in Triton kernels (CUDA, or the interpreter)."""

    def __init__(self, config: PICConfig, fft: str):
        from fastvp.kernels import cic as kcic

        self.k = kcic
        self.c = config
        self.fft = fft
        self.coef = acceleration_coefficient(config)

    def prepare(self, x: torch.Tensor, v: torch.Tensor) -> None:
        c = self.c
        self.grid = grid_field(self.k.deposit(x, c.cells, c.dx, particle_weight(c)), c, self.fft)

    def drift(self, x: torch.Tensor, v: torch.Tensor, h: float) -> None:
        c = self.c
        density = self.k.drift_deposit(x, v, h, c.box_length, c.cells, particle_weight(c))
        self.grid = grid_field(density, c, self.fft)

    def kick(self, x: torch.Tensor, v: torch.Tensor, h: float) -> None:
        self.k.kick_gather(self.grid, x, v, self.c.dx, h * self.coef)

    def field_grid(self) -> torch.Tensor:
        return self.grid

    def particle_field_norm(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """|E(x_i)|_2 over the particles -> out [B] (the fused kick keeps no gathered field)."""
        torch.linalg.vector_norm(self.k.gather(self.grid, x, self.c.dx), dim=1, out=out)


class _Recorder:
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
        # sum_j E_j cos(2 pi j m / Nx) and sum_j E_j sin(...), m = 1 .. M - 1, one product a
        # step (mode 0, the mean, is zero: the background neutralises the charge)
        self.n_modes = max(1, min(n_modes, config.cells // 2 + 1))
        j = torch.arange(config.cells, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * j * torch.arange(1, self.n_modes, dtype=torch.float64) / config.cells
        # [cos | sin]^T: [2 (M - 1), Nx]; the product dft @ E^T beats E @ dft^T on CPU
        self.dft = torch.cat([torch.cos(angle), torch.sin(angle)], dim=1).t().contiguous().to(**kw)
        self.fourier = torch.empty((rows, self.dft.shape[0], b), **kw)

    def chunk(self, lo: int, hi: int, mover) -> _ChunkRecorder:
        return _ChunkRecorder(self, lo, hi, mover)

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
        mass = c.charge / c.charge_over_mass
        s1, s2 = self._velocity_sums()
        kinetic = s2.mul_(0.5 * mass)
        field = self.grid_norm.square().mul_(c.force_sign * 0.5 * c.dx)
        t = torch.arange(c.steps + 1, dtype=field.dtype, device=field.device) * c.dt
        modes, phases = self._modes()
        return Diagnostics(t=t, field_energy=field, kinetic_energy=kinetic,
                           total_energy=kinetic + field, momentum=s1.mul_(mass),
                           modes=modes, phases=phases)


class _ChunkRecorder:
    """Writes the reductions of examples lo..hi-1 as one mover advances them."""

    def __init__(self, rec: _Recorder, lo: int, hi: int, mover):
        self.rec, self.cols, self.mover = rec, slice(lo, hi), mover

    def field(self, n: int) -> None:
        """The field just solved for step n."""
        grid = self.mover.field_grid()
        torch.linalg.vector_norm(grid, dim=1, out=self.rec.grid_norm[n, self.cols])
        torch.mm(self.rec.dft, grid.t(), out=self.rec.fourier[n, :, self.cols])

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


def _advance(x: torch.Tensor, v: torch.Tensor, config: PICConfig, mover, out_q, out_p,
             log: _ChunkRecorder | None = None) -> None:
    """Run all steps on one chunk in place, writing snapshots 1..S-1 into out_q/out_p[1:]
    and, if `log` is given, the diagnostics of every step."""
    dt, half, every = config.dt, 0.5 * config.dt, config.save_every
    leapfrog = config.scheme == "leapfrog"
    mover.prepare(x, v)
    if log is not None:
        log.field(0)
        log.kicked(0, x, v)  # v_0, before any kick
    if not leapfrog:
        mover.kick(x, v, half)
    n = 0
    for seg in range(1, config.n_snapshots):
        if leapfrog:
            mover.kick(x, v, half)
            if log is not None:
                log.opened(seg - 1, v)
        for k in range(every):
            mover.drift(x, v, dt)
            n += 1
            if log is not None:
                log.field(n)  # while the new field is still in cache
            full = leapfrog and k < every - 1
            mover.kick(x, v, dt if full else half)
            if log is not None:
                log.kicked(n, x, v, full)
        out_q[seg].copy_(x)
        out_p[seg].copy_(v)


def _run_threaded(run, bounds, movers) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    local = threading.local()
    pool = iter(movers)
    lock = threading.Lock()

    def task(lo_hi):
        if not hasattr(local, "mover"):
            with lock:
                local.mover = next(pool)
        run(*lo_hi, local.mover)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=len(movers)) as ex:
            list(ex.map(task, bounds))
    finally:
        torch.set_num_threads(threads)


def default_chunk_size(x: torch.Tensor, config: PICConfig) -> int:
    """Examples per chunk: cache-sized on CPU, memory-bounded on CUDA."""
    if x.is_cuda:
        free, _ = torch.cuda.mem_get_info(x.device)
        per_example = x.element_size() * config.n_particles * 16
        return max(1, int(0.25 * free // per_example))
    return max(1, 2**18 // max(1, x.shape[1]))


def simulate(
    batch,
    config: PICConfig | None = None,
    *,
    chunk_size: int | None = None,
    kernels: str | None = None,
    fft: str = "auto",
    diagnostics: bool = False,
) -> Trajectory:
    """Integrate a batch of examples with PIC and return its snapshots.

    Examples are independent: the result does not depend on `chunk_size` (examples per
    pass, automatic by default) nor on which other examples share the batch.

    Args:
        batch: a ``Batch`` or a (q0, p0) pair of [B, N] tensors or numpy arrays (numpy gives
            CPU tensors); float32 and float64 are kept.
        config: the PICConfig (default: the paper's).
        chunk_size: examples per pass (an integer >= 1), automatic by default.
        kernels: "auto" (Triton on CUDA), "torch" or "triton"; fft: "auto", "torch", "cupy".
        diagnostics: also record the energies, momentum and field modes of every step
            (``Trajectory.diagnostics``, a ``Diagnostics``) from the field each step solves.

    Returns:
        A Trajectory with t [S] = (0, save_every dt, ..., steps dt) and q, p [S, B, N];
        snapshot 0 is the initial state, positions are wrapped into [0, L) after each drift.

    Raises:
        ValueError: a bad batch, config, chunk_size, kernels, fft or diagnostics (named).

    Example:
        >>> import fastvp
        >>> traj = fastvp.simulate(fastvp.initial_conditions(2, device="cpu"), diagnostics=True)
        >>> tuple(traj.q.shape), tuple(traj.diagnostics.total_energy.shape)
        ((6, 2, 256), (26, 2))
        >>> h = traj.diagnostics.total_energy
        >>> bool(((h - h[0]).abs() < 1e-3 * h[0].abs()).all())     # leapfrog keeps the energy
        True
    """
    config = config or PICConfig()
    if not isinstance(config, PICConfig):
        raise ValueError(f"config must be a fastvp.PICConfig, got {type(config).__name__}")
    q0, p0 = as_particles(batch)
    check.optional(check.integer, "chunk_size", chunk_size, 1)
    check.boolean("diagnostics", diagnostics)
    n_examples = q0.shape[0]
    chunk = chunk_size or default_chunk_size(q0, config)
    mover_cls = _TritonMover if use_triton(q0, kernels) else _TorchMover
    mover = mover_cls(config, fft)

    S = config.n_snapshots
    out_q = torch.empty((S,) + tuple(q0.shape), dtype=q0.dtype, device=q0.device)
    out_p = torch.empty_like(out_q)
    out_q[0].copy_(q0)
    out_p[0].copy_(p0)
    bounds = [(lo, min(n_examples, lo + chunk)) for lo in range(0, n_examples, chunk)]
    recorder = _Recorder(config, q0) if diagnostics else None

    def run(lo: int, hi: int, mover) -> None:
        x = q0[lo:hi].clone(memory_format=torch.contiguous_format)
        v = p0[lo:hi].clone(memory_format=torch.contiguous_format)
        log = recorder.chunk(lo, hi, mover) if recorder is not None else None
        _advance(x, v, config, mover, out_q[:, lo:hi], out_p[:, lo:hi], log)

    workers = torch.get_num_threads() if not q0.is_cuda else 1
    if workers > 1 and len(bounds) > 1:
        # chunks in parallel threads, each op single-threaded: on a few cores this beats
        # intra-op parallelism over chunk-sized ops
        _run_threaded(run, bounds, [mover_cls(config, fft) for _ in range(workers)])
    else:
        for lo, hi in bounds:
            run(lo, hi, mover)
    t = torch.tensor(config.times, dtype=q0.dtype, device=q0.device)
    return Trajectory(t=t, q=out_q, p=out_p,
                      diagnostics=recorder.result() if recorder is not None else None)
