"""The batched PIC time loop: all examples of a batch advance together.

Kick-drift-kick leapfrog ("leapfrog", docs/physics.md section 1), one field solve per step:

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

import torch

from .. import arguments
from ..backend import use_triton
from ..config import PICConfig
from ..particles import Trajectory, as_particles
from .diagnostics import ChunkRecorder, Recorder
from .field import acceleration_coefficient, grid_field, particle_weight


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


def _advance(x: torch.Tensor, v: torch.Tensor, config: PICConfig, mover, out_q, out_p,
             log: ChunkRecorder | None = None) -> None:
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
    arguments.optional(arguments.integer, "chunk_size", chunk_size, 1)
    arguments.boolean("diagnostics", diagnostics)
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
    recorder = Recorder(config, q0) if diagnostics else None

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
