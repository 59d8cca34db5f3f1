"""A straightforward per-example NumPy PIC, written independently of fastvp.

It follows docs/physics.md section 1 literally (full complex FFT, np.add.at deposit, one example
at a time, the style of the authors' generator) and is the tests' and benchmarks'
reference for ``fastvp.simulate``.
"""

from __future__ import annotations

import numpy as np


def field_at_particles(x, L, nx, q):
    dx = L / nx
    k = 2 * np.pi * np.fft.fftfreq(nx, dx)
    s = x / dx
    j = np.floor(s).astype(np.int64)
    f = s - j
    rho = np.zeros(nx)
    np.add.at(rho, j % nx, (1 - f) * q / dx)
    np.add.at(rho, (j + 1) % nx, f * q / dx)
    rho -= rho.mean()
    rho_k = np.fft.fft(rho)
    phi_k = np.zeros_like(rho_k)
    phi_k[1:] = rho_k[1:] / k[1:] ** 2
    e = np.real(np.fft.ifft(-1j * k * phi_k))
    return (1 - f) * e[j % nx] + f * e[(j + 1) % nx]


def simulate_one(x, v, L=128.0, nx=128, q=0.1, qm=1.0, dt=0.04, steps=25, save_every=5,
                 scheme="leapfrog", sign=1.0):
    """Snapshots (S, N) of positions and velocities of one example."""
    x = np.array(x, dtype=np.float64)
    v = np.array(v, dtype=np.float64)
    qs, ps = [x.copy()], [v.copy()]

    def acc(x):
        return sign * qm * field_at_particles(x, L, nx, q)

    a = acc(x)  # one field solve per step: the acceleration at x is kept for the next kick
    if scheme == "official":
        v += 0.5 * dt * a
    for step in range(1, steps + 1):
        if scheme == "leapfrog":
            v += 0.5 * dt * a
        x = (x + dt * v) % L
        a = acc(x)
        v += 0.5 * dt * a
        if step % save_every == 0:
            qs.append(x.copy())
            ps.append(v.copy())
    return np.stack(qs), np.stack(ps)


def simulate_loop(q0, p0, **kw):
    """Per-example loop over a batch: (S, B, N) arrays."""
    out = [simulate_one(q0[b], p0[b], **kw) for b in range(q0.shape[0])]
    return np.stack([o[0] for o in out], axis=1), np.stack([o[1] for o in out], axis=1)
